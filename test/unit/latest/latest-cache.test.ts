import { describe, expect, it } from 'vitest';
import { LatestCache, UnknownDatasetError, InvalidStreamFilterError } from '../../../agent/latest/latest-cache.ts';
import { clock, inspections, sensorRow, sensors, T0_MS, T0_US } from './fixture.ts';

const SEC = 1_000_000;

function cache(now = clock().now, windowMinutes = 15, maxBytes = 64 * 1024 * 1024) {
  return new LatestCache({ datasets: [sensors, inspections], windowMinutes, maxBytes, now });
}

describe('latest values', () => {
  it('keeps the newest row per stream across many rows', () => {
    const c = cache();
    const rows = [];
    for (let i = 0; i < 1000; i++) {
      for (const line of ['coat1', 'coat2', 'coat3']) {
        for (const sensor of ['humidity', 'temp']) rows.push(sensorRow(T0_US - (1000 - i) * SEC, line, sensor, i));
      }
    }
    c.onRows(rows);
    const latest = c.latest('sensors');
    expect(latest).toHaveLength(6);
    for (const value of latest) {
      expect(value.values).toEqual({ value: 999, unit: 'pct', ok: true });
      expect(value.timeUs).toBe(T0_US - SEC);
      expect(value.time).toBe('2025-03-01T07:59:59.000000Z');
    }
    expect(latest.map((v) => v.stream)).toContainEqual({ line: 'coat3', sensor: 'humidity' });
  });

  it('does not let a late, older row replace the latest', () => {
    const c = cache();
    c.onRows([sensorRow(T0_US - 5 * SEC, 'coat3', 'humidity', 41.5)]);
    c.onRows([sensorRow(T0_US - 60 * SEC, 'coat3', 'humidity', 12)]);
    const [value] = c.latest('sensors', { line: 'coat3', sensor: 'humidity' });
    expect(value!.values.value).toBe(41.5);
    expect(value!.timeUs).toBe(T0_US - 5 * SEC);
    // an equal event time: the later arrival wins (a correction)
    c.onRows([sensorRow(T0_US - 5 * SEC, 'coat3', 'humidity', 41.7)]);
    expect(c.latest('sensors', { line: 'coat3', sensor: 'humidity' })[0]!.values.value).toBe(41.7);
  });

  it('filters on any subset of the stream key, exactly', () => {
    const c = cache();
    const rows = [];
    for (let l = 0; l < 50; l++) for (let s = 0; s < 20; s++) rows.push(sensorRow(T0_US - SEC, `line${l}`, `s${s}`, l * 100 + s));
    c.onRows(rows);
    expect(c.latest('sensors')).toHaveLength(1000);
    const line7 = c.latest('sensors', { line: 'line7' });
    expect(line7).toHaveLength(20);
    expect(line7.every((v) => v.stream.line === 'line7')).toBe(true);
    expect(c.latest('sensors', { sensor: 's3' })).toHaveLength(50);
    expect(c.latest('sensors', { line: 'line7', sensor: 's3' }).map((v) => v.values.value)).toEqual([703]);
    expect(c.latest('sensors', { line: 'line' })).toEqual([]); // exact, not a prefix of the value
    expect(c.latest('sensors', { line: 'nope', sensor: 's3' })).toEqual([]);
    expect(c.latest('sensors', {})).toHaveLength(1000);
    expect(() => c.latest('sensors', { unit: 'pct' })).toThrow(InvalidStreamFilterError);
  });

  it('treats a dataset without stream_key as one stream', () => {
    const c = cache();
    c.onRows([
      { dataset: 'inspections', values: [T0_US - 3 * SEC, 'scratch', 'a'.repeat(64)] },
      { dataset: 'inspections', values: [T0_US - 1 * SEC, 'ok', 'b'.repeat(64)] },
      { dataset: 'inspections', values: [T0_US - 2 * SEC, 'dent', 'c'.repeat(64)] },
    ]);
    const latest = c.latest('inspections');
    expect(latest).toEqual([{ stream: {}, time: '2025-03-01T07:59:59.000000Z', timeUs: T0_US - SEC, values: { label: 'ok', frame: 'b'.repeat(64) } }]);
    const window = c.window('inspections', {}, 1);
    expect(window.columns).toEqual(['time', 'label', 'frame']);
    expect(window.rows.map((r) => r[1])).toEqual(['scratch', 'dent', 'ok']);
  });

  it('throws a typed error for an unknown dataset and returns nothing for an unknown stream', () => {
    const c = cache();
    c.onRows([sensorRow(T0_US - SEC, 'coat3', 'humidity', 1), { dataset: 'ghost', values: [T0_US, 1] }]);
    expect(() => c.latest('ghost')).toThrow(UnknownDatasetError);
    try {
      c.window('ghost', {}, 1);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'UNKNOWN_DATASET', dataset: 'ghost', retriable: false });
    }
    expect(c.latest('sensors', { line: 'coat9', sensor: 'humidity' })).toEqual([]);
    expect(c.window('sensors', { line: 'coat9', sensor: 'humidity' }, 5).rows).toEqual([]);
    expect(() => c.window('sensors', { line: 'coat3' }, 5)).toThrow(InvalidStreamFilterError);
    expect(c.stats().rowsUnknownDataset).toBe(1);
  });
});

describe('windows', () => {
  it('returns only the last N minutes in event-time order, whatever the arrival order', () => {
    const t = clock();
    const c = cache(t.now);
    const stream = { line: 'coat3', sensor: 'humidity' };
    // 20 minutes of one row per 10 s, arriving shuffled (deterministically)
    const times = Array.from({ length: 120 }, (_, i) => T0_US - (i + 1) * 10 * SEC);
    const shuffled = times.map((time, i) => ({ time, key: (i * 7919) % 120 })).sort((a, b) => a.key - b.key);
    for (const { time } of shuffled) c.onRows([sensorRow(time, 'coat3', 'humidity', time / SEC)]);
    c.onRows([sensorRow(T0_US - 60 * SEC, 'coat2', 'humidity', 0)]); // another stream: not in the window

    const last5 = c.window('sensors', stream, 5);
    expect(last5.columns).toEqual(['time', 'value', 'unit', 'ok']);
    expect(last5.complete).toBe(true);
    const got = last5.rows.map((r) => r[0] as number);
    expect(got).toEqual(times.filter((x) => x >= T0_US - 300 * SEC).sort((a, b) => a - b));
    expect(last5.rows[0]).toEqual([T0_US - 300 * SEC, (T0_US - 300 * SEC) / SEC, 'pct', true]);

    // rows older than window_minutes (15) were never kept; asking for more is flagged
    const all = c.window('sensors', stream, 60);
    expect(all.complete).toBe(false);
    expect(all.rows).toHaveLength(90);
    expect(c.window('sensors', stream, 60, 3).rows.map((r) => r[0])).toEqual([T0_US - 30 * SEC, T0_US - 20 * SEC, T0_US - 10 * SEC]);

    // time passes: the window follows the clock
    t.advance(120_000);
    expect(c.window('sensors', stream, 5).rows).toHaveLength(18);
  });

  it('keeps ties in arrival order and handles a row older than all held', () => {
    const c = cache();
    const s = { line: 'a', sensor: 'b' };
    c.onRows([sensorRow(T0_US - 2 * SEC, 'a', 'b', 1), sensorRow(T0_US - 2 * SEC, 'a', 'b', 2), sensorRow(T0_US - 9 * SEC, 'a', 'b', 0)]);
    c.onRows([sensorRow(T0_US - 2 * SEC, 'a', 'b', 3), sensorRow(T0_US - 1 * SEC, 'a', 'b', 4)]);
    expect(c.window('sensors', s, 1).rows.map((r) => r[1])).toEqual([0, 1, 2, 3, 4]);
  });

  it('evicts rows past window_minutes lazily and by the sweep, and counts them', () => {
    const t = clock();
    const c = cache(t.now, 1);
    for (let i = 0; i < 60; i++) c.onRows([sensorRow(T0_US - i * SEC, 'l', `s${i % 3}`, i)]);
    expect(c.stats().rowsHeld).toBe(60);
    t.advance(10 * 60_000);
    c.onRows([sensorRow(T0_US + 10 * 60 * SEC, 'l', 's0', 1)]);
    const stats = c.stats();
    expect(stats.rowsHeld).toBe(1);
    expect(stats.rowsEvictedByAge).toBe(60);
    expect(c.latest('sensors')).toHaveLength(3); // latest values stay
  });

  it('summarises datasets: streams, freshness per stream, rows held', () => {
    const c = cache();
    c.onRows([sensorRow(T0_US - 3 * SEC, 'l1', 'h', 1), sensorRow(T0_US - 2 * SEC, 'l1', 'h', 2), sensorRow(T0_US - 5 * SEC, 'l2', 'h', 3)]);
    const [sensorsSummary, inspectionsSummary] = c.datasetsSummary();
    expect(sensorsSummary).toMatchObject({ dataset: 'sensors', streamKey: ['line', 'sensor'], streams: 2, rowsHeld: 3, newestUs: T0_US - 2 * SEC });
    expect(sensorsSummary!.perStream).toContainEqual({ stream: { line: 'l2', sensor: 'h' }, newestUs: T0_US - 5 * SEC, newest: '2025-03-01T07:59:55.000000Z', rows: 1 });
    expect(inspectionsSummary).toMatchObject({ dataset: 'inspections', streams: 0, rowsHeld: 0, newestUs: null, newest: null });
  });
});

describe('bounds', () => {
  it('stays within max_bytes by cutting the oldest rows across streams, keeping every latest value', () => {
    const t = clock();
    const maxBytes = 2 * 1024 * 1024;
    const c = new LatestCache({ datasets: [sensors], windowMinutes: 15, maxBytes, now: t.now });
    // 200 streams × 1 row/s for 10 minutes ≈ 120k rows ≈ 3 MB unbounded
    for (let s = 0; s < 600; s++) {
      t.set(T0_MS + s * 1000);
      const rows = [];
      for (let k = 0; k < 200; k++) rows.push(sensorRow((T0_MS + s * 1000) * 1000, `line${k % 10}`, `s${k}`, s, k % 2 ? 'pct' : 'degC'));
      c.onRows(rows);
      expect(c.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    const stats = c.stats();
    expect(stats.rowsEvictedByMemory).toBeGreaterThan(0);
    expect(stats.memoryEvictionPasses).toBeGreaterThan(0);
    expect(stats.memoryFloorUs).not.toBeNull();
    expect(stats.rowsHeld + stats.rowsEvictedByMemory + stats.rowsEvictedByAge).toBe(120_000);
    expect(stats.bytes).toBeGreaterThan(maxBytes * 0.5); // the budget is used, not thrown away
    const latest = c.latest('sensors');
    expect(latest).toHaveLength(200);
    expect(latest.every((v) => v.values.value === 599)).toBe(true);
    // the oldest rows went first: every stream still has its recent minute, complete
    const w = c.window('sensors', { line: 'line3', sensor: 's3' }, 1);
    expect(w.complete).toBe(true);
    expect(w.rows).toHaveLength(61);
    expect(c.window('sensors', { line: 'line3', sensor: 's3' }, 15).complete).toBe(false);
    // a late row below the floor is counted, not admitted; it never replaces the latest
    c.onRows([sensorRow(T0_US + 1, 'line3', 's3', -1)]);
    expect(c.stats().rowsEvictedByMemory).toBe(stats.rowsEvictedByMemory + 1);
    expect(c.latest('sensors', { line: 'line3', sensor: 's3' })[0]!.values.value).toBe(599);
    console.log(`memory bound: ${JSON.stringify(c.stats())}`);
  });

  it('counts the row text windowJson keeps, and stays within max_bytes when reads add it', () => {
    const t = clock();
    const maxBytes = 2 * 1024 * 1024;
    const c = new LatestCache({ datasets: [sensors], windowMinutes: 15, maxBytes, now: t.now });
    for (let s = 0; s < 300; s++) {
      t.set(T0_MS + s * 1000);
      const rows = [];
      for (let k = 0; k < 200; k++) rows.push(sensorRow((T0_MS + s * 1000) * 1000, `line${k % 10}`, `s${k}`, s + k / 1000));
      c.onRows(rows);
    }
    const before = c.stats();
    expect(before.bytes).toBeLessThan(maxBytes * 0.9);
    const asked = c.windowJson('sensors', { line: 'line3', sensor: 's3' }, 5);
    expect(JSON.parse(Buffer.from(asked.rowsJson).toString())).toEqual(c.window('sensors', { line: 'line3', sensor: 's3' }, 5).rows);
    expect(c.stats().bytes).toBeGreaterThan(before.bytes); // the kept text is accounted
    // Every stream's whole window printed: far more text than the bound leaves room for.
    for (let k = 0; k < 200; k++) {
      const stream = { line: `line${k % 10}`, sensor: `s${k}` };
      const rows = c.window('sensors', stream, 15).rows;
      const { rowsJson } = c.windowJson('sensors', stream, 15);
      expect(JSON.parse(Buffer.from(rowsJson).toString())).toEqual(rows); // the answer is the window as it was asked
      expect(c.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    expect(c.stats().rowsEvictedByMemory).toBeGreaterThan(0);
    expect(c.latest('sensors')).toHaveLength(200);
  });

  it('drops the least recently updated stream beyond maxStreams', () => {
    const c = new LatestCache({ datasets: [sensors], windowMinutes: 15, maxBytes: 64 << 20, maxStreams: 3, now: clock().now });
    c.onRows([sensorRow(T0_US - 4, 'l', 'a', 1), sensorRow(T0_US - 3, 'l', 'b', 1), sensorRow(T0_US - 2, 'l', 'c', 1)]);
    c.onRows([sensorRow(T0_US - 1, 'l', 'a', 2)]); // a is now the most recent
    c.onRows([sensorRow(T0_US, 'l', 'd', 1)]);
    expect(c.latest('sensors').map((v) => v.stream.sensor).sort()).toEqual(['a', 'c', 'd']);
    expect(c.stats()).toMatchObject({ streams: 3, streamsEvicted: 1, rowsHeld: 4 });
    expect(c.latest('sensors', { sensor: 'b' })).toEqual([]);
    expect(c.window('sensors', { line: 'l', sensor: 'b' }, 5).rows).toEqual([]);
    c.onRows([sensorRow(T0_US, 'l', 'b', 9)]); // comes back as a new stream (drops c, now the oldest)
    expect(c.latest('sensors', { line: 'l', sensor: 'b' }).map((v) => v.values.value)).toEqual([9]);
    expect(c.latest('sensors').map((v) => v.stream.sensor).sort()).toEqual(['a', 'b', 'd']);
  });

  it('takes 1M rows in one go (throughput printed, not asserted)', () => {
    const t = clock();
    const c = new LatestCache({ datasets: [sensors], windowMinutes: 15, maxBytes: 128 << 20, now: t.now });
    const batches = [];
    for (let b = 0; b < 1000; b++) {
      const rows = [];
      for (let k = 0; k < 1000; k++) rows.push(sensorRow(T0_US - (1000 - b) * 50_000 + k, `line${k % 8}`, `s${k % 5000}`, k));
      batches.push(rows);
    }
    const started = performance.now();
    for (const rows of batches) c.onRows(rows);
    const ms = performance.now() - started;
    console.log(`onRows: 1,000,000 rows in ${ms.toFixed(0)} ms (${Math.round(1e6 / (ms / 1000)).toLocaleString('en')} rows/s); ${JSON.stringify(c.stats())}`);
    expect(c.stats().rowsHeld).toBe(1_000_000);
  });
});
