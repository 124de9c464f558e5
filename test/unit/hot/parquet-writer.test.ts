import { describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { batchToRows, columnsFromRows } from '../../../agent/hot/columns.ts';
import { readParquetFooter } from '../../../agent/hot/parquet-footer.ts';
import { decodeParquet, readArrowTable } from '../../../agent/hot/parquet-reader.ts';
import { compareUtf8, encodeParquet } from '../../../agent/hot/parquet-writer.ts';
import { allTypesConfig, T0 } from './fixture.ts';

const dataset = resolveDataset(allTypesConfig);
const sha = (n: number): string => n.toString(16).padStart(64, '0');
const rows = [
  [T0 + 5, 1, 2 ** 40, 1.5, true, 'b', T0 - 1, sha(1)],
  [T0 + 1, -3, -7, Number.NaN, false, 'é', T0, sha(2)],
  [T0 + 9, null, null, null, null, null, null, null],
  [T0 + 2, 7, 3, -2.25, true, 'a', T0 + 100, sha(3)],
];

describe('parquet writer', () => {
  const { bytes, stats } = encodeParquet(dataset, columnsFromRows(dataset, rows, 0), { rowGroupRows: 2 });
  const footer = readParquetFooter(bytes);

  it('puts the Iceberg field ids into the Parquet schema elements', () => {
    const leaves = footer.schema.slice(1);
    expect(leaves.map((e) => [e.name, e.fieldId])).toEqual(dataset.columns.map((c) => [c.name, c.fieldId]));
    expect(leaves.map((e) => e.fieldId)).toEqual([10, 20, 1, 2, 3, 4, 5, 6]);
    // The Arrow schema read back carries them too.
    const table = readArrowTable(bytes);
    expect(table.schema.fields.map((f) => f.metadata.get('PARQUET:field_id'))).toEqual(['10', '20', '1', '2', '3', '4', '5', '6']);
  });

  it('writes timestamps as INT64 TIMESTAMP(MICROS, UTC) and strings as UTF-8 byte arrays', () => {
    const byName = new Map(footer.schema.map((e) => [e.name, e]));
    for (const name of ['ts', 'at']) {
      expect(byName.get(name)!.type).toBe(2);
      expect(byName.get(name)!.logicalType).toEqual({ kind: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' });
    }
    for (const name of ['s', 'image']) {
      expect(byName.get(name)!.type).toBe(6);
      expect(byName.get(name)!.logicalType?.kind).toBe('STRING');
    }
    expect(byName.get('ts')!.repetition).toBe(0); // required: the time column is not nullable
    expect(byName.get('s')!.repetition).toBe(1);
    expect([byName.get('i')!.type, byName.get('l')!.type, byName.get('d')!.type, byName.get('b')!.type]).toEqual([1, 2, 5, 0]);
    expect(footer.rowGroups.map((g) => g.numRows)).toEqual([2, 2]);
  });

  it('gives a string column the same Arrow type in every file, mostly-unique or repeated (PyIceberg merges files by it)', () => {
    const repeated = [0, 1, 2, 3].map((i) => [T0 + i, i, i, 1, true, 'same', T0, sha(9)]);
    const unique = [[T0, 1, 1, 1, true, 'only', T0, sha(1)]];
    const typeOf = (b: Uint8Array) => readArrowTable(b).schema.fields.map((f) => String(f.type));
    const a = typeOf(encodeParquet(dataset, columnsFromRows(dataset, repeated, 0), { rowGroupRows: 10 }).bytes);
    const b = typeOf(encodeParquet(dataset, columnsFromRows(dataset, unique, 0), { rowGroupRows: 10 }).bytes);
    expect(a).toEqual(b);
    expect(batchToRows(dataset, decodeParquet(dataset, encodeParquet(dataset, columnsFromRows(dataset, unique, 0), { rowGroupRows: 10 }).bytes))).toEqual(unique);
  });

  it('round-trips every value, µs exact', () => {
    const back = batchToRows(dataset, decodeParquet(dataset, bytes));
    expect(back).toEqual(rows);
    const table = readArrowTable(bytes);
    expect(String(table.schema.fields[0]!.type)).toBe('Timestamp<MICROSECOND, UTC>');
  });

  it('returns Iceberg stats keyed by field id', () => {
    expect(stats.record_count).toBe(4);
    expect(stats.value_counts).toEqual({ 10: 4, 20: 4, 1: 4, 2: 4, 3: 4, 4: 4, 5: 4, 6: 4 });
    expect(stats.null_value_counts).toEqual({ 10: 0, 20: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1 });
    expect(stats.nan_value_counts).toEqual({ 2: 1 });
    expect(stats.lower_bounds).toEqual({ 10: T0 + 1, 20: -3, 1: -7, 2: -2.25, 3: false, 4: 'a', 5: T0 - 1, 6: sha(1) });
    expect(stats.upper_bounds).toEqual({ 10: T0 + 9, 20: 7, 1: 2 ** 40, 2: 1.5, 3: true, 4: 'é', 5: T0 + 100, 6: sha(3) });
    const sizes = footer.rowGroups.flatMap((g) => g.columns).reduce((s, c) => s + c.compressedSize, 0);
    expect(Object.keys(stats.column_sizes).sort()).toEqual(['1', '10', '2', '20', '3', '4', '5', '6']);
    expect(Object.values(stats.column_sizes).reduce((a, b) => a + b, 0)).toBe(sizes);
    expect(JSON.parse(JSON.stringify(stats))).toEqual(stats);
  });

  it('orders strings by UTF-8 bytes', () => {
    expect(compareUtf8('\uFF61', '\u{1F600}')).toBeLessThan(0); // UTF-16 order says the opposite
    expect(compareUtf8('a', 'b')).toBeLessThan(0);
  });
});
