// The read-through cache with the real daemon as a child process: camera frames whose
// event times are 3 hours old (older than a 1-hour hot window) are ingested, uploaded to
// a file:// warm store and evicted from local disk. Then:
//   - SQL over the frames returns nothing (the hot tier no longer holds them);
//   - POST /v1/query with include_warm "auto" (the range of the query's WHERE) fetches
//     the evicted files into the read cache and returns exactly the rows ingested (those
//     a query returned before the eviction); an explicit range does too, and later
//     queries keep seeing them while cached; "auto" on an unbounded query is a 400;
//   - `lakeside backfill` over the same range finds them cached; with a read cache
//     budget smaller than the range it refuses with a clear message and fetches nothing;
//     with the cache deleted it fetches them again, and the running daemon's views pick
//     them up without a query option;
//   - include_warm with a range that does not parse is a 400.
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeBinary, REPO_ROOT, type ChildDaemon } from '../support/child-daemon.ts';
import { startFaultDaemon } from '../support/fault-scenario.ts';
import { until } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';
import { framesTieringConfig } from '../support/tiering-daemon-config.ts';

const HOUR_MS = 3_600_000;

function config(o: { stateDir: string; dropDir: string; warmDir: string; apiPort: number; cacheBytes?: number }): string {
  return `${framesTieringConfig({ plant: 'rtplant', stateDir: o.stateDir, dropDir: o.dropDir, apiPort: o.apiPort })}  warm: { url: "${pathToFileURL(o.warmDir).href}" }
  hot_retention_hours: 1
  wait_for_hour_merge: false
  scan_interval_ms: 200
  eviction_interval_ms: 200
${o.cacheBytes ? `  read_cache_max_bytes: ${o.cacheBytes}\n` : ''}`;
}

function dataRows(stateDir: string): { local_state: string; size_bytes: number }[] {
  if (!existsSync(join(stateDir, 'landing.db'))) return [];
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get()) return [];
    return db.prepare(`SELECT local_state, size_bytes FROM tier_files WHERE kind = 'data'`).all() as { local_state: string; size_bytes: number }[];
  } finally {
    db.close();
  }
}

function hotFrameFiles(stateDir: string): number {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT count(*) FROM hot_files WHERE dataset = 'frames' AND level IN (0, 1)`).pluck().get() as number;
  } finally {
    db.close();
  }
}

async function backfill(configPath: string, from: string, to: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(nodeBinary(), [join(REPO_ROOT, 'bin', 'lakeside.js'), 'backfill', '--config', configPath, '--from', from, '--to', to, '--dataset', 'frames']);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('tiering read-through: queries over evicted data fetch it back from warm', () => {
  let dir: string;
  const daemons: ChildDaemon[] = [];
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('include_warm returns the evicted rows; backfill respects the cache budget', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-read-through-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const warmDir = join(dir, 'warm');
    const configPath = join(dir, 'lakeside.yaml');
    const apiPort = await freePort();
    writeFileSync(configPath, config({ stateDir, dropDir, warmDir, apiPort }));
    const eventMs = Date.now() - 3 * HOUR_MS;
    const expected: [string, string][] = [];
    for (const line of ['l1', 'l2']) {
      mkdirSync(join(dropDir, line), { recursive: true });
      for (let i = 0; i < 5; i++) {
        const path = join(dropDir, line, `f${i}.bin`);
        writeFileSync(path, randomBytes(4096));
        utimesSync(path, (eventMs + i * 1000) / 1000, (eventMs + i * 1000) / 1000);
        expected.push([line, `f${i}.bin`]);
      }
    }
    expected.sort((a, b) => (a[1] === b[1] ? a[0].localeCompare(b[0]) : a[1].localeCompare(b[1])));
    const daemon = await startFaultDaemon(configPath, {}, (d) => daemons.push(d));
    const url = `http://127.0.0.1:${apiPort}/v1/query`;
    const query = async (body: Record<string, unknown>) => {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT line, file FROM frames ORDER BY file, line', ...body }) });
      return { status: response.status, body: (await response.json()) as { rows?: unknown[][]; error?: { code: string; message: string } } };
    };

    // Ingested, uploaded, committed and evicted: no frame row is on local disk any more.
    await until(() => readdirSync(dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin')).length === 0, 60_000, 'drop folder emptied');
    await until(
      () => {
        const rows = dataRows(stateDir);
        return rows.length > 0 && rows.every((r) => r.local_state === 'evicted') && hotFrameFiles(stateDir) === 0;
      },
      90_000,
      () => `every data file evicted: ${JSON.stringify(dataRows(stateDir))}, hot frame files ${hotFrameFiles(stateDir)}`,
    );
    await until(async () => (await query({})).body.rows?.length === 0, 10_000, 'the views no longer list the evicted files');

    const from = new Date(eventMs - HOUR_MS).toISOString();
    const to = new Date(eventMs + HOUR_MS).toISOString();
    // A range elsewhere fetches nothing.
    const elsewhere = await query({ include_warm: { from: new Date(eventMs - 5 * HOUR_MS).toISOString(), to: new Date(eventMs - 4 * HOUR_MS).toISOString() } });
    expect(elsewhere).toEqual({ status: 200, body: expect.objectContaining({ rows: [] }) });

    // "auto": the range comes from the query's own bounds; a query without one is refused.
    const unbounded = await query({ include_warm: 'auto' });
    expect(unbounded.status).toBe(400);
    expect(unbounded.body.error?.message).toMatch(/lower bound on its time column/);
    // By default, a query whose WHERE bounds the time fetches that range; include_warm: false opts out.
    const bounded = `SELECT line, file FROM frames WHERE ts >= '${from}' AND ts < '${to}' ORDER BY file, line`;
    expect((await query({ sql: bounded, include_warm: false })).body.rows).toEqual([]);
    const byDefault = await query({ sql: bounded });
    expect(byDefault.status).toBe(200);
    expect(byDefault.body.rows).toEqual(expected);
    const auto = await query({ sql: bounded, include_warm: 'auto' });
    expect(auto.status).toBe(200);
    expect(auto.body.rows).toEqual(expected);

    const warmQuery = await query({ include_warm: { from, to, dataset: 'frames' } });
    expect(warmQuery.status).toBe(200);
    expect(warmQuery.body.rows).toEqual(expected);
    // Cached now: the views keep them for later queries too.
    expect((await query({})).body.rows).toEqual(expected);
    const cacheDir = join(stateDir, 'cache', 'data', 'frames');
    const totalBytes = dataRows(stateDir).reduce((n, r) => n + r.size_bytes, 0);
    expect(readdirSync(cacheDir).filter((n) => n.endsWith('.parquet'))).toHaveLength(dataRows(stateDir).length);

    expect((await query({ include_warm: { from: 'yesterday-ish', to } })).status).toBe(400);

    // backfill beside the running daemon: everything is cached already.
    const again = await backfill(configPath, from, to);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`${dataRows(stateDir).length} evicted files .*: 0 fetched .*, ${dataRows(stateDir).length} already cached`));
    // A budget smaller than the range: refused, nothing fetched or dropped.
    const smallConfig = join(dir, 'small.yaml');
    writeFileSync(smallConfig, config({ stateDir, dropDir, warmDir, apiPort, cacheBytes: totalBytes - 1 }));
    const refused = await backfill(smallConfig, from, to);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/more than the read cache holds \(tiering\.read_cache_max_bytes = \d+\)/);
    expect(readdirSync(cacheDir).filter((n) => n.endsWith('.parquet'))).toHaveLength(dataRows(stateDir).length);

    // The cache emptied (deleting it loses nothing): the daemon's views drop the files;
    // backfill fetches them again, and the running daemon's views pick them up by themselves.
    await rm(join(stateDir, 'cache', 'data'), { recursive: true, force: true });
    await until(async () => (await query({})).body.rows?.length === 0, 15_000, 'the views drop the deleted cache files');
    const fetched = await backfill(configPath, from, to);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toMatch(new RegExp(`: ${dataRows(stateDir).length} fetched`));
    await until(async () => JSON.stringify((await query({})).body.rows) === JSON.stringify(expected), 15_000, 'the views list the backfilled files');
    expect((await daemon.stop()).code).toBe(0);
  }, 240_000);
});
