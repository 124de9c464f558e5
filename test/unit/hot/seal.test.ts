import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { awaitPurges } from '../../../agent/hot/purge.ts';
import { recoverHotTier } from '../../../agent/hot/recovery.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { createFixture, MINUTE, sealOptions, sensorRows, sortRows, T0, type Fixture } from './fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

describe('seal', () => {
  it('moves landed rows into one L0 file per window and registers them in the same step', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const rows = [...sensorRows(50, T0 + 1, MINUTE / 10), ...sensorRows(30, T0 + 10 * MINUTE, MINUTE / 10, 'w2-')];
    fx.land(sensors, rows);
    const result = sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    expect(result.rows).toBe(80);
    expect(fx.landedCount(sensors)).toBe(0);
    const files = hotFilesOf(fx.db, 'sensors');
    expect(files.map((f) => [f.level, f.path, f.record_count, f.partition_json])).toEqual([
      [0, 'hot/sensors/L0/20261121T1440Z/1-80.parquet', 50, '{}'],
      [0, 'hot/sensors/L0/20261121T1450Z/1-80.parquet', 30, '{}'],
    ]);
    expect(files[0]!.window_start_us).toBe(T0);
    expect(files[0]!.min_ts_us).toBe(T0 + 1);
    expect(files[0]!.max_ts_us).toBe(T0 + 1 + 49 * (MINUTE / 10));
    expect(JSON.parse(files[1]!.stats_json).record_count).toBe(30);
    for (const f of files) expect(existsSync(join(fx.stateDir, f.path))).toBe(true);
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows(rows));
    expect(sealDataset(fx.db, sensors, fx.stateDir, sealOptions).rows).toBe(0);
  });

  it('retires rows by the sealed_through watermark; the purge thread and recovery delete them', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const raw = (): number => fx.db.prepare('SELECT count(*) FROM landed_sensors').pluck().get() as number;
    fx.land(sensors, sensorRows(20, T0, 1000));
    expect(sealDataset(fx.db, sensors, fx.stateDir, sealOptions).rows).toBe(20);
    expect(fx.db.prepare(`SELECT id FROM sealed_through WHERE dataset = 'sensors'`).pluck().get()).toBe(20);
    expect(awaitPurges()).toEqual({ done: true, errors: [] });
    expect(raw()).toBe(0);
    // A purge lost to a crash: sealed rows still in the table are neither landed nor sealed again.
    fx.land(sensors, sensorRows(5, T0 + 5000, 1000));
    fx.db.prepare(`UPDATE sealed_through SET id = 23 WHERE dataset = 'sensors'`).run();
    expect(fx.landedCount(sensors)).toBe(2);
    expect(readHotTier(fx.stateDir, 'sensors').fromLanded).toBe(2);
    expect(raw()).toBe(5);
    expect(recoverHotTier(fx.db, fx.stateDir).sealedRowsPurged).toBe(3);
    expect(raw()).toBe(2);
    expect(sealDataset(fx.db, sensors, fx.stateDir, sealOptions).rows).toBe(2);
    awaitPurges();
    expect(raw()).toBe(0);
  });

  it('seals in chunks of seal_max_rows, one commit each', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(25, T0, 1000));
    const result = sealDataset(fx.db, sensors, fx.stateDir, { ...sealOptions, sealMaxRows: 10 });
    expect(result.files.map((f) => [f.path.split('/').pop(), f.record_count])).toEqual([
      ['1-10.parquet', 10],
      ['11-20.parquet', 10],
      ['21-25.parquet', 5],
    ]);
  });

  it('a pipelined seal that fails at a step keeps the steps before it and leaves the rest landed', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    // Two windows per step, so each step hands the encoder thread a split batch.
    const rows = sensorRows(25, T0 + 10 * MINUTE - 12_000, 1000);
    fx.land(sensors, rows);
    let commits = 0;
    const failing = {
      ...sealOptions,
      sealMaxRows: 10,
      beforeCommit: () => {
        if (++commits === 2) throw new Error('disk I/O error');
      },
    };
    const named = (files: { path: string; record_count: number }[]): [string, number][] =>
      files.map((f) => [f.path.split('/').slice(-2).join('/'), f.record_count]);
    expect(() => sealDataset(fx.db, sensors, fx.stateDir, failing)).toThrow('disk I/O error');
    const first = named(hotFilesOf(fx.db, 'sensors'));
    expect(first.map(([path]) => path)).toEqual(['20261121T1440Z/1-10.parquet', '20261121T1450Z/1-10.parquet']);
    expect(first.reduce((sum, [, count]) => sum + count, 0)).toBe(10);
    expect(fx.landedCount(sensors)).toBe(15);
    const onDisk = ['20261121T1440Z', '20261121T1450Z'].flatMap((w) => readdirSync(join(fx.stateDir, 'hot/sensors/L0', w)).map((f) => `${w}/${f}`));
    expect(onDisk.sort()).toEqual(first.map(([path]) => path));
    const rest = named(sealDataset(fx.db, sensors, fx.stateDir, { ...sealOptions, sealMaxRows: 10 }).files);
    expect(rest.map(([path]) => path.split('/')[1])).toEqual(['11-20.parquet', '11-20.parquet', '21-25.parquet', '21-25.parquet']);
    expect(rest.reduce((sum, [, count]) => sum + count, 0)).toBe(15);
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows(rows));
  });

  it('leaves rows that land during the seal for the next one', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(10, T0, 1000));
    const late = sensorRows(5, T0 + 5000, 1000, 'late');
    sealDataset(fx.db, sensors, fx.stateDir, { ...sealOptions, beforeCommit: () => fx.land(sensors, late) });
    expect(fx.landedCount(sensors)).toBe(5);
    const tier = readHotTier(fx.stateDir, 'sensors');
    expect(tier.fromFiles).toBe(10);
    expect(tier.fromLanded).toBe(5);
    expect(sealDataset(fx.db, sensors, fx.stateDir, sealOptions).rows).toBe(5);
    expect(readHotTier(fx.stateDir, 'sensors').rows).toHaveLength(15);
  });

  it('a failed step unpublishes its files and keeps the rows landed', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(10, T0, 1000));
    expect(() =>
      sealDataset(fx.db, sensors, fx.stateDir, {
        ...sealOptions,
        beforeCommit: () => {
          throw new Error('disk I/O error');
        },
      }),
    ).toThrow('disk I/O error');
    expect(fx.landedCount(sensors)).toBe(10);
    expect(hotFilesOf(fx.db, 'sensors')).toEqual([]);
    expect(readdirSync(join(fx.stateDir, 'hot/sensors/L0/20261121T1440Z'))).toEqual([]);
  });
});
