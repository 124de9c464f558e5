import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../../config/schema.ts';
import { Sealer, type FilesChanged, type HotLogger } from '../../../agent/hot/sealer.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { createFixture, LATER, sensorRows, sensorsConfig, sortRows, T0, type Fixture } from './fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

function logger(): HotLogger & { errors: unknown[] } {
  const errors: unknown[] = [];
  return { errors, info: () => {}, warn: () => {}, error: (obj) => errors.push(obj) };
}

const hot = configSchema.shape.hot.parse({ seal_interval_ms: 60_000, compaction_interval_ms: 60_000 });

describe('Sealer (worker thread)', () => {
  it('recovers at start, seals and compacts on request, emits files-changed, and seals once more on stop', async () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const log = logger();
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot, logger: log });
    const events: FilesChanged[] = [];
    sealer.on('files-changed', (e) => events.push(e));
    await sealer.start();
    expect(sealer.lastRecovery).toEqual({ tempFilesDeleted: [], orphansDeleted: [], missing: [], emptyDirsRemoved: 0, sealedRowsPurged: 0 });

    const rows = sensorRows(40, T0, 1_000_000);
    fx.land(sensors, rows.slice(0, 20));
    const sealed = await sealer.sealNow();
    expect(sealed.failures).toEqual([]);
    expect(sealed.results[0]!.rows).toBe(20);
    expect(events).toHaveLength(1);
    expect(events[0]!.added.map((f) => f.path)).toEqual(['hot/sensors/L0/20261121T1440Z/1-20.parquet']);

    const compacted = await sealer.compactNow(LATER);
    const windowFiles = compacted.results[0]!.added;
    expect(windowFiles.map((f) => f.level)).toEqual([1, 1, 1, 2]); // + the window's rollups
    // Files just compacted: their hour and day wait for the next step.
    expect(compacted.merges[0]!.merges).toBe(0);
    expect(events[1]!.removed).toEqual(['hot/sensors/L0/20261121T1440Z/1-20.parquet']);
    // The next step merges the closed hour (L1 per line) and the closed day (rollups): merge.ts.
    const merged = await sealer.compactNow(LATER);
    expect(merged.results[0]!.windows).toBe(0);
    expect(merged.merges[0]!.added.map((f) => [f.level, f.path.replace(/\d+-\d+/, 'ids')])).toEqual([
      [1, 'hot/sensors/L1/20261121T1400Z/line=line_0/hids-0.parquet'],
      [1, 'hot/sensors/L1/20261121T1400Z/line=line_1/hids-0.parquet'],
      [1, 'hot/sensors/L1/20261121T1400Z/line=line_2/hids-0.parquet'],
      [2, 'hot/sensors/R1/20261121T0000Z/dids.parquet'],
    ]);
    expect(events[2]!.removed).toEqual(windowFiles.map((f) => f.path));
    // Retired, not yet unlinked: a query that bound them may still read them.
    for (const f of windowFiles) expect(existsSync(join(fx.stateDir, f.path))).toBe(true);

    fx.land(sensors, rows.slice(20));
    await Promise.all([sealer.stop(), sealer.stop()]);
    await sealer.stop();
    for (const f of windowFiles) expect(existsSync(join(fx.stateDir, f.path))).toBe(false); // unlinked on stop
    expect(fx.landedCount(sensors)).toBe(0);
    expect(hotFilesOf(fx.db, 'sensors').map((f) => f.level)).toEqual([1, 1, 1, 2, 0]);
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows(rows));
    await expect(sealer.sealNow()).rejects.toThrow('stopped');
    expect(log.errors).toEqual([]);
  });

  it('seals on its timer', async () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot: { ...hot, seal_interval_ms: 20 }, logger: logger() });
    const changed = new Promise<FilesChanged>((resolve) => sealer.on('files-changed', resolve));
    await sealer.start();
    fx.land(sensors, sensorRows(5, T0, 1000));
    expect((await changed).added[0]!.record_count).toBe(5);
    await sealer.stop();
  });
});
