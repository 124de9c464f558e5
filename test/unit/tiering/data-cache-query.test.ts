// The read-through cache end to end in one process: real Parquet files sealed by the hot
// tier, queried; the older ones uploaded to a file:// warm store and evicted (gone from
// disk and from hot_files, as the evictor leaves them), so the query loses their rows;
// fetched back into the cache, the same query returns exactly the rows it did before.
import { mkdtempSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DataReadCache } from '../../../tiering/data-cache.ts';
import { DATA_CACHE_DIR } from '../../../tiering/data-cache-dir.ts';
import { FileObjectStore, sha256OfFile } from '../../../tiering/stores/file-store.ts';
import { ensureTierSchema, TierMap } from '../../../tiering/tier-map.ts';
import { MINUTE, sensorRows, sensorsConfig, T0 } from '../hot/fixture.ts';
import { createEngineFixture, type EngineFixture } from '../query/engine-fixture.ts';

const HOUR = 60 * MINUTE;

describe('query over an evicted time range through the read-through cache', () => {
  let ef: EngineFixture | undefined;
  afterEach(async () => {
    await ef?.close();
    ef = undefined;
  });

  it('returns the same rows as before the eviction, and the cached files are read inside the sandbox', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const { fx, engine } = ef;
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(40, T0 + 1, MINUTE / 10, 'old'));
    ef.seal();
    fx.land(sensors, sensorRows(12, T0 + 5 * HOUR, MINUTE / 10, 'new'));
    ef.seal();
    await engine.refreshFromRegistry();
    const sql = 'SELECT * FROM sensors ORDER BY time, sensor';
    const before = await engine.query(sql);
    expect(before.rows).toHaveLength(52);

    // Upload and evict the old window's files as tiering would.
    ensureTierSchema(fx.db);
    const map = new TierMap(fx.db);
    const warm = new FileObjectStore(pathToFileURL(mkdtempSync(join(tmpdir(), 'lakeside-warm-'))).href);
    await warm.start();
    const old = fx.db.prepare('SELECT path, min_ts_us, max_ts_us FROM hot_files WHERE dataset = ? AND max_ts_us < ?').all('sensors', T0 + HOUR) as { path: string; min_ts_us: number; max_ts_us: number }[];
    expect(old.length).toBeGreaterThan(0);
    for (const file of old) {
      const hashed = await sha256OfFile(join(fx.stateDir, file.path));
      const key = `p/sensors/${file.path}`;
      map.register([{ kind: 'data', dataset: 'sensors', local_path: file.path, object_key: key, size_bytes: hashed.sizeBytes, sha256: hashed.sha256, event_time_us: file.max_ts_us, min_event_time_us: file.min_ts_us }], T0);
      await warm.put(key, { path: join(fx.stateDir, file.path), sizeBytes: hashed.sizeBytes, sha256: hashed.sha256 });
      const id = map.byPath(file.path)!.id;
      map.markUploaded(id, T0);
      map.markCommitted([id], T0);
      fx.db.prepare('DELETE FROM hot_files WHERE path = ?').run(file.path);
      fx.db.prepare(`UPDATE tier_files SET local_state = 'evicted' WHERE id = ?`).run(id);
      unlinkSync(join(fx.stateDir, file.path));
    }
    await engine.refreshFromRegistry();
    const evicted = await engine.query(sql);
    expect(evicted.rows).toHaveLength(12);

    const cache = new DataReadCache({ dir: join(fx.stateDir, DATA_CACHE_DIR), maxBytes: 10 * 1024 * 1024, map, warm, cold: null });
    await cache.start();
    // A range covering only the new window needs nothing from warm.
    expect(await cache.fetchRange({ fromUs: T0 + 4 * HOUR, toUs: T0 + 6 * HOUR })).toMatchObject({ files: 0 });
    const report = await cache.fetchRange({ fromUs: T0, toUs: T0 + HOUR });
    expect(report.fetchedFiles).toBe(old.length);
    await engine.refreshFromRegistry();
    const after = await engine.query(sql);
    expect(after.rows).toEqual(before.rows);
    // Each cached file is listed once, beside the hot files.
    const viewed = engine.viewedFiles().get('sensors')!;
    expect(viewed.filter((p) => p.includes(`/${DATA_CACHE_DIR}/sensors/`))).toHaveLength(old.length);
    expect(new Set(viewed).size).toBe(viewed.length);
    // The sandbox still refuses files outside the hot tier and the cache.
    await expect(engine.query(`SELECT * FROM read_parquet('${join(fx.stateDir, 'landing.db')}')`)).rejects.toMatchObject({ code: 'QUERY_NOT_ALLOWED' });
    await warm.close();
  });
});
