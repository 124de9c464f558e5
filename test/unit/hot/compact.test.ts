import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchToRows } from '../../../agent/hot/columns.ts';
import { compactDataset, sortByTime } from '../../../agent/hot/compact.ts';
import { decodeParquet } from '../../../agent/hot/parquet-reader.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { compactOptions, createFixture, LATER, MINUTE, sealOptions, sensorRows, sortRows, T0, type Fixture } from './fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

function fileRows(fx: Fixture, path: string) {
  return batchToRows(fx.datasets[0]!, decodeParquet(fx.datasets[0]!, readFileSync(join(fx.stateDir, path))));
}

describe('compaction', () => {
  it('merges the L0 files of a closed window into one sorted L1 file per partition and removes the L0', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const rows = [...sensorRows(40, T0 + 7, 9_000_001), ...sensorRows(20, T0 + 3, 13_000_000, 'b')];
    fx.land(sensors, rows.slice(0, 30));
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    fx.land(sensors, rows.slice(30));
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    const l0 = hotFilesOf(fx.db, 'sensors');
    expect(l0.map((f) => f.level)).toEqual([0, 0]);

    // Not closed yet: end + grace is still ahead.
    expect(compactDataset(fx.db, sensors, fx.stateDir, compactOptions, T0 + 10 * MINUTE + 59_000_000).windows).toBe(0);

    const result = compactDataset(fx.db, sensors, fx.stateDir, compactOptions, LATER);
    expect(result.errors).toEqual([]);
    expect(result.removed).toEqual(l0.map((f) => f.path));
    const all = hotFilesOf(fx.db, 'sensors');
    expect(all.map((f) => [f.level, f.path, f.partition_json])).toEqual([
      [1, 'hot/sensors/L1/20261121T1440Z/line=line_0/1-2-p0-0.parquet', '{"line":"line_0"}'],
      [1, 'hot/sensors/L1/20261121T1440Z/line=line_1/1-2-p1-0.parquet', '{"line":"line_1"}'],
      [1, 'hot/sensors/L1/20261121T1440Z/line=line_2/1-2-p2-0.parquet', '{"line":"line_2"}'],
      [2, 'hot/sensors/R1/20261121T1440Z/1-2.parquet', '{}'], // the window's rollups (rollup.test.ts)
    ]);
    const files = all.filter((f) => f.level === 1);
    for (const f of l0) expect(existsSync(join(fx.stateDir, f.path))).toBe(false);
    for (const f of files) {
      const got = fileRows(fx, f.path);
      const times = got.map((r) => r[0] as number);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(new Set(got.map((r) => r[1]))).toEqual(new Set([JSON.parse(f.partition_json).line]));
      expect(f.min_ts_us).toBe(times[0]);
      expect(f.max_ts_us).toBe(times[times.length - 1]);
      expect(f.record_count).toBe(got.length);
    }
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows(rows));
  });

  it('compacts late rows into an extra L1 file and never rewrites the existing ones', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const first = sensorRows(30, T0, 1_000_000);
    fx.land(sensors, first);
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    compactDataset(fx.db, sensors, fx.stateDir, compactOptions, LATER);
    const before = hotFilesOf(fx.db, 'sensors');
    const stamps = before.map((f) => [f.path, statSync(join(fx.stateDir, f.path)).mtimeMs, readFileSync(join(fx.stateDir, f.path))]);

    const late = sensorRows(4, T0 + 5 * MINUTE, 1, 'late');
    fx.land(sensors, late);
    sealDataset(fx.db, sensors, fx.stateDir, { ...sealOptions, nowUs: () => LATER - 30_000_000 });
    // A late L0 waits its own grace period (60 s) before it is compacted.
    expect(compactDataset(fx.db, sensors, fx.stateDir, compactOptions, LATER).windows).toBe(0);
    const result = compactDataset(fx.db, sensors, fx.stateDir, compactOptions, LATER + 30_000_000);
    expect(result.windows).toBe(1);
    const after = hotFilesOf(fx.db, 'sensors');
    expect(after.filter((f) => f.level === 0)).toEqual([]);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((f) => f.path)).toEqual([
      'hot/sensors/L1/20261121T1440Z/line=line_0/6-6-p0-0.parquet',
      'hot/sensors/L1/20261121T1440Z/line=line_1/6-6-p1-0.parquet',
      'hot/sensors/L1/20261121T1440Z/line=line_2/6-6-p2-0.parquet',
      'hot/sensors/R1/20261121T1440Z/6-6.parquet', // ids: the first rollup took 5,
    ]);
    for (const [path, mtime, bytes] of stamps) {
      expect(statSync(join(fx.stateDir, path as string)).mtimeMs).toBe(mtime);
      expect(readFileSync(join(fx.stateDir, path as string))).toEqual(bytes);
    }
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows([...first, ...late]));
  });

  it('splits a partition larger than l1MaxRows into several files', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(30, T0, 1000));
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    const result = compactDataset(fx.db, sensors, fx.stateDir, { ...compactOptions, l1MaxRows: 4 }, LATER);
    expect(result.added.filter((f) => f.level === 1).map((f) => f.record_count)).toEqual([4, 4, 2, 4, 4, 2, 4, 4, 2]);
  });

  it('sorts stably by time', () => {
    const times = new Float64Array([5, 3, 5, 1, 3, 2 ** 52]);
    expect([...sortByTime(times)]).toEqual([3, 1, 4, 0, 2, 5]);
    expect([...sortByTime(new Float64Array([1, 2, 2, 3]))]).toEqual([0, 1, 2, 3]);
  });
});
