// include_warm "auto": the event-time range a query reads, read from DuckDB's own parse
// tree; a query that does not bound every dataset it reads gets no range (never one
// narrower than what it reads).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allTypesConfig, sensorsConfig } from '../hot/fixture.ts';
import { createEngineFixture, type EngineFixture } from './engine-fixture.ts';

const us = (iso: string): number => Date.parse(iso) * 1000;

describe('QueryEngine.timeRangeOf', () => {
  let ef: EngineFixture;
  beforeAll(async () => {
    ef = await createEngineFixture([sensorsConfig, allTypesConfig]);
  });
  afterAll(async () => ef.close());

  it.each([
    ["SELECT * FROM sensors WHERE time >= TIMESTAMPTZ '2026-11-01 00:00:00+00' AND time < '2026-11-02T00:00:00Z' AND line = 'a'", '2026-11-01T00:00:00Z', us('2026-11-02T00:00:00Z'), ['sensors']],
    ["SELECT count(*) FROM sensors s WHERE s.time BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-01T06:00:00Z'", '2026-11-01T00:00:00Z', us('2026-11-01T06:00:00Z') + 1, ['sensors']],
    ["SELECT * FROM sensors WHERE '2026-11-03T00:00:00Z' < time AND time <= '2026-11-04T00:00:00Z'", '2026-11-03T00:00:00Z', us('2026-11-04T00:00:00Z') + 1, ['sensors']],
    // Two reads: the hull of both ranges, both datasets.
    [
      "SELECT ts FROM all_types WHERE ts >= '2026-10-01T00:00:00Z' AND ts < '2026-10-02T00:00:00Z' UNION ALL SELECT time FROM sensors WHERE time >= '2026-11-01T00:00:00Z' AND time < '2026-11-02T00:00:00Z'",
      '2026-10-01T00:00:00Z',
      us('2026-11-02T00:00:00Z'),
      ['all_types', 'sensors'],
    ],
  ])('%s', async (sql, from, toUs, datasets) => {
    const range = await ef.engine.timeRangeOf(sql);
    expect(range).toEqual({ fromUs: us(from), toUs, datasets });
  });

  it('with no upper bound the range runs to now', async () => {
    const before = Date.now() * 1000;
    const range = (await ef.engine.timeRangeOf("SELECT * FROM sensors WHERE time > DATE '2026-11-01'"))!;
    expect(range.toUs).toBeGreaterThanOrEqual(before);
    expect(range.toUs).toBeLessThanOrEqual(Date.now() * 1000);
  });

  it.each([
    ['no bound at all', 'SELECT * FROM sensors'],
    ['only an upper bound', "SELECT * FROM sensors WHERE time < '2026-11-02'"],
    ['a bound under OR', "SELECT * FROM sensors WHERE time >= '2026-11-01' OR line = 'a'"],
    ['a bound that is not a literal', "SELECT * FROM sensors WHERE time >= now() - INTERVAL 3 DAY"],
    ['a bound on another table of a join', "SELECT * FROM sensors s JOIN all_types a ON s.line = a.s WHERE a.ts >= '2026-11-01'"],
    ['a subquery read unbounded, bounded only outside', "SELECT * FROM (SELECT * FROM sensors) x WHERE x.time >= '2026-11-01'"],
    ['an unbounded second read', "SELECT time FROM sensors WHERE time >= '2026-11-01' UNION ALL SELECT ts FROM all_types"],
    ['SQL that does not parse', 'SELEKT 1'],
    ['no dataset', 'SELECT 1'],
  ])('gives no range for %s', async (_what, sql) => {
    expect(await ef.engine.timeRangeOf(sql)).toBeNull();
  });

  it('a CTE named like a dataset is not the dataset', async () => {
    expect(await ef.engine.timeRangeOf("WITH sensors AS (SELECT TIMESTAMPTZ '2026-11-01' AS time) SELECT * FROM sensors")).toBeNull();
    const range = await ef.engine.timeRangeOf("WITH recent AS (SELECT * FROM sensors WHERE time >= '2026-11-01T00:00:00Z') SELECT count(*) FROM recent");
    expect(range?.fromUs).toBe(us('2026-11-01T00:00:00Z'));
  });
});
