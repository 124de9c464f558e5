import { mkdtempSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CacheBudgetError, DataReadCache, type TimeRange } from '../../../tiering/data-cache.ts';
import { listCachedData } from '../../../tiering/data-cache-dir.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { NO_CATALOG } from '../../../tiering/catalog-handoff.ts';
import { ensureTierSchema } from '../../../tiering/tier-map.ts';
import { createTieringFixture, HOUR_US, recordingLogger, type TieringFixture } from './fixture.ts';

describe('data read cache (evicted L1 files fetched back for queries)', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  /** L1 files `ageHours` old (one per entry), uploaded, committed and evicted as the evictor leaves them. */
  async function evictedFiles(ages: number[], bytes: number, dataset = 'readings') {
    f = await createTieringFixture();
    const files = ages.map((ageHours) => f.addL1(dataset, { bytes, ageHours }));
    await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'p', agentId: 'a' }, 0);
    await new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config: f.config(), stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: recordingLogger().logger, nowMs: f.nowMs }).pass();
    const contents = files.map((file) => readFileSync(join(f.stateDir, file.path)));
    for (const file of files) {
      unlinkSync(join(f.stateDir, file.path));
      f.db.prepare('DELETE FROM hot_files WHERE path = ?').run(file.path);
    }
    f.db.prepare(`UPDATE tier_files SET local_state = 'evicted'`).run();
    return { files, contents };
  }

  /** The hour around `ageHours` before the fixture's now. */
  const around = (ageHours: number): TimeRange => ({ fromUs: f.clock.ms * 1000 - (ageHours + 0.5) * HOUR_US, toUs: f.clock.ms * 1000 - (ageHours - 0.5) * HOUR_US });
  const cacheOf = (maxBytes: number, inUseMs = 0) => new DataReadCache({ dir: mkdtempSync(join(tmpdir(), 'lakeside-data-cache-')), maxBytes, map: f.map, warm: f.warm, cold: null, inUseMs });

  it('records each file\'s event-time range and fetches only the evicted files overlapping the range, verified', async () => {
    const { files, contents } = await evictedFiles([100, 200, 300], 3000);
    const rows = f.map.all();
    expect(rows.map((r) => r.min_event_time_us)).toEqual(files.map((file) => file.min_ts_us));
    const cache = cacheOf(1e6);
    await cache.start();
    const report = await cache.fetchRange(around(200));
    expect(report).toMatchObject({ files: 1, bytes: 3000, fetchedFiles: 1, fetchedBytes: 3000 });
    const cached = listCachedData(join(cache['options'].dir));
    expect(cached.map((c) => c.sha256)).toEqual([rows[1]!.sha256]);
    expect(readFileSync(cached[0]!.path).equals(contents[1]!)).toBe(true);
    expect(cached[0]!.path).toMatch(/\/readings\/[0-9a-f]{64}\.parquet$/);
    // Cached now: warm is not asked again.
    await f.warm.delete(rows[1]!.object_key);
    expect(await cache.fetchRange(around(200))).toMatchObject({ files: 1, fetchedFiles: 0 });
    // Another dataset's range asks for nothing; a range covering all three fetches the other two.
    expect(await cache.fetchRange(around(200), { dataset: 'inspections' })).toMatchObject({ files: 0 });
    const progress: number[] = [];
    expect(await cache.fetchRange({ fromUs: 0, toUs: f.clock.ms * 1000 }, { onProgress: (p) => progress.push(p.doneFiles) })).toMatchObject({ files: 3, fetchedFiles: 2 });
    expect(progress).toEqual([1, 2, 3]);
  });

  it('does not fetch files still on local disk (they are in the hot views already)', async () => {
    f = await createTieringFixture();
    f.addL1('readings', { ageHours: 100 });
    await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'p', agentId: 'a' }, 0);
    await new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config: f.config(), stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: recordingLogger().logger, nowMs: f.nowMs }).pass();
    expect(f.map.all()[0]!.state).toBe('committed');
    const cache = cacheOf(1e6);
    expect(await cache.fetchRange(around(100))).toMatchObject({ files: 0, fetchedFiles: 0 });
  });

  it('stays within its byte budget: least recently used out first, a range larger than the budget refused', async () => {
    await evictedFiles([100, 200, 300, 400], 4000);
    const cache = cacheOf(10_000);
    await cache.start();
    await cache.fetchRange(around(100));
    await new Promise((r) => setTimeout(r, 20));
    await cache.fetchRange(around(200));
    await new Promise((r) => setTimeout(r, 20));
    await cache.fetchRange(around(100)); // used again: 200 is now the least recently used
    await new Promise((r) => setTimeout(r, 20));
    const report = await cache.fetchRange(around(300));
    expect(report.dropped).toBe(1);
    expect(cache.sizeBytes()).toBeLessThanOrEqual(10_000);
    const rows = f.map.all();
    const held = new Set(listCachedData(cache['options'].dir).map((c) => c.sha256));
    expect([0, 1, 2, 3].map((i) => held.has(rows[i]!.sha256))).toEqual([true, false, true, false]);
    // Three files (12 kB) cannot fit in 10 kB: refused before anything is fetched or dropped.
    await expect(cache.fetchRange({ fromUs: around(400).fromUs, toUs: around(200).toUs })).rejects.toBeInstanceOf(CacheBudgetError);
    expect(new Set(listCachedData(cache['options'].dir).map((c) => c.sha256))).toEqual(held);
    // A restart with a smaller budget trims to it.
    const smaller = new DataReadCache({ dir: cache['options'].dir, maxBytes: 5000, map: f.map, warm: f.warm, cold: null });
    await smaller.start();
    expect(smaller.sizeBytes()).toBe(4000);
  });

  it('never drops a file a query used moments ago to make room: the fetch is refused instead', async () => {
    await evictedFiles([100, 200, 300], 4000);
    const cache = cacheOf(10_000, 60_000);
    await cache.fetchRange(around(100));
    await cache.fetchRange(around(200));
    const held = listCachedData(cache['options'].dir).map((c) => c.sha256).sort();
    await expect(cache.fetchRange(around(300))).rejects.toThrow(/used in the last minutes/);
    expect(listCachedData(cache['options'].dir).map((c) => c.sha256).sort()).toEqual(held);
  });

  it('refuses a download whose bytes do not hash to the tier map\'s sha256, and keeps nothing of it', async () => {
    await evictedFiles([100], 3000);
    const row = f.map.all()[0]!;
    writeFileSync(join(f.warmDir, row.object_key), Buffer.alloc(3000, 7)); // corrupted in warm, same size
    const cache = cacheOf(1e6);
    await cache.start();
    await expect(cache.fetchRange(around(100))).rejects.toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect(listCachedData(cache['options'].dir)).toEqual([]);
    expect(readdirSync(join(cache['options'].dir, 'readings'))).toEqual([]);
  });

  it('adds the event-time column to a tier map created before it (rows without it count as starting at 0)', async () => {
    f = await createTieringFixture();
    f.db.exec('DROP TABLE tier_files');
    f.db.exec(`CREATE TABLE tier_files (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, dataset TEXT, local_path TEXT NOT NULL UNIQUE, object_key TEXT NOT NULL UNIQUE,
      size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, event_time_us INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'local', local_state TEXT NOT NULL DEFAULT 'present',
      attempts INTEGER NOT NULL DEFAULT 0, next_attempt_us INTEGER NOT NULL DEFAULT 0, last_error TEXT, set_aside_us INTEGER, registered_us INTEGER NOT NULL,
      uploaded_us INTEGER, committed_us INTEGER, archived_us INTEGER, expired_us INTEGER, evicted_us INTEGER)`);
    f.db.prepare(`INSERT INTO tier_files (kind, dataset, local_path, object_key, size_bytes, sha256, event_time_us, state, local_state, registered_us)
      VALUES ('data', 'readings', 'hot/readings/L1/x/a.parquet', 'k', 1, 's', 500, 'committed', 'evicted', 0)`).run();
    ensureTierSchema(f.db);
    expect(f.map.evictedDataOverlapping(100, 200).map((r) => r.object_key)).toEqual(['k']);
    expect(f.map.evictedDataOverlapping(600, 700)).toEqual([]);
  });
});
