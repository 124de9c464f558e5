// LandingReader.datasetsPort, the real GET /v1/datasets, over a real landing database:
// rows compacted into L1 (beside their rollup file), rows sealed into an L0 file whose
// physical purge has not run yet, and rows still in the landing log. The row count is
// sealed + landed, each row once; the time range spans files and log; a stream's
// freshness is what the latest-value cache holds.
import { afterEach, describe, expect, it } from 'vitest';
import type { RowValue } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { LandingReader } from '../../../agent/api/adapters.ts';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { awaitPurges } from '../../../agent/hot/purge.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { landedTable } from '../../../agent/landing/schema.ts';
import { LatestCache } from '../../../agent/latest/latest-cache.ts';
import { formatTimeUs } from '../../../agent/mapping/time.ts';
import { keyedReadingsConfig } from '../../support/sensor-dataset.ts';
import { compactOptions, createFixture, LATER, MINUTE, sealOptions, T0, type Fixture } from '../hot/fixture.ts';

const emptyConfig = datasetSchema.parse({ name: 'idle', time_column: 'ts', columns: [{ name: 'label', type: 'string' }] });

/** `n` readings from `startUs`, `stepUs` apart, over lines l0/l1 × sensors a/b. */
function readings(n: number, startUs: number, stepUs: number): RowValue[][] {
  return Array.from({ length: n }, (_, i) => [startUs + i * stepUs, `l${i % 2}`, i % 4 < 2 ? 'a' : 'b', i / 2, i % 3 === 0 ? 'bar' : null]);
}

let fx: Fixture | undefined;
let reader: LandingReader | undefined;
afterEach(() => {
  reader?.close();
  reader = undefined;
  fx?.close();
  fx = undefined;
});

describe('LandingReader.datasetsPort', () => {
  it('counts sealed and landed rows once each, spans both in its time range, and gives each cached stream its newest time', async () => {
    fx = createFixture([keyedReadingsConfig, emptyConfig]);
    const [ds] = fx.datasets as [NonNullable<Fixture['datasets'][0]>];
    // 12 rows compacted into L1 (the compaction also writes a rollup file: not rows).
    const compacted = readings(12, T0 + 1, 7_000_003);
    fx.land(ds, compacted);
    sealDataset(fx.db, ds, fx.stateDir, sealOptions);
    expect(compactDataset(fx.db, ds, fx.stateDir, compactOptions, LATER).errors).toEqual([]);
    expect(awaitPurges().done).toBe(true);
    // 8 rows sealed into an L0 file, a later window.
    fx.land(ds, readings(8, T0 + 20 * MINUTE, 1_000_001));
    const sealedRaw = fx.db.prepare(`SELECT * FROM "${landedTable(ds.name)}" ORDER BY id`).raw().all() as unknown[][];
    expect(sealedRaw).toHaveLength(8);
    sealDataset(fx.db, ds, fx.stateDir, sealOptions);
    expect(awaitPurges().done).toBe(true);
    // Put the sealed rows back below the watermark: the table as it is between a seal and
    // its deferred purge (or after a crash that lost the purge). They are not landed rows.
    const insertWithId = fx.db.prepare(`INSERT INTO "${landedTable(ds.name)}" VALUES (${sealedRaw[0]!.map(() => '?').join(', ')})`);
    for (const row of sealedRaw) insertWithId.run(row);
    // 5 rows still in the landing log, the newest of them the newest of all (µs precision).
    const landed = readings(5, T0 + 40 * MINUTE + 7, 2_000_001);
    fx.land(ds, landed);

    const levels = hotFilesOf(fx.db, ds.name).map((f) => f.level);
    expect(levels.filter((l) => l === 1).length).toBeGreaterThan(0);
    expect(levels).toContain(0);
    expect(levels).toContain(2);
    expect(fx.landedCount(ds)).toBe(5);

    // The cache starts empty at each start: it knows the streams of rows landed since.
    const nowMs = Math.floor((T0 + 45 * MINUTE) / 1000);
    const cache = new LatestCache({ datasets: fx.datasets, windowMinutes: 60, maxBytes: 16 * 1024 * 1024, now: () => nowMs });
    cache.onRows(landed.slice(0, 3).map((values) => ({ dataset: ds.name, values })));

    reader = new LandingReader(fx.dbPath);
    const [readingsInfo, idleInfo] = await reader.datasetsPort(fx.datasets, cache).datasets();
    expect(readingsInfo).toEqual({
      name: 'readings',
      columns: [
        { name: 'time', type: 'TIMESTAMP WITH TIME ZONE' },
        { name: 'line', type: 'VARCHAR' },
        { name: 'sensor', type: 'VARCHAR' },
        { name: 'value', type: 'DOUBLE' },
        { name: 'unit', type: 'VARCHAR' },
      ],
      rows: 12 + 8 + 5,
      minTime: formatTimeUs(T0 + 1),
      maxTime: formatTimeUs(T0 + 40 * MINUTE + 7 + 4 * 2_000_001),
      streams: expect.any(Array),
    });
    expect(readingsInfo!.minTime).toBe('2026-11-21T14:40:00.000001Z');
    // Rows 0, 1, 2 of `landed`: l0/a, l1/a, l0/b, each its only cached row.
    expect(new Map(readingsInfo!.streams.map((s) => [`${s.stream.line}/${s.stream.sensor}`, s.lastTime]))).toEqual(
      new Map([
        ['l0/a', formatTimeUs(landed[0]![0] as number)],
        ['l1/a', formatTimeUs(landed[1]![0] as number)],
        ['l0/b', formatTimeUs(landed[2]![0] as number)],
      ]),
    );
    // A newer row of a stream moves its freshness, and only its own.
    cache.onRows([{ dataset: ds.name, values: landed[4]! }]); // l0/a again
    const [after] = await reader.datasetsPort(fx.datasets, cache).datasets();
    expect(after!.streams.find((s) => s.stream.line === 'l0' && s.stream.sensor === 'a')!.lastTime).toBe(formatTimeUs(landed[4]![0] as number));
    expect(after!.streams.find((s) => s.stream.line === 'l1' && s.stream.sensor === 'a')!.lastTime).toBe(formatTimeUs(landed[1]![0] as number));

    expect(idleInfo).toEqual({ name: 'idle', columns: [{ name: 'ts', type: 'TIMESTAMP WITH TIME ZONE' }, { name: 'label', type: 'VARCHAR' }], rows: 0, minTime: null, maxTime: null, streams: [] });
  });

  it('counts rows sealed since the reader opened (no stale snapshot)', async () => {
    fx = createFixture([keyedReadingsConfig]);
    const [ds] = fx.datasets as [NonNullable<Fixture['datasets'][0]>];
    const cache = new LatestCache({ datasets: fx.datasets, windowMinutes: 60, maxBytes: 16 * 1024 * 1024 });
    reader = new LandingReader(fx.dbPath);
    const port = reader.datasetsPort(fx.datasets, cache);
    fx.land(ds, readings(6, T0, MINUTE / 10));
    expect((await port.datasets())[0]!.rows).toBe(6);
    sealDataset(fx.db, ds, fx.stateDir, sealOptions);
    fx.land(ds, readings(3, T0 + MINUTE, MINUTE / 10));
    expect((await port.datasets())[0]).toMatchObject({ rows: 9, minTime: formatTimeUs(T0), maxTime: formatTimeUs(T0 + MINUTE + 2 * (MINUTE / 10)) });
  });
});
