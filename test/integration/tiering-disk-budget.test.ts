// The disk budget on a running daemon (in-process, so the test can see why sources are
// paused), with a real fault: the warm store is unreachable at first (where the plant's
// objects go, a plain file stands in the way, so every put fails, as with the WAN down)
// and camera frames keep arriving. Then:
//   - usage climbs past the critical watermark: the folder source stops picking files
//     up (they stay in the drop folder), and nothing uncommitted is deleted;
//   - the "WAN" returns (the file is removed): the backlog uploads and commits, the
//     evictor frees committed frames above the high watermark (alert: the hot window
//     shrank), usage falls below critical, the source resumes, and every frame dropped
//     is ingested in the end;
//   - every evicted file was committed first and is in warm; an evicted frame is still
//     served by /v1/blobs (fetched back through the read cache); every frame is queryable;
//   - /metrics follows: while paused, the watermark state is critical and the blobs'
//     upload backlog (dataset="") holds frames; once drained, the backlog is empty and
//     the warm tier holds every frame.
// (That the query views stop listing a file before it is unlinked is proven in the
// evictor's unit tests.)
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../agent/daemon.ts';
import { parseConfigText } from '../../config/loader.ts';
import { until } from '../support/failpoint.ts';

const FRAME_BYTES = 1024 * 1024;
const FRAMES = 40;
/** `name{labels}` → value, from the daemon's /metrics text. */
async function scrape(daemon: Daemon): Promise<Map<string, number>> {
  const { body } = await daemon.observability.metricsPort.metrics();
  return new Map(
    body
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))]),
  );
}

const BUDGET = 48 * 1024 * 1024; // high 50 % = 24 MiB, critical 60 % ≈ 28.8 MiB: about 28 frames

function configText(o: { stateDir: string; dropDir: string; warmDir: string }): string {
  return `plant: budget
state_dir: ${o.stateDir}
log_level: info
api: { listen_port: 0 }
hot:
  seal_interval_ms: 200
datasets:
  - name: frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: image, type: blob, nullable: false }
sources:
  folders:
    - name: cams
      path: ${o.dropDir}
      dataset: frames
      path_pattern: "{line}/{file}"
      stable_ms: 100
      concurrency: 1
      fields:
        ts: { received_at: true }
        line: { path_field: line }
        image: { payload: true }
tiering:
  warm: { url: "${pathToFileURL(o.warmDir).href}" }
  scan_interval_ms: 100
  eviction_interval_ms: 100
  retry_initial_ms: 50
  retry_max_ms: 200
  max_attempts: 100000
  disk_budget: { max_bytes: ${BUDGET}, high_watermark_percent: 50, critical_watermark_percent: 60 }
`;
}

describe('disk budget: sources pause at the critical watermark and resume once committed data is evicted', () => {
  let dir: string;
  let daemon: Daemon | undefined;
  afterAll(async () => {
    await daemon?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pauses without deleting uncommitted data, then drains, evicts and resumes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-budget-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const warmDir = join(dir, 'warm');
    mkdirSync(warmDir, { recursive: true });
    writeFileSync(join(warmDir, 'budget'), 'the WAN is down'); // keys go under budget/…: every put fails
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
    daemon = new Daemon(parseConfigText(configText({ stateDir, dropDir, warmDir }), join(dir, 'lakeside.yaml')), logger);
    await daemon.start();

    // A camera: one frame every 100 ms.
    mkdirSync(join(dropDir, 'l1'), { recursive: true });
    for (let i = 0; i < FRAMES; i++) {
      writeFileSync(join(dropDir, 'l1', `f${String(i).padStart(3, '0')}.bin`), randomBytes(FRAME_BYTES));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const d = daemon;
    const left = () => readdirSync(join(dropDir, 'l1')).length;
    await until(() => d.pausedFor.includes('disk_critical'), 60_000, 'the critical watermark to pause the sources');
    const leftWhenPaused = left();
    expect(leftWhenPaused).toBeGreaterThan(0);
    expect(logs.some((l) => l.code === 'DISK_CRITICAL')).toBe(true);
    // While paused and the WAN down: nothing more is taken, nothing is deleted.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(left()).toBeGreaterThanOrEqual(leftWhenPaused - 1); // at most the one in flight when the pause came
    const db = new Database(join(stateDir, 'landing.db'), { readonly: true });
    try {
      expect(db.prepare(`SELECT count(*) FROM tier_files WHERE local_state <> 'present'`).pluck().get()).toBe(0);
      expect(db.prepare(`SELECT count(*) FROM tier_files WHERE state <> 'local'`).pluck().get()).toBe(0);
      expect(logs.some((l) => l.code === 'UPLOAD_FAILED')).toBe(true);
      // The metrics show the tier map (waited for: a frame in flight at the pause may still be registered).
      const registered = () => db.prepare(`SELECT count(*) FROM tier_files WHERE kind = 'blob'`).pluck().get() as number;
      await until(async () => (await scrape(d)).get('lakeside_upload_backlog_files{dataset=""}') === registered(), 10_000, 'the backlog metric to match the tier map');
      const paused = await scrape(d);
      expect(paused.get('lakeside_disk_watermark_state{state="critical"}')).toBe(1);
      expect(paused.get('lakeside_upload_backlog_files{dataset=""}')).toBeGreaterThan(0);
      expect(paused.get('lakeside_upload_backlog_bytes{dataset=""}')).toBeGreaterThanOrEqual(FRAME_BYTES);
      expect(paused.get('lakeside_tier_files{dataset="",tier="warm"}')).toBe(0);

      // The WAN returns.
      rmSync(join(warmDir, 'budget'));
      await until(() => left() === 0, 120_000, () => `all frames ingested (left ${left()}, paused for ${d.pausedFor})`);
      await until(() => !d.pausedFor.includes('disk_critical'), 60_000, 'sources resumed');
      expect(logs.some((l) => l.code === 'HOT_WINDOW_SHRUNK')).toBe(true);
      expect(logs.some((l) => l.msg === 'disk below the critical watermark: sources resumed')).toBe(true);
      const blobRows = () => db.prepare(`SELECT state, local_state, local_path FROM tier_files WHERE kind = 'blob'`).all() as { state: string; local_state: string; local_path: string }[];
      await until(() => blobRows().length === FRAMES, 30_000, 'every frame in the tier map');
      await until(
        async () => {
          const m = await scrape(d);
          return m.get('lakeside_upload_backlog_files{dataset=""}') === 0 && m.get('lakeside_tier_files{dataset="",tier="warm"}') === FRAMES;
        },
        30_000,
        'the metrics: backlog drained, every frame in warm',
      );
      expect((await scrape(d)).get('lakeside_disk_watermark_state{state="critical"}')).toBe(0);
      const rows = blobRows();
      const evicted = rows.filter((r) => r.local_state !== 'present');
      expect(evicted.length).toBeGreaterThan(0);
      // Nothing uncommitted was ever deleted; what was deleted is safe in warm.
      for (const r of evicted) {
        expect(r.state).toBe('committed');
        expect(existsSync(join(stateDir, r.local_path))).toBe(false);
        expect(existsSync(join(warmDir, 'budget', 'blobs', r.local_path.split('/')[2]!.slice(0, 2), r.local_path.split('/')[2]!))).toBe(true);
      }
      // An evicted frame is still served by /v1/blobs: fetched back from warm through the read cache.
      const evictedSha = evicted[0]!.local_path.split('/')[2]!;
      const response = await fetch(`${d.reads.url}/v1/blobs/${evictedSha}`);
      expect(response.status).toBe(200);
      const body = Buffer.from(await response.arrayBuffer());
      expect(createHash('sha256').update(body).digest('hex')).toBe(evictedSha);
      expect(existsSync(join(stateDir, evicted[0]!.local_path))).toBe(false); // the hot tier did not take it back
      // Every frame is a row of the dataset.
      const countFrames = async (): Promise<number> => {
        const r = await fetch(`${d.reads.url}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT count(*) AS n FROM frames' }) });
        const body = (await r.json()) as { rows?: unknown[][] };
        return Number(body.rows?.[0]?.[0]);
      };
      await until(async () => (await countFrames()) === FRAMES, 30_000, 'every frame queryable');
    } finally {
      db.close();
    }
  });
});
