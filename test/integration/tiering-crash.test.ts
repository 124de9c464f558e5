// Crash test of the upload path, with the real daemon as a child process and a file://
// warm store (the S3 variant needs the S3 server of the services harness):
//   camera frames are dropped into a folder (mtime 5 minutes back, so their 1-minute
//   windows are closed and compaction makes L1 files at once); the daemon uploads
//   blobs and L1 files to warm;
//   (a) the daemon freezes at the `tiering.after-put` failpoint (object stored in warm,
//       not yet marked uploaded) and is SIGKILLed;
//   (b) restarted with a bandwidth cap that makes uploads slow, it is SIGKILLed while
//       uploads are under way (some uploaded, some not);
//   (c) restarted without faults, it drains.
// Then: every frame is a row in the hot tier (no lost file), every L1 file and blob is
// committed in the tier map, the warm store holds exactly one object per tier-map row
// (no duplicate, no stray object, no upload temp file) whose bytes match the sha256.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { killHard, startFaultDaemon } from '../support/fault-scenario.ts';
import { auditStateDir, failpointEnv, until, waitForFailpoint } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';

const FRAME_BYTES = 256 * 1024;

function config(o: { stateDir: string; dropDir: string; warmDir: string; apiPort: number; bandwidth?: number }): string {
  return `plant: crashplant
agent_id: agent_a
state_dir: ${o.stateDir}
log_level: info
api: { listen_port: ${o.apiPort} }
hot:
  seal_interval_ms: 200
  compaction_window_minutes: 1
  compaction_grace_seconds: 1
  compaction_interval_ms: 300
datasets:
  - name: frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: file, type: string, nullable: false }
      - { name: image, type: blob, nullable: false }
    partition_by: [line]
sources:
  folders:
    - name: cams
      path: ${o.dropDir}
      dataset: frames
      path_pattern: "{line}/{file}"
      stable_ms: 100
      fields:
        ts: { file_mtime: true }
        line: { path_field: line }
        file: { path_field: file }
        image: { payload: true }
tiering:
  warm: { url: "${pathToFileURL(o.warmDir).href}" }
  scan_interval_ms: 200
  eviction_interval_ms: 1000
  upload_concurrency: 2
  retry_initial_ms: 100
  retry_max_ms: 1000
  max_attempts: 1000
${o.bandwidth ? `  bandwidth_bytes_per_second: ${o.bandwidth}\n` : ''}`;
}

function walkFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walkFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

interface TierRow {
  kind: string;
  object_key: string;
  sha256: string;
  state: string;
  set_aside_us: number | null;
}

function tierRows(stateDir: string): TierRow[] {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get();
    return has ? (db.prepare('SELECT kind, object_key, sha256, state, set_aside_us FROM tier_files ORDER BY id').all() as TierRow[]) : [];
  } finally {
    db.close();
  }
}

function frameRows(stateDir: string): { l1: number; registeredBlobs: number } {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return {
      l1: db.prepare('SELECT count(*) FROM hot_files WHERE level = 1').pluck().get() as number,
      registeredBlobs: db.prepare('SELECT count(*) FROM blobs').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

describe('tiering crash: SIGKILL during upload loses no file and makes no duplicate object', () => {
  let dir: string;
  const daemons: ChildDaemon[] = [];
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('survives a kill at the failpoint and a kill mid-upload, then drains exactly once', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-tiering-crash-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const warmDir = join(dir, 'warm');
    const configPath = join(dir, 'lakeside.yaml');
    const apiPort = await freePort();
    const track = (d: ChildDaemon) => daemons.push(d);
    const shas = new Set<string>();
    const drop = (line: string, n: number, start: number) => {
      const past = (Date.now() - 5 * 60_000) / 1000;
      for (let i = start; i < start + n; i++) {
        const bytes = randomBytes(FRAME_BYTES);
        shas.add(createHash('sha256').update(bytes).digest('hex'));
        mkdirSync(join(dropDir, line), { recursive: true });
        const path = join(dropDir, line, `f${i}.bin`);
        writeFileSync(path, bytes);
        utimesSync(path, past, past);
      }
    };
    mkdirSync(dropDir, { recursive: true });
    drop('l1', 10, 0);
    drop('l2', 10, 0);

    // (a) Frozen right after the first object is stored, then killed.
    writeFileSync(configPath, config({ stateDir, dropDir, warmDir, apiPort }));
    const first = await startFaultDaemon(configPath, failpointEnv('tiering.after-put'), track);
    const { files } = await waitForFailpoint(first, 'tiering.after-put', 60_000);
    expect(files).toHaveLength(1);
    await killHard(first);
    expect(tierRows(stateDir).filter((r) => r.state !== 'local')).toEqual([]);

    // (b) Slow uploads (≈ 1 frame/s), killed once some but not all are uploaded.
    drop('l1', 6, 10);
    writeFileSync(configPath, config({ stateDir, dropDir, warmDir, apiPort, bandwidth: FRAME_BYTES }));
    const second = await startFaultDaemon(configPath, {}, track);
    await until(() => tierRows(stateDir).filter((r) => r.state !== 'local').length >= 3, 60_000, 'some uploads during the slow run');
    const midway = tierRows(stateDir);
    expect(midway.some((r) => r.state === 'local')).toBe(true);
    await killHard(second);

    // (c) Restarted clean: everything drains.
    writeFileSync(configPath, config({ stateDir, dropDir, warmDir, apiPort }));
    const third = await startFaultDaemon(configPath, {}, track);
    await until(() => readdirSync(dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin')).length === 0, 60_000, 'drop folder emptied');
    await until(
      () => {
        const rows = tierRows(stateDir);
        const { l1, registeredBlobs } = frameRows(stateDir);
        return registeredBlobs === shas.size && l1 > 0 && rows.length === l1 + registeredBlobs && rows.every((r) => r.state === 'committed');
      },
      120_000,
      () => `all committed; tier rows: ${JSON.stringify(tierRows(stateDir).map((r) => r.state))}`,
    );
    expect((await third.stop()).code).toBe(0);

    const rows = tierRows(stateDir);
    // No lost file: every dropped frame is a blob of the hot tier, and in warm.
    expect(new Set(rows.filter((r) => r.kind === 'blob').map((r) => r.sha256))).toEqual(shas);
    expect(rows.every((r) => r.set_aside_us === null)).toBe(true);
    // No duplicate and no stray object: warm holds exactly the tier map's keys, and the temp area is empty.
    const objects = walkFiles(warmDir).filter((k) => !k.startsWith('.tmp/'));
    expect(objects.sort()).toEqual(rows.map((r) => r.object_key).sort());
    expect(readdirSync(join(warmDir, '.tmp'))).toEqual([]);
    for (const row of rows) {
      expect(createHash('sha256').update(readFileSync(join(warmDir, row.object_key))).digest('hex')).toBe(row.sha256);
    }
    expect(rows.every((r) => r.object_key.startsWith('crashplant/'))).toBe(true);
    expect(rows.filter((r) => r.kind === 'data').every((r) => /^crashplant\/frames\/data\/\d{8}T\d{4}Z\/line=l[12]\/agent_a-/.test(r.object_key))).toBe(true);
    const audit = auditStateDir(stateDir);
    expect(audit.tempFiles).toEqual([]);
    expect(audit.unregisteredParquet).toEqual([]);
    expect(audit.missingParquet).toEqual([]);
    expect(audit.missingBlobs).toEqual([]);
  });
});
