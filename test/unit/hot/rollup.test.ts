import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { batchToRows, columnsFromRows } from '../../../agent/hot/columns.ts';
import { compactDataset, sortByTime } from '../../../agent/hot/compact.ts';
import { recoverHotTier } from '../../../agent/hot/recovery.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { computeRollup } from '../../../agent/hot/rollup.ts';
import { rollupSchema } from '../../../agent/hot/rollup-schema.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { compactOptions, createFixture, LATER, MINUTE, sealOptions, T0, type Fixture } from './fixture.ts';
import { eventsConfig, metricsConfig, metricsRows } from './rollup-fixture.ts';

let fx: Fixture | undefined;
afterEach(() => {
  fx?.close();
  fx = undefined;
});

describe('rollup schema', () => {
  it('minute, the stream key, then count/min/max/sum/last/last_ts per numeric column, with ids derived from field ids', () => {
    const schema = rollupSchema(resolveDataset(metricsConfig))!;
    const columns = schema.dataset.columns.map((c) => [c.name, c.type, c.fieldId]);
    expect(columns.slice(0, 3)).toEqual([
      ['minute', 'timestamp', 1],
      ['line', 'string', 16],
      ['sensor', 'string', 24],
    ]);
    expect(columns.slice(3, 9)).toEqual([
      ['value_count', 'long', 33], ['value_min', 'double', 34], ['value_max', 'double', 35],
      ['value_sum', 'double', 36], ['value_last', 'double', 37], ['value_last_ts', 'timestamp', 38],
    ]);
    expect(columns.slice(9).map((c) => `${c[0]}:${c[1]}`)).toEqual([
      'hits_count:long', 'hits_min:int', 'hits_max:int', 'hits_sum:long', 'hits_last:int', 'hits_last_ts:timestamp',
      'total_count:long', 'total_min:long', 'total_max:long', 'total_sum:long', 'total_last:long', 'total_last_ts:timestamp',
    ]);
    expect(new Set(schema.dataset.columns.map((c) => c.fieldId)).size).toBe(schema.dataset.columns.length);
  });

  it('no rollups without numeric columns, or when names would collide', () => {
    expect(rollupSchema(resolveDataset(eventsConfig))).toBeNull();
    const clash = (key: string) =>
      datasetSchema.parse({ name: 'clash', time_column: 'time', columns: [{ name: 'v', type: 'double' }, { name: key, type: 'string' }], stream_key: [key] });
    expect(rollupSchema(resolveDataset(clash('v_sum')))).toBeNull();
    expect(rollupSchema(resolveDataset(clash('minute')))).toBeNull();
    expect(rollupSchema(resolveDataset(clash('v_summary')))).not.toBeNull();
  });
});

describe('computeRollup', () => {
  it('groups per minute and stream, last by event time, NaN above numbers, all-null groups counted 0', () => {
    const dataset = resolveDataset(metricsConfig);
    const schema = rollupSchema(dataset)!;
    const row = (t: number, sensor: string | null, value: number | null, hits: number | null) => [T0 + t, 'line_0', sensor, value, hits, null, 'u', true];
    const rows = [
      row(30_000_000, 'a', 2, 5),
      row(10_000_000, 'a', 4, 7), // earlier in time, later in input
      row(20_000_000, null, NaN, null),
      row(25_000_000, null, 1, null),
      row(MINUTE + 1, 'a', null, null),
      row(MINUTE + 2, 'a', NaN, 1),
    ];
    const batch = columnsFromRows(dataset, rows, 0);
    const out = batchToRows(schema.dataset, computeRollup(schema, batch, sortByTime((batch.columns[0] as { values: Float64Array }).values)));
    const pick = (r: (string | number | boolean | null)[]) => [r[0], r[1], r[2], ...r.slice(3, 9), ...r.slice(9, 15)];
    expect(out.map(pick)).toEqual([
      [T0, 'line_0', 'a', 2, 2, 4, 6, 2, T0 + 30_000_000, 2, 5, 7, 12, 5, T0 + 30_000_000],
      [T0, 'line_0', null, 2, 1, NaN, NaN, 1, T0 + 25_000_000, 0, null, null, null, null, null],
      [T0 + MINUTE, 'line_0', 'a', 1, NaN, NaN, NaN, NaN, T0 + MINUTE + 2, 1, 1, 1, 1, 1, T0 + MINUTE + 2],
    ]);
    // total is null everywhere: count 0, the rest null.
    expect(out.map((r) => r.slice(15))).toEqual(out.map(() => [0, null, null, null, null, null]));
  });
});

describe('rollups at compaction', () => {
  it('writes one R1 file per compaction step, registered (level 2) with the L1 files; none for a dataset without numeric columns', () => {
    fx = createFixture([metricsConfig, eventsConfig]);
    const [metrics, events] = fx.datasets as [ReturnType<typeof resolveDataset>, ReturnType<typeof resolveDataset>];
    fx.land(metrics, metricsRows(60, T0, 9_000_001));
    fx.land(events, [[T0 + 1, 'line_0', 'x', true], [T0 + 2, 'line_1', null, false]]);
    for (const d of [metrics, events]) sealDataset(fx.db, d, fx.stateDir, sealOptions);
    const result = compactDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER);
    expect(result.errors).toEqual([]);
    const rollups = hotFilesOf(fx.db, 'metrics').filter((f) => f.level === 2);
    expect(rollups.map((f) => [f.path, f.partition_json])).toEqual([['hot/metrics/R1/20261121T1440Z/1-1.parquet', '{}']]);
    expect(rollups[0]!.min_ts_us).toBe(T0);
    expect(rollups[0]!.max_ts_us).toBe(T0 + 59 * 9_000_001);
    expect(rollups[0]!.record_count).toBeGreaterThan(0);
    expect(JSON.parse(rollups[0]!.stats_json).lower_bounds['1']).toBe(T0);
    expect(result.added.map((f) => f.level)).toEqual([1, 1, 2]);

    compactDataset(fx.db, events, fx.stateDir, compactOptions, LATER);
    expect(hotFilesOf(fx.db, 'events').map((f) => f.level)).toEqual([1, 1]);
    expect(existsSync(join(fx.stateDir, 'hot/events/R1'))).toBe(false);
  });

  it('a step that fails before its commit leaves no rollup file; recovery keeps registered rollups and deletes unregistered ones', () => {
    fx = createFixture([metricsConfig]);
    const metrics = fx.datasets[0]!;
    fx.land(metrics, metricsRows(30, T0, 1_000_000));
    sealDataset(fx.db, metrics, fx.stateDir, sealOptions);
    const failing = compactDataset(fx.db, metrics, fx.stateDir, { ...compactOptions, beforeCommit: () => { throw new Error('disk full'); } }, LATER);
    expect(failing.errors.map((e) => e.message)).toEqual(['disk full']);
    expect(existsSync(join(fx.stateDir, 'hot/metrics/R1/20261121T1440Z/1-1.parquet'))).toBe(false);
    expect(hotFilesOf(fx.db, 'metrics').map((f) => f.level)).toEqual([0]);

    compactDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER);
    const dir = join(fx.stateDir, 'hot/metrics/R1/20261121T1440Z');
    copyFileSync(join(dir, '1-1.parquet'), join(dir, '7-9.parquet')); // as if published, never registered
    const report = recoverHotTier(fx.db, fx.stateDir);
    expect(report.orphansDeleted).toEqual(['hot/metrics/R1/20261121T1440Z/7-9.parquet']);
    expect(report.missing).toEqual([]);
    expect(readdirSync(dir)).toEqual(['1-1.parquet']);
  });
});
