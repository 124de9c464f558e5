import { afterEach, describe, expect, it } from 'vitest';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { compactOptions, LATER, MINUTE, sealOptions, sensorRows, sensorsConfig, T0 } from '../hot/fixture.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { eventsConfig, metricsConfig, metricsRows } from '../hot/rollup-fixture.ts';
import { createEngineFixture, type EngineFixture } from './engine-fixture.ts';
import { DIRECT, ROLLUP } from './rollup-queries.ts';
import { overlappingRollupFiles } from '../../../agent/query/rollup-view.ts';

let ef: EngineFixture | undefined;
afterEach(async () => {
  await ef?.close();
  ef = undefined;
});

function compactAll(e: EngineFixture, nowUs: number): void {
  for (const d of e.fx.datasets) {
    const result = compactDataset(e.fx.db, d, e.fx.stateDir, compactOptions, nowUs);
    expect(result.errors).toEqual([]);
  }
}

describe('<dataset>_1m rollup views', () => {
  it('equal a GROUP BY over the raw rows, across windows', async () => {
    ef = await createEngineFixture([metricsConfig]);
    const metrics = ef.fx.datasets[0]!;
    ef.fx.land(metrics, metricsRows(400, T0 - 3 * MINUTE, 4_000_003)); // ≈27 minutes: 4 windows
    ef.seal();
    compactAll(ef, LATER);
    await ef.engine.refreshFromRegistry();
    const rollup = await ef.engine.query(ROLLUP);
    const direct = await ef.engine.query(DIRECT);
    expect(rollup.columns).toEqual(direct.columns.map((c) => ({ ...c, type: c.name.endsWith('_count') ? 'BIGINT' : c.type })));
    expect(rollup.rows.length).toBeGreaterThan(100);
    expect(rollup.rows).toEqual(direct.rows);
    expect(ef.engine.viewedFiles().get('metrics_1m')).toHaveLength(4);
  });

  it('merge the extra rollup files of late rows: one row per minute and stream, still equal to the GROUP BY', async () => {
    ef = await createEngineFixture([metricsConfig]);
    const metrics = ef.fx.datasets[0]!;
    ef.fx.land(metrics, metricsRows(150, T0, 3_000_001));
    ef.seal();
    compactAll(ef, LATER);
    // Late rows for the same minutes and streams, compacted into a second file each.
    for (const [round, offset] of [[1, 500_000], [2, 700_001]] as const) {
      ef.fx.land(metrics, metricsRows(60, T0 + offset, 5_000_000, round * 7));
      sealDataset(ef.fx.db, metrics, ef.fx.stateDir, { ...sealOptions, nowUs: () => LATER + round * 120_000_000 });
      compactAll(ef, LATER + round * 120_000_000 + 61_000_000);
    }
    const rollupFiles = hotFilesOf(ef.fx.db, 'metrics').filter((f) => f.level === 2);
    expect(rollupFiles).toHaveLength(3);
    await ef.engine.refreshFromRegistry();
    const rollup = await ef.engine.query(ROLLUP);
    expect(rollup.rows).toEqual((await ef.engine.query(DIRECT)).rows);
    // The files overlap: without the merge there would be more rows.
    expect(rollupFiles.reduce((n, f) => n + f.record_count, 0)).toBeGreaterThan(rollup.rows.length);
    const keys = await ef.engine.query('SELECT count(*) FROM (SELECT DISTINCT minute, line, sensor FROM metrics_1m)');
    expect(keys.rows).toEqual([[rollup.rows.length]]);
  });

  it('are typed when empty; rows appear only once compacted; no view for a dataset without numeric columns', async () => {
    ef = await createEngineFixture([metricsConfig, eventsConfig, sensorsConfig]);
    const described = await ef.engine.query('DESCRIBE metrics_1m');
    expect(described.rows.slice(0, 9).map((r) => [r[0], r[1]])).toEqual([
      ['minute', 'TIMESTAMP WITH TIME ZONE'], ['line', 'VARCHAR'], ['sensor', 'VARCHAR'],
      ['value_count', 'BIGINT'], ['value_min', 'DOUBLE'], ['value_max', 'DOUBLE'], ['value_sum', 'DOUBLE'], ['value_last', 'DOUBLE'], ['value_last_ts', 'TIMESTAMP WITH TIME ZONE'],
    ]);
    expect(described.rows.slice(9).map((r) => r[1])).toEqual([
      'BIGINT', 'INTEGER', 'INTEGER', 'BIGINT', 'INTEGER', 'TIMESTAMP WITH TIME ZONE',
      'BIGINT', 'BIGINT', 'BIGINT', 'BIGINT', 'BIGINT', 'TIMESTAMP WITH TIME ZONE',
    ]);
    // No stream key: the whole dataset is one stream.
    expect((await ef.engine.query('DESCRIBE sensors_1m')).rows.map((r) => r[0])).toEqual([
      'minute', 'value_count', 'value_min', 'value_max', 'value_sum', 'value_last', 'value_last_ts',
    ]);
    await expect(ef.engine.query('SELECT * FROM events_1m')).rejects.toThrow(/events_1m/);

    const [metrics, events, sensors] = ef.fx.datasets as [typeof ef.fx.datasets[0], typeof ef.fx.datasets[0], typeof ef.fx.datasets[0]];
    ef.fx.land(metrics, metricsRows(20, T0, 1_000_000));
    ef.fx.land(events, [[T0 + 1, 'line_0', 'x', true]]);
    ef.fx.land(sensors, sensorRows(20, T0, 7_000_000));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    expect((await ef.engine.query('SELECT count(*) FROM metrics')).rows).toEqual([[20]]);
    expect((await ef.engine.query('SELECT count(*) FROM metrics_1m')).rows).toEqual([[0]]); // sealed, not yet compacted

    compactAll(ef, LATER);
    await ef.engine.refreshFromRegistry();
    expect((await ef.engine.query('SELECT sum(value_count) FROM metrics_1m')).rows).toEqual([[16]]); // value is null for every 5th row
    expect((await ef.engine.query('SELECT count(*) FROM metrics')).rows).toEqual([[20]]); // rollup files are not rows
    expect((await ef.engine.query('SELECT count(*) FROM events')).rows).toEqual([[1]]);
    const sensorMinutes = await ef.engine.query(
      'SELECT minute, value_count, value_sum FROM sensors_1m EXCEPT SELECT to_timestamp((epoch_us(time) // 60000000) * 60), count(value), sum(value) FROM sensors GROUP BY 1',
    );
    expect(sensorMinutes.rows).toEqual([]);
    expect([...ef.engine.viewedFiles().keys()].sort()).toEqual(['events', 'metrics', 'metrics_1m', 'sensors', 'sensors_1m']);
  });
});

describe('overlappingRollupFiles', () => {
  it('picks the files sharing a minute with another file, by their event times', () => {
    const m = 60_000_000;
    // 0: minutes 0–9; 1: 10–19; 2: late rows in minute 12; 3: 30–39; 4: minute 39 (same minute as 3's end); 5: 50.
    const times: [number, number][] = [[0, 10 * m - 1], [10 * m, 20 * m - 1], [12 * m + 5, 12 * m + 7], [30 * m, 39 * m + 1], [39 * m + 30, 39 * m + 59], [50 * m, 50 * m]];
    expect(overlappingRollupFiles(times)).toEqual([1, 2, 3, 4]);
    expect(overlappingRollupFiles([])).toEqual([]);
  });
});
