import { describe, expect, it } from 'vitest';
import { StreamWindow } from '../../../agent/latest/stream-window.ts';
import { DICT_LIMIT } from '../../../agent/latest/column-store.ts';
import { jsonValue } from '../../../agent/api/formats.ts';
import { inspections, sensors } from './fixture.ts';

describe('StreamWindow', () => {
  it('stores numbers, booleans and nulls column-wise and reads them back', () => {
    const w = new StreamWindow(sensors, [3, 4, 5]);
    w.insert(2, [2, 'l', 's', 1.25, 'pct', false]);
    w.insert(1, [1, 'l', 's', null, null, null]);
    w.insert(3, [3, 'l', 's', -0.5, 'degC', true]);
    expect(w.rowsSince(0)).toEqual([
      [1, null, null, null],
      [2, 1.25, 'pct', false],
      [3, -0.5, 'degC', true],
    ]);
    expect(w.rowsSince(2, 1)).toEqual([[3, -0.5, 'degC', true]]);
  });

  it('switches a string column to plain storage past the dictionary limit and accounts its strings exactly', () => {
    const w = new StreamWindow(inspections, [1, 2]);
    const empty = w.bytes();
    for (let i = 0; i < DICT_LIMIT * 4; i++) w.insert(i, [i, `label${i}`, `sha${i}`.padEnd(64, '0')]);
    const rows = w.rowsSince(0);
    expect(rows).toHaveLength(DICT_LIMIT * 4);
    expect(rows[DICT_LIMIT * 2]).toEqual([DICT_LIMIT * 2, `label${DICT_LIMIT * 2}`, `sha${DICT_LIMIT * 2}`.padEnd(64, '0')]);
    expect(w.bytes()).toBeGreaterThan(empty + DICT_LIMIT * 4 * (8 + 64));
    expect(w.evictBefore(Number.MAX_SAFE_INTEGER)).toBe(DICT_LIMIT * 4);
    expect(w.length).toBe(0);
    w.shrinkToFit();
    // every string payload was released with its row; only the (small) buffers remain
    expect(w.bytes()).toBeLessThanOrEqual(empty + 8 * (8 + 8 + 8));
  });

  it('keeps order through compaction, growth and out-of-order inserts', () => {
    const w = new StreamWindow(sensors, [3]);
    let expected: number[] = [];
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 40; i++) {
        const t = round * 100 + ((i * 37) % 40) * 2; // shuffled within the round
        w.insert(t, [t, 'l', 's', t]);
        expected.push(t);
      }
      const cutoff = round * 100 - 300;
      w.evictBefore(cutoff);
      expected = expected.filter((t) => t >= cutoff);
    }
    expected.sort((a, b) => a - b);
    expect(w.rowsSince(Number.NEGATIVE_INFINITY).map((r) => r[0])).toEqual(expected);
    expect(w.rowsSince(Number.NEGATIVE_INFINITY).every((r) => r[0] === r[1])).toBe(true);
  });

  it('prints rows as JSON exactly as the API did from rowsSince (jsonValue, then JSON.stringify), and keeps the text right through moves, late rows and eviction', () => {
    const w = new StreamWindow(sensors, [3, 4, 5]);
    const same = (from: number, limit?: number) =>
      expect(w.jsonRowsSince(from, limit).toString()).toBe(JSON.stringify(w.rowsSince(from, limit).map((row) => row.map(jsonValue))));
    same(0);
    w.insert(1_740_816_000_000_001, [1_740_816_000_000_001, 'l', 's', 0.1, 'q"uote\\', true]);
    w.insert(5, [5, 'l', 's', -0, null, null]);
    w.insert(2 ** 53 - 1, [2 ** 53 - 1, 'l', 's', Number.POSITIVE_INFINITY, 'ü', false]);
    same(0);
    same(10, 1);
    let expectedRows = 3;
    // Printed rows are kept; late rows, growth, compaction and eviction must move or drop that text with its row.
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 25; i++) {
        const t = 1_000_000 + round * 100 + ((i * 37) % 25) * 3;
        w.insert(t, [t, 'l', 's', t / 7, i % 3 ? 'pct' : `u${t}`, i % 2 === 0]);
        expectedRows++;
      }
      same(Number.NEGATIVE_INFINITY);
      expectedRows -= w.evictBefore(1_000_000 + round * 100 - 400);
      same(Number.NEGATIVE_INFINITY, 30);
    }
    expect(w.rowsSince(Number.NEGATIVE_INFINITY)).toHaveLength(expectedRows);
    same(Number.NEGATIVE_INFINITY);
  });

  it('counts the kept row text in its bytes and frees it with the rows', () => {
    const w = new StreamWindow(sensors, [3]);
    for (let t = 0; t < 1000; t++) w.insert(1_740_816_000_000_000 + t, [1_740_816_000_000_000 + t, 'l', 's', t / 3]);
    const before = w.bytes();
    w.jsonRowsSince(0);
    // ≈ 40 bytes of text per row in the arena.
    expect(w.bytes() - before).toBeGreaterThan(1000 * 40);
    w.evictBefore(Number.MAX_SAFE_INTEGER);
    w.shrinkToFit();
    expect(w.bytes()).toBeLessThan(before / 10);
  });
});
