import { afterEach, describe, expect, it } from 'vitest';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { mergeDataset, RetiredFiles } from '../../../agent/hot/merge.ts';
import { compactOptions, LATER, MINUTE, T0 } from '../hot/fixture.ts';
import { metricsConfig, metricsRows } from '../hot/rollup-fixture.ts';
import { createEngineFixture, type EngineFixture } from './engine-fixture.ts';
import { DIRECT, ROLLUP } from './rollup-queries.ts';

let ef: EngineFixture | undefined;
afterEach(async () => {
  await ef?.close();
  ef = undefined;
});

/** 18:40 on the test day: the rows' hours (14:40–16:20) are closed, their day is not. */
const MID = T0 + 240 * MINUTE;

const TOTALS = `SELECT
  (SELECT count(*) FROM metrics), (SELECT sum(value) FROM metrics), (SELECT sum(hits) FROM metrics),
  (SELECT sum(value_count) FROM metrics_1m), (SELECT sum(value_sum) FROM metrics_1m), (SELECT sum(hits_sum) FROM metrics_1m),
  (SELECT count(*) FROM metrics_1m)`;

describe('views across a merge', () => {
  it('a query streaming rows across a merge reads every row once; totals are equal before, during and after the view swap', async () => {
    ef = await createEngineFixture([metricsConfig]);
    const e = ef;
    const metrics = e.fx.datasets[0]!;
    const rows = metricsRows(20_000, T0, 300_000); // 100 minutes: hours 14, 15 and 16
    e.fx.land(metrics, rows);
    e.seal();
    expect(compactDataset(e.fx.db, metrics, e.fx.stateDir, compactOptions, LATER).errors).toEqual([]);
    await e.engine.refreshFromRegistry();
    const totals = async (): Promise<unknown[][]> => (await e.engine.query(TOTALS)).rows;
    const expected = await totals();
    expect(expected[0]).toEqual([20_000, expect.any(Number), expect.any(Number), rows.filter((r) => r[3] !== null).length, expected[0]![1], expected[0]![2], expect.any(Number)]);

    // A query that bound the window files, read partly before the merge and the rest after it.
    const stream = await e.engine.queryStream('SELECT time FROM metrics');
    const reader = stream[Symbol.asyncIterator]();
    const times: unknown[] = [];
    const first = await reader.next();
    times.push(...(first.value as unknown[][]).map((r) => r[0]));
    expect(times.length).toBeLessThan(rows.length);

    let clockMs = 0;
    const retired = new RetiredFiles(e.fx.stateDir, 1_000, () => clockMs);
    const merged = mergeDataset(e.fx.db, metrics, e.fx.stateDir, { ...compactOptions, retire: (paths) => retired.add(paths) }, MID);
    expect(merged.errors).toEqual([]);
    expect(merged.merges).toBe(3 * 2 + 3);
    // The old views, over the old (unregistered, not yet unlinked) files: read as they
    // are, without the missing-file retry (which would have refreshed the views).
    const windowFiles = e.engine.viewedFiles().get('metrics');
    expect(windowFiles).toHaveLength(20);
    expect(await totals()).toEqual(expected);
    expect(e.engine.viewedFiles().get('metrics')).toEqual(windowFiles);
    await e.engine.refreshFromRegistry();
    const viewed = e.engine.viewedFiles();
    expect(viewed.get('metrics')!.map((p) => p.slice(p.lastIndexOf('/') + 1, p.lastIndexOf('/') + 2))).toEqual(Array(6).fill('h'));
    expect(viewed.get('metrics_1m')).toHaveLength(3);
    expect(await totals()).toEqual(expected);
    expect((await e.engine.query(ROLLUP)).rows).toEqual((await e.engine.query(DIRECT)).rows);

    for (let next = await reader.next(); !next.done; next = await reader.next()) times.push(...(next.value as unknown[][]).map((r) => r[0]));
    expect(times).toHaveLength(rows.length);
    expect(new Set(times).size).toBe(rows.length);

    clockMs = 1_000;
    expect(retired.unlinkDue()).toBe(merged.removed.length);
    expect(await totals()).toEqual(expected);
  });
});
