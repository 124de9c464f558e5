/**
 * The in-memory columnar form of a slice of one dataset, shared by seal (SQLite rows
 * → columns), compaction (Parquet → columns → sorted, partitioned columns) and the
 * Parquet writer. Typed arrays, never row objects: that is what makes a million rows
 * a second possible on a small server.
 *
 * Representation, per dataset column:
 * - timestamp, long, double → Float64Array (µs or values; longs are exact up to
 *   ±2^53, as everywhere else in the agent: SQLite hands them over as JS numbers);
 * - int → Int32Array; boolean → Uint8Array of 0/1;
 * - string, blob (sha256 hex) → dictionary: Int32Array codes into a string array.
 * `valid` is a byte per row (1 = value present) or null when the column has no nulls;
 * a null slot's value/code is 0 and means nothing.
 */
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';

export interface NumberColumn {
  kind: 'number';
  values: Float64Array | Int32Array | Uint8Array;
  valid: Uint8Array | null;
}

export interface DictColumn {
  kind: 'dict';
  codes: Int32Array;
  dictionary: string[];
  valid: Uint8Array | null;
}

export type ColumnData = NumberColumn | DictColumn;

/** Rows [0, length) of a dataset, one entry per dataset column, in dataset order. */
export interface ColumnBatch {
  length: number;
  columns: ColumnData[];
}

export function isDictType(column: DatasetColumn): boolean {
  return column.type === 'string' || column.type === 'blob';
}

function allocNumbers(column: DatasetColumn, n: number): Float64Array | Int32Array | Uint8Array {
  if (column.type === 'int') return new Int32Array(n);
  if (column.type === 'boolean') return new Uint8Array(n);
  return new Float64Array(n);
}

type ColumnFiller = (rows: unknown[][], count: number, at: number) => void;

/**
 * Builds columns from SQLite `.raw()` rows whose first `skip` cells are not dataset
 * columns (e.g. the landing `id`), a page of rows at a time, so the rows themselves
 * are never all held in memory. Booleans arrive as 0/1, times as µs integers.
 * A page is filled column by column: one tight, single-type loop per column rather
 * than a closure call per cell.
 */
export class RowColumnizer {
  length = 0;
  private readonly capacity: number;
  private readonly fillers: ColumnFiller[];
  private readonly finishers: ((length: number) => ColumnData)[];

  constructor(dataset: Dataset, capacity: number, skip: number) {
    this.capacity = capacity;
    this.fillers = [];
    this.finishers = [];
    dataset.columns.forEach((column, c) => {
      const cell = c + skip;
      let valid: Uint8Array | null = null;
      const markNull = (row: number): void => {
        if (valid === null) valid = new Uint8Array(capacity).fill(1);
        valid[row] = 0;
      };
      if (isDictType(column)) {
        const codes = new Int32Array(capacity);
        const dictionary: string[] = [];
        const index = new Map<string, number>();
        this.fillers.push((rows, count, at) => {
          for (let i = 0; i < count; i++) {
            const value = (rows[i] as unknown[])[cell];
            if (value === null || value === undefined) {
              markNull(at + i);
              continue;
            }
            codes[at + i] = internString(index, dictionary, typeof value === 'string' ? value : String(value));
          }
        });
        this.finishers.push((n) => ({ kind: 'dict', codes: codes.subarray(0, n), dictionary, valid: valid ? (valid as Uint8Array).subarray(0, n) : null }));
      } else {
        const values = allocNumbers(column, capacity);
        this.fillers.push((rows, count, at) => {
          for (let i = 0; i < count; i++) {
            const value = (rows[i] as unknown[])[cell];
            if (typeof value === 'number') values[at + i] = value;
            else if (value === null || value === undefined) markNull(at + i);
            else values[at + i] = Number(value);
          }
        });
        this.finishers.push((n) => ({ kind: 'number', values: values.subarray(0, n), valid: valid ? (valid as Uint8Array).subarray(0, n) : null }));
      }
    });
  }

  /** Appends every row of `rows`. */
  pushRows(rows: unknown[][]): void {
    if (this.length + rows.length > this.capacity) throw new Error('RowColumnizer: capacity exceeded');
    for (const fill of this.fillers) fill(rows, rows.length, this.length);
    this.length += rows.length;
  }

  finish(): ColumnBatch {
    return { length: this.length, columns: this.finishers.map((finish) => finish(this.length)) };
  }
}

export function columnsFromRows(dataset: Dataset, rows: unknown[][], skip: number): ColumnBatch {
  const builder = new RowColumnizer(dataset, rows.length, skip);
  builder.pushRows(rows);
  return builder.finish();
}

/** Gathers rows `indices` (in that order) into a new batch. Dictionaries are shared, not copied. */
export function takeRows(batch: ColumnBatch, indices: Uint32Array): ColumnBatch {
  const n = indices.length;
  const columns = batch.columns.map((column): ColumnData => {
    let valid: Uint8Array | null = null;
    if (column.valid) {
      const source = column.valid;
      valid = new Uint8Array(n);
      for (let i = 0; i < n; i++) valid[i] = source[indices[i] as number] as number;
    }
    if (column.kind === 'dict') {
      const source = column.codes;
      const codes = new Int32Array(n);
      for (let i = 0; i < n; i++) codes[i] = source[indices[i] as number] as number;
      return { kind: 'dict', codes, dictionary: column.dictionary, valid };
    }
    const source = column.values;
    const values = new (source.constructor as { new (n: number): typeof source })(n);
    for (let i = 0; i < n; i++) values[i] = source[indices[i] as number] as number;
    return { kind: 'number', values, valid };
  });
  return { length: n, columns };
}

/** Rows [start, end) as views (no copy). */
export function sliceRows(batch: ColumnBatch, start: number, end: number): ColumnBatch {
  const columns = batch.columns.map((column): ColumnData => {
    const valid = column.valid ? column.valid.subarray(start, end) : null;
    if (column.kind === 'dict') return { kind: 'dict', codes: column.codes.subarray(start, end), dictionary: column.dictionary, valid };
    return { kind: 'number', values: column.values.subarray(start, end), valid };
  });
  return { length: end - start, columns };
}

/** Concatenates batches of the same dataset; string dictionaries are merged and codes remapped. */
export function concatBatches(dataset: Dataset, batches: ColumnBatch[]): ColumnBatch {
  if (batches.length === 1) return batches[0] as ColumnBatch;
  const n = batches.reduce((sum, b) => sum + b.length, 0);
  const columns = dataset.columns.map((column, c): ColumnData => {
    const anyNull = batches.some((b) => (b.columns[c] as ColumnData).valid !== null);
    const valid = anyNull ? new Uint8Array(n).fill(1) : null;
    let offset = 0;
    if (isDictType(column)) {
      const codes = new Int32Array(n);
      const dictionary: string[] = [];
      const index = new Map<string, number>();
      for (const batch of batches) {
        const part = batch.columns[c] as DictColumn;
        const remap = new Int32Array(part.dictionary.length);
        part.dictionary.forEach((s, k) => {
          remap[k] = internString(index, dictionary, s);
        });
        for (let i = 0; i < batch.length; i++) codes[offset + i] = remap[part.codes[i] as number] as number;
        if (valid && part.valid) valid.set(part.valid, offset);
        offset += batch.length;
      }
      return { kind: 'dict', codes, dictionary, valid };
    }
    const values = allocNumbers(column, n);
    for (const batch of batches) {
      const part = batch.columns[c] as NumberColumn;
      values.set(part.values, offset);
      if (valid && part.valid) valid.set(part.valid, offset);
      offset += batch.length;
    }
    return { kind: 'number', values, valid };
  });
  return { length: n, columns };
}

/** The plain value of one cell (time and longs as numbers), for tests and small reads. */
export function cellValue(dataset: Dataset, batch: ColumnBatch, column: number, row: number): string | number | boolean | null {
  const data = batch.columns[column] as ColumnData;
  if (data.valid && data.valid[row] === 0) return null;
  if (data.kind === 'dict') return data.dictionary[data.codes[row] as number] as string;
  const value = data.values[row] as number;
  return (dataset.columns[column] as DatasetColumn).type === 'boolean' ? value !== 0 : value;
}

/** Every row as an array of plain values, in dataset column order. */
export function batchToRows(dataset: Dataset, batch: ColumnBatch): (string | number | boolean | null)[][] {
  const rows: (string | number | boolean | null)[][] = [];
  for (let r = 0; r < batch.length; r++) {
    const row: (string | number | boolean | null)[] = [];
    for (let c = 0; c < dataset.columns.length; c++) row.push(cellValue(dataset, batch, c, r));
    rows.push(row);
  }
  return rows;
}

/** The time column (µs), always column 0 and never null. */
export function timeValues(batch: ColumnBatch): Float64Array {
  return (batch.columns[0] as NumberColumn).values as Float64Array;
}

/** The dictionary code of `value`, adding it to the dictionary on first sight. */
export function internString(index: Map<string, number>, dictionary: string[], value: string): number {
  let code = index.get(value);
  if (code === undefined) {
    code = dictionary.length;
    dictionary.push(value);
    index.set(value, code);
  }
  return code;
}
