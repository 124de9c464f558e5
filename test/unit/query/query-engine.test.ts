import { afterEach, describe, expect, it } from 'vitest';
import { QueryEngine, QueryFailedError, QueryTimeoutError } from '../../../agent/query/query-engine.ts';
import { waitFor } from '../../support/wait-for.ts';
import { allTypesConfig, createFixture, MINUTE, sensorRows, sensorsConfig, T0 } from '../hot/fixture.ts';
import { createEngineFixture, queryDefaults, silentLogger, type EngineFixture } from './engine-fixture.ts';
import { isoFromMicros } from '../../../agent/query/json-values.ts';

let ef: EngineFixture | undefined;
afterEach(async () => {
  await ef?.close();
  ef = undefined;
});

const iso = (us: number): string => isoFromMicros(BigInt(us), 'Z');

describe('QueryEngine views', () => {
  it('shows sealed rows with their types; time is a timestamp with time zone', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const sensors = ef.fx.datasets[0]!;
    ef.fx.land(sensors, sensorRows(30, T0 + 1, MINUTE / 10));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    const result = await ef.engine.query('SELECT * FROM sensors ORDER BY time');
    expect(result.columns).toEqual([
      { name: 'time', type: 'TIMESTAMP WITH TIME ZONE' },
      { name: 'line', type: 'VARCHAR' },
      { name: 'sensor', type: 'VARCHAR' },
      { name: 'value', type: 'DOUBLE' },
      { name: 'unit', type: 'VARCHAR' },
    ]);
    expect(result.rows).toHaveLength(30);
    expect(result.truncated).toBe(false);
    expect(result.rows[0]).toEqual([iso(T0 + 1), 'line_0', 'r0', null, '°C']);
    expect(result.rows[1]).toEqual([iso(T0 + 1 + MINUTE / 10), 'line_1', 'r1', 0.25, 'bar']);
    expect(result.rows[0]![0]).toBe('2026-11-21T14:40:00.000001Z');
  });

  it('maps every column type, and big integers to numbers when safe', async () => {
    ef = await createEngineFixture([allTypesConfig]);
    const ds = ef.fx.datasets[0]!;
    ef.fx.land(ds, [[T0 + 5, 7, 2 ** 40, 1.5, true, 'x', T0 - 1, 'ab'.repeat(32)]]);
    ef.seal();
    await ef.engine.refresh({ added: [], removed: [] });
    const result = await ef.engine.query('SELECT *, 9007199254740993::BIGINT AS big, 42::BIGINT AS small FROM all_types');
    expect(result.columns.map((c) => c.type)).toEqual([
      'TIMESTAMP WITH TIME ZONE', 'INTEGER', 'BIGINT', 'DOUBLE', 'BOOLEAN', 'VARCHAR', 'TIMESTAMP WITH TIME ZONE', 'VARCHAR', 'BIGINT', 'BIGINT',
    ]);
    expect(result.rows).toEqual([[iso(T0 + 5), 7, 2 ** 40, 1.5, true, 'x', iso(T0 - 1), 'ab'.repeat(32), '9007199254740993', 42]]);
  });

  it('an empty dataset has a view with its columns and no rows', async () => {
    ef = await createEngineFixture([sensorsConfig, allTypesConfig]);
    const described = await ef.engine.query('DESCRIBE all_types');
    expect(described.rows.map((r) => [r[0], r[1]])).toEqual([
      ['ts', 'TIMESTAMP WITH TIME ZONE'], ['i', 'INTEGER'], ['l', 'BIGINT'], ['d', 'DOUBLE'], ['b', 'BOOLEAN'], ['s', 'VARCHAR'], ['at', 'TIMESTAMP WITH TIME ZONE'], ['image', 'VARCHAR'],
    ]);
    const count = await ef.engine.query('SELECT count(*) AS n FROM sensors');
    expect(count.rows).toEqual([[0]]);
  });

  it('a refresh after a new seal shows the new rows', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const sensors = ef.fx.datasets[0]!;
    ef.fx.land(sensors, sensorRows(10, T0 + 1, MINUTE / 10));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    expect((await ef.engine.query('SELECT count(*) FROM sensors')).rows).toEqual([[10]]);
    ef.fx.land(sensors, sensorRows(5, T0 + 20 * MINUTE, MINUTE / 10, 'late'));
    ef.seal();
    // Not yet refreshed: the view still reads the files it had.
    expect((await ef.engine.query('SELECT count(*) FROM sensors')).rows).toEqual([[10]]);
    await ef.engine.refresh({ added: [], removed: [] });
    expect((await ef.engine.query("SELECT count(*), count(*) FILTER (WHERE sensor LIKE 'late%') FROM sensors")).rows).toEqual([[15, 5]]);
    expect(ef.engine.viewedFiles().get('sensors')).toHaveLength(2);
  });

  it('retries once when a file vanished under it (compaction), after re-reading the registry', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const sensors = ef.fx.datasets[0]!;
    ef.fx.land(sensors, sensorRows(10, T0 + 1, MINUTE / 10));
    ef.seal();
    ef.fx.land(sensors, sensorRows(10, T0 + 2, MINUTE / 10, 'b'));
    ef.seal();
    await ef.engine.refreshFromRegistry();
    // What compaction does, reduced: the registry forgets a file, then it is unlinked; the view still names it.
    const [gone] = ef.fx.db.prepare('SELECT path FROM hot_files ORDER BY id LIMIT 1').pluck().all() as string[];
    ef.fx.db.prepare('DELETE FROM hot_files WHERE path = ?').run(gone);
    const { unlinkSync } = await import('node:fs');
    unlinkSync(`${ef.fx.stateDir}/${gone}`);
    expect((await ef.engine.query('SELECT count(*) FROM sensors')).rows).toEqual([[10]]);
  });

  it('shows the newest quarantined messages without their payload', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const insert = ef.fx.db.prepare(
      `INSERT INTO quarantine (received_at_us, source, coordinates, dataset, reason_code, reason, payload, payload_bytes) VALUES (?, 'mqtt', 'plant/x', ?, 'BAD_JSON', 'not JSON', ?, 3)`,
    );
    insert.run(T0, 'sensors', Buffer.from('abc'));
    insert.run(T0 + 1, null, Buffer.from('def'));
    await ef.engine.refreshFromRegistry();
    const result = await ef.engine.query('SELECT * FROM quarantine ORDER BY id');
    expect(result.columns.map((c) => c.name)).toEqual(['id', 'received_at', 'source', 'coordinates', 'dataset', 'reason_code', 'reason', 'payload_bytes']);
    expect(result.rows).toEqual([
      [1, iso(T0), 'mqtt', 'plant/x', 'sensors', 'BAD_JSON', 'not JSON', 3],
      [2, iso(T0 + 1), 'mqtt', 'plant/x', null, 'BAD_JSON', 'not JSON', 3],
    ]);
  });
});

describe('QueryEngine quarantine timer', () => {
  it('shows messages quarantined after start on its own timer, with no refresh() call', async () => {
    const fx = createFixture([sensorsConfig]);
    // As the reads worker builds it: the default quarantine refresh (every 2 s).
    const engine = new QueryEngine({ stateDir: fx.stateDir, dbPath: fx.dbPath, datasets: [sensorsConfig], query: queryDefaults, logger: silentLogger });
    try {
      await engine.start();
      expect((await engine.query('SELECT count(*) FROM quarantine')).rows).toEqual([[0]]);
      const insert = fx.db.prepare(
        `INSERT INTO quarantine (received_at_us, source, coordinates, dataset, reason_code, reason, payload, payload_bytes) VALUES (?, 'mqtt', ?, 'sensors', 'BAD_JSON', 'not JSON', x'00', 1)`,
      );
      const coordinatesSeen = async () => (await engine.query('SELECT coordinates FROM quarantine ORDER BY id')).rows.map((r) => r[0]);
      insert.run(T0, 'plant/first');
      await waitFor(async () => (await coordinatesSeen()).length === 1, 'the first quarantined message in SQL');
      expect(await coordinatesSeen()).toEqual(['plant/first']);
      // And again: the timer keeps running after a refresh that found rows.
      insert.run(T0 + 1, 'plant/second');
      await waitFor(async () => (await coordinatesSeen()).length === 2, 'the second quarantined message in SQL');
      expect(await coordinatesSeen()).toEqual(['plant/first', 'plant/second']);
    } finally {
      await engine.stop();
      fx.close();
    }
  });
});

describe('QueryEngine limits', () => {
  it('truncates at max_rows and max bytes, and says so', async () => {
    ef = await createEngineFixture([sensorsConfig], { max_rows: 5000 });
    const capped = await ef.engine.query('SELECT * FROM range(10000)');
    expect(capped.rows).toHaveLength(5000);
    expect(capped.truncated).toBe(true);
    const exact = await ef.engine.query('SELECT * FROM range(5000)');
    expect(exact.rows).toHaveLength(5000);
    expect(exact.truncated).toBe(false);
    const fewer = await ef.engine.query('SELECT * FROM range(100)', { maxRows: 10 });
    expect(fewer.rows).toEqual([[0], [1], [2], [3], [4], [5], [6], [7], [8], [9]]);
    expect(fewer.truncated).toBe(true);
    const bytes = await ef.engine.query("SELECT repeat('x', 100) FROM range(100)", { maxBytes: 1000 });
    expect(bytes.rows.length).toBeLessThan(10);
    expect(bytes.truncated).toBe(true);
  });

  it('a cross-join bomb is interrupted by the timeout and the engine answers the next query', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    // A small build side: nothing to run out of memory on, 10^14 pairs to count.
    await expect(ef.engine.query('SELECT count(*) FROM range(100000) a, range(1000000000) b', { timeoutMs: 300 })).rejects.toBeInstanceOf(QueryTimeoutError);
    // Both sides at 10^9: the build side may hit the memory limit before the timeout; either way it is stopped.
    const error = await ef.engine.query('SELECT count(*) FROM range(1000000000) a, range(1000000000) b', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect((error as { code?: string }).code === 'QUERY_TIMEOUT' || /Out of Memory Error/.test((error as Error).message)).toBe(true);
    expect((await ef.engine.query('SELECT 42 AS answer')).rows).toEqual([[42]]);
  });

  it('streams large results chunk by chunk', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const stream = await ef.engine.queryStream('SELECT range AS i FROM range(10000)');
    expect(stream.columns).toEqual([{ name: 'i', type: 'BIGINT' }]);
    let chunks = 0;
    let rows = 0;
    for await (const chunk of stream) {
      chunks++;
      rows += chunk.length;
    }
    expect(chunks).toBeGreaterThan(1);
    expect(rows).toBe(10000);
    expect(stream.truncated).toBe(false);
  });

  it('a stream closed early releases its connection', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    for (let i = 0; i < 5; i++) {
      const stream = await ef.engine.queryStream('SELECT * FROM range(1000000)');
      await stream.close();
    }
    expect((await ef.engine.query('SELECT 1')).rows).toEqual([[1]]);
  });

  it('DuckDB errors become QUERY_FAILED with DuckDB message and no stack in it', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const error = await ef.engine.query('SELECT nope FROM sensors').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
    expect(error).toMatchObject({ code: 'QUERY_FAILED' });
    expect((error as Error).message).toMatch(/Binder Error/);
    expect((error as Error).message).not.toMatch(/\n\s+at /);
  });

  it('stop interrupts running queries and is safe twice', async () => {
    ef = await createEngineFixture([sensorsConfig]);
    const running = ef.engine.query('SELECT count(*) FROM range(1e9::BIGINT) a, range(1e9::BIGINT) b');
    await new Promise((r) => setTimeout(r, 100));
    await ef.engine.stop();
    await ef.engine.stop();
    await expect(running).rejects.toMatchObject({ code: 'QUERY_FAILED' });
    await expect(ef.engine.query('SELECT 1')).rejects.toMatchObject({ code: 'QUERY_FAILED' });
  });
});
