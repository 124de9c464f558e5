import { describe, expect, it } from 'vitest';
import { RowTextStore } from '../../../agent/latest/row-text-store.ts';

const rows = (store: RowTextStore, from: number, to: number) => JSON.parse(store.rowsJson(from, to).toString()) as unknown[];

describe('RowTextStore', () => {
  it('gives the JSON array of the printed rows, contiguous or gathered after moves, in UTF-8', () => {
    const store = new RowTextStore(8);
    store.set(0, '1,"a"');
    store.set(1, '2,"ü€"');
    store.set(2, '3,null');
    expect(store.rowsJson(0, 3).toString()).toBe('[[1,"a"],[2,"ü€"],[3,null]]');
    expect(store.get(1)).toBe('2,"ü€"');
    // A late row put in the middle: slots move, texts stay where they are.
    store.copyWithin(2, 1, 3);
    store.clearRange(1, 2);
    expect(store.has(1)).toBe(false);
    store.set(1, '1.5,"late"');
    expect(rows(store, 0, 4)).toEqual([[1, 'a'], [1.5, 'late'], [2, 'ü€'], [3, null]]);
    expect(store.rowsJson(2, 2).toString()).toBe('[]');
  });

  it('compacts when full: keeps every live text and frees what was dropped', () => {
    const store = new RowTextStore(4);
    for (let round = 0; round < 2000; round++) {
      const slot = round % 4;
      store.release(slot);
      store.set(slot, `${round},"${'x'.repeat(round % 50)}"`);
    }
    // Slots hold rounds 1996..1999; everything older was dropped and compacted away.
    expect(rows(store, 0, 4)).toEqual([1996, 1997, 1998, 1999].map((r) => [r, 'x'.repeat(r % 50)]));
    expect(store.payloadBytes).toBeLessThan(1024);
  });

  it('resizes with its slots, and a much emptier store gives its arena back', () => {
    const store = new RowTextStore(1000);
    for (let i = 0; i < 1000; i++) store.set(i, `${i},${'9'.repeat(40)}`);
    const full = store.payloadBytes;
    for (let i = 0; i < 990; i++) store.release(i);
    store.resize(16, 990, 1000);
    expect(rows(store, 0, 10).map((r) => (r as number[])[0])).toEqual([990, 991, 992, 993, 994, 995, 996, 997, 998, 999]);
    expect(store.payloadBytes).toBeLessThan(full / 4);
  });
});
