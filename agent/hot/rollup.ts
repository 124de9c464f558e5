/**
 * Per-minute rollups per stream, computed at compaction from the window's merged
 * columns in event-time order (schema and semantics: rollup-schema.ts).
 *
 * Invariants:
 * - Two linear passes over typed arrays, no row objects, no per-row strings: pass 1
 *   gives each row its group (minute, stream), groups numbered in order of first
 *   appearance in time order (so by minute, then by the stream's first row in it);
 *   pass 2 folds each measure column into per-group arrays.
 * - A rollup file covers exactly the rows of one compaction step. Late rows of an
 *   already compacted window give another file with the same (minute, stream) keys:
 *   the view merges such files when read (query/rollup-view.ts) until merge.ts folds
 *   the closed hour's or day's files into one.
 */
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';
import { takeRows, timeValues, type ColumnBatch, type ColumnData, type NumberColumn } from './columns.ts';
import { MINUTE_US, type RollupSchema } from './rollup-schema.ts';

/** Dense per-row codes of one column, nulls as their own code; `count` codes in all. */
function columnCodes(data: ColumnData, n: number): { codes: Int32Array; count: number } {
  const valid = data.valid;
  if (data.kind === 'dict') {
    const nullCode = data.dictionary.length;
    if (!valid) return { codes: data.codes.subarray(0, n), count: nullCode };
    const codes = new Int32Array(n);
    for (let i = 0; i < n; i++) codes[i] = valid[i] ? (data.codes[i] as number) : nullCode;
    return { codes, count: nullCode + 1 };
  }
  const codes = new Int32Array(n);
  const index = new Map<number, number>();
  let anyNull = false;
  for (let i = 0; i < n; i++) {
    if (valid && valid[i] === 0) {
      anyNull = true;
      codes[i] = -1;
      continue;
    }
    const v = data.values[i] as number;
    let code = index.get(v);
    if (code === undefined) index.set(v, (code = index.size));
    codes[i] = code;
  }
  let count = index.size;
  if (anyNull) {
    const code = count++;
    for (let i = 0; i < n; i++) if (codes[i] === -1) codes[i] = code;
  }
  return { codes, count };
}

/** A dense stream id per row (0…count-1) from the stream key columns; no key → one stream. */
export function streamIds(source: Dataset, batch: ColumnBatch): { ids: Int32Array; count: number } {
  const n = batch.length;
  if (source.streamKey.length === 0) return { ids: new Int32Array(n), count: n > 0 ? 1 : 0 };
  let { codes: ids, count } = columnCodes(batch.columns[source.streamKey[0]!] as ColumnData, n);
  for (let k = 1; k < source.streamKey.length; k++) {
    const next = columnCodes(batch.columns[source.streamKey[k]!] as ColumnData, n);
    const combined = new Int32Array(n);
    let dense = 0;
    if (count * next.count <= 1 << 22) {
      const remap = new Int32Array(count * next.count).fill(-1);
      for (let i = 0; i < n; i++) {
        const key = (ids[i] as number) * next.count + (next.codes[i] as number);
        let id = remap[key] as number;
        if (id < 0) remap[key] = id = dense++;
        combined[i] = id;
      }
    } else {
      const remap = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const key = (ids[i] as number) * next.count + (next.codes[i] as number);
        let id = remap.get(key);
        if (id === undefined) remap.set(key, (id = dense++));
        combined[i] = id;
      }
    }
    ids = combined;
    count = dense;
  }
  return { ids, count };
}

/** Folds one measure over the groups: count, min, max, sum, last, last_ts (rollup-schema.ts). */
function foldMeasure(column: DatasetColumn, data: NumberColumn, times: Float64Array, order: Uint32Array, groupOf: Int32Array, groups: number): ColumnData[] {
  const count = new Float64Array(groups);
  const min = new Float64Array(groups);
  const max = new Float64Array(groups);
  const sum = new Float64Array(groups);
  const last = new Float64Array(groups);
  const lastTs = new Float64Array(groups);
  const values = data.values;
  const valid = data.valid;
  for (let i = 0; i < order.length; i++) {
    const row = order[i] as number;
    if (valid && valid[row] === 0) continue;
    const g = groupOf[i] as number;
    const x = values[row] as number;
    if (count[g] === 0) {
      min[g] = x;
      max[g] = x;
      sum[g] = x;
    } else {
      const lo = min[g] as number;
      const hi = max[g] as number;
      if (x < lo || lo !== lo) min[g] = x; // NaN only stays the min when every value is NaN
      if (x > hi || x !== x) max[g] = x; // NaN is the max once seen
      sum[g] = (sum[g] as number) + x;
    }
    count[g] = (count[g] as number) + 1;
    last[g] = x;
    lastTs[g] = times[row] as number;
  }
  let present: Uint8Array | null = null;
  for (let g = 0; g < groups; g++) {
    if (count[g] !== 0) continue;
    if (!present) present = new Uint8Array(groups).fill(1);
    present[g] = 0;
  }
  const asType = (a: Float64Array): Float64Array | Int32Array => (column.type === 'int' ? Int32Array.from(a) : a);
  const num = (a: Float64Array | Int32Array, v: Uint8Array | null): ColumnData => ({ kind: 'number', values: a, valid: v });
  return [num(count, null), num(asType(min), present), num(asType(max), present), num(sum, present), num(asType(last), present), num(lastTs, present)];
}

/**
 * The rollup rows of `batch` (rows of `schema.source`), `order` being its rows in
 * event-time order (stable). Returns a batch of `schema.dataset`.
 */
export function computeRollup(schema: RollupSchema, batch: ColumnBatch, order: Uint32Array): ColumnBatch {
  const n = order.length;
  const times = timeValues(batch);
  const { ids, count: streams } = streamIds(schema.source, batch);
  const groupOf = new Int32Array(n);
  const slot = new Int32Array(streams);
  const stamp = new Int32Array(streams).fill(-1);
  const minutes = new Float64Array(n);
  const firstRow = new Uint32Array(n);
  let groups = 0;
  let epoch = -1;
  let minute = NaN;
  let nextMinute = -Infinity;
  for (let i = 0; i < n; i++) {
    const row = order[i] as number;
    const t = times[row] as number;
    if (t >= nextMinute) {
      // Times ascend along `order`: a new minute starts only when the boundary is crossed.
      minute = Math.floor(t / MINUTE_US) * MINUTE_US;
      nextMinute = minute + MINUTE_US;
      epoch++;
    }
    const m = minute;
    const s = ids[row] as number;
    if (stamp[s] !== epoch) {
      stamp[s] = epoch;
      slot[s] = groups;
      minutes[groups] = m;
      firstRow[groups] = row;
      groups++;
    }
    groupOf[i] = slot[s] as number;
  }
  const columns: ColumnData[] = [{ kind: 'number', values: minutes.slice(0, groups), valid: null }];
  if (schema.streamKey.length > 0) {
    const keyBatch = takeRows({ length: batch.length, columns: schema.streamKey.map((k) => batch.columns[k] as ColumnData) }, firstRow.subarray(0, groups));
    columns.push(...keyBatch.columns);
  }
  for (const m of schema.measures) {
    columns.push(...foldMeasure(schema.source.columns[m]!, batch.columns[m] as NumberColumn, times, order, groupOf, groups));
  }
  return { length: groups, columns };
}
