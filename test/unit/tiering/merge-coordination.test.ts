// The hot-tier merge and the tiering never both take the same L1 rows: a file the tier
// map knows is never merged, a file a merge retired is never registered for upload, and
// with wait_for_hour_merge an hour's files are discovered only after its merge had its turn.
import { afterEach, describe, expect, it } from 'vitest';
import { mergeDataset } from '../../../agent/hot/merge.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { ensureTierSchema, TierMap } from '../../../tiering/tier-map.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { compactOptions } from '../hot/fixture.ts';
import { compactedMetrics, HOUR, MID } from '../hot/merge-fixture.ts';
import type { Fixture } from '../hot/fixture.ts';

const CONTEXT = { plant: 'ulm', agentId: 'ulm-a' };
let fx: Fixture | undefined;
afterEach(() => fx?.close());

describe('merge and tiering coordination', () => {
  it('never merges an L1 file the tier map already took; merges the others', async () => {
    const c = compactedMetrics();
    fx = c.fx;
    ensureTierSchema(fx.db);
    const map = new TierMap(fx.db);
    const l1Before = hotFilesOf(fx.db, 'metrics').filter((f) => f.level === 1);
    // The tiering took every L1 file of the first hour (14:00) before the merge ran.
    const firstHour = Math.min(...l1Before.map((f) => f.window_start_us));
    const hourStart = Math.floor(firstHour / HOUR) * HOUR;
    const taken = await discoverNewFiles(fx.db, map, fx.stateDir, CONTEXT, hourStart + HOUR + 1, 500, 0);
    expect(taken).toBeGreaterThan(0);
    const tieredPaths = new Set(map.all().filter((r) => r.kind === 'data').map((r) => r.local_path));
    expect([...tieredPaths].every((p) => l1Before.some((f) => f.path === p && f.window_start_us < hourStart + HOUR))).toBe(true);

    const result = mergeDataset(fx.db, c.metrics, fx.stateDir, compactOptions, MID);
    expect(result.errors).toEqual([]);
    // The tiered files are still registered and were not merged; later hours were.
    const after = hotFilesOf(fx.db, 'metrics').filter((f) => f.level === 1);
    for (const path of tieredPaths) expect(after.some((f) => f.path === path)).toBe(true);
    expect(result.removed.some((p) => tieredPaths.has(p))).toBe(false);
    expect(result.added.filter((f) => f.level === 1).length).toBeGreaterThan(0);
    // Every row is in exactly one registered L1 file: tiered or merged, never both.
    const rowsInL1 = after.reduce((n, f) => n + f.record_count, 0);
    expect(rowsInL1).toBe(c.rows.length);
  });

  it('registers no data file that a merge retired meanwhile (the merged output is tiered instead)', async () => {
    const c = compactedMetrics();
    fx = c.fx;
    ensureTierSchema(fx.db);
    const map = new TierMap(fx.db);
    const retiredPath = hotFilesOf(fx.db, 'metrics').find((f) => f.level === 1)!.path;
    mergeDataset(fx.db, c.metrics, fx.stateDir, compactOptions, MID);
    expect(hotFilesOf(fx.db, 'metrics').some((f) => f.path === retiredPath)).toBe(false);
    // A discovery that read the file list before the merge now tries to register it.
    const inserted = map.register(
      [{ kind: 'data', dataset: 'metrics', local_path: retiredPath, object_key: `ulm/metrics/data/x/${retiredPath}`, size_bytes: 1, sha256: '0'.repeat(64), event_time_us: 0 }],
      MID,
    );
    expect(inserted).toBe(0);
    expect(map.all()).toEqual([]);
    // Blobs are not hot files and register as before.
    expect(map.register([{ kind: 'blob', dataset: null, local_path: 'blobs/ab/abc', object_key: 'ulm/blobs/ab/abc', size_bytes: 1, sha256: 'a'.repeat(64), event_time_us: 0 }], MID)).toBe(1);
  });

  it('a discovery racing a merge wins: the merge gives up that group quietly (no error), every row stays in one registered file', async () => {
    const c = compactedMetrics();
    fx = c.fx;
    ensureTierSchema(fx.db);
    const map = new TierMap(fx.db);
    const db = fx.db;
    // The tiering registers one of the group's inputs after the merge read them, before its swap.
    const result = mergeDataset(db, c.metrics, fx.stateDir, {
      ...compactOptions,
      beforeCommit: () => {
        if (map.all().length > 0) return;
        const input = hotFilesOf(db, 'metrics').find((f) => f.level === 1 && !f.path.includes('-h'))!;
        map.register([{ kind: 'data', dataset: 'metrics', local_path: input.path, object_key: `ulm/metrics/data/x/${input.path}`, size_bytes: 1, sha256: '0'.repeat(64), event_time_us: 0 }], MID);
      },
    }, MID);
    expect(result.raced).toBeGreaterThanOrEqual(1);
    expect(result.errors).toEqual([]);
    const taken = map.all()[0]!.local_path;
    const after = hotFilesOf(db, 'metrics').filter((f) => f.level === 1);
    expect(after.some((f) => f.path === taken)).toBe(true);
    expect(after.reduce((n, f) => n + f.record_count, 0)).toBe(c.rows.length);
  });

  it('with an hour settle, discovers only the L1 files of hours closed that long ago', async () => {
    const c = compactedMetrics();
    fx = c.fx;
    ensureTierSchema(fx.db);
    const map = new TierMap(fx.db);
    const l1 = hotFilesOf(fx.db, 'metrics').filter((f) => f.level === 1);
    const lastHourStart = Math.floor(Math.max(...l1.map((f) => f.window_start_us)) / HOUR) * HOUR;
    const settle = 15 * 60_000_000;
    // Just before the last hour has settled: its files wait, the earlier hours' go.
    await discoverNewFiles(fx.db, map, fx.stateDir, CONTEXT, lastHourStart + HOUR + settle - 1, 500, settle);
    const early = map.all().map((r) => r.local_path);
    expect(early.length).toBe(l1.filter((f) => f.window_start_us < lastHourStart).length);
    // Once settled, the rest.
    await discoverNewFiles(fx.db, map, fx.stateDir, CONTEXT, lastHourStart + HOUR + settle, 500, settle);
    expect(map.all().length).toBe(l1.length);
  });
});
