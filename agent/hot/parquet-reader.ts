/**
 * Reads a hot-tier Parquet file back into a column batch (compaction input, test
 * reader). Columns are matched by name to the dataset; a column the file lacks (it
 * was added to the dataset after the file was written) reads as all nulls.
 * Accepts what `parquet-writer.ts` writes: dictionary or plain UTF-8 strings,
 * int64 timestamps and longs (converted to exact numbers below 2^53).
 */
import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm/node';
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';
import { internString, isDictType, type ColumnBatch, type ColumnData } from './columns.ts';

function validBytes(data: arrow.Data, into: Uint8Array, at: number): boolean {
  if (data.nullCount === 0 || !data.nullBitmap) return false;
  const bits = data.nullBitmap;
  const offset = data.offset;
  for (let i = 0; i < data.length; i++) {
    const bit = offset + i;
    into[at + i] = (bits[bit >> 3]! >> (bit & 7)) & 1;
  }
  return true;
}

function readDict(vector: arrow.Vector, n: number): ColumnData {
  const codes = new Int32Array(n);
  const valid = new Uint8Array(n).fill(1);
  let anyNull = false;
  const dictionary: string[] = [];
  const index = new Map<string, number>();
  let at = 0;
  for (const data of vector.data) {
    anyNull = validBytes(data, valid, at) || anyNull;
    if (arrow.DataType.isDictionary(data.type)) {
      const dict = data.dictionary as arrow.Vector<arrow.Utf8>;
      const remap = new Int32Array(dict.length);
      for (let k = 0; k < dict.length; k++) {
        remap[k] = internString(index, dictionary, dict.get(k) ?? '');
      }
      const keys = data.values as Int32Array;
      for (let i = 0; i < data.length; i++) codes[at + i] = valid[at + i] ? (remap[keys[data.offset + i] as number] as number) : 0;
    } else {
      const part = arrow.makeVector(data) as arrow.Vector<arrow.Utf8>;
      for (let i = 0; i < data.length; i++) {
        const s = part.get(i);
        if (s === null) continue;
        codes[at + i] = internString(index, dictionary, s);
      }
    }
    at += data.length;
  }
  return { kind: 'dict', codes, dictionary, valid: anyNull ? valid : null };
}

function readNumbers(column: DatasetColumn, vector: arrow.Vector, n: number): ColumnData {
  const values = column.type === 'int' ? new Int32Array(n) : column.type === 'boolean' ? new Uint8Array(n) : new Float64Array(n);
  const valid = new Uint8Array(n).fill(1);
  let anyNull = false;
  let at = 0;
  for (const data of vector.data) {
    anyNull = validBytes(data, valid, at) || anyNull;
    const raw = data.values as ArrayLike<number> | BigInt64Array | Uint8Array;
    if (raw instanceof BigInt64Array) {
      const words = new Int32Array(raw.buffer, raw.byteOffset, raw.length * 2);
      for (let i = 0; i < data.length; i++) {
        const w = 2 * (data.offset + i);
        values[at + i] = (words[w + 1] as number) * 4294967296 + ((words[w] as number) >>> 0);
      }
    } else if (arrow.DataType.isBool(data.type)) {
      const bits = raw as Uint8Array;
      for (let i = 0; i < data.length; i++) {
        const bit = data.offset + i;
        values[at + i] = (bits[bit >> 3]! >> (bit & 7)) & 1;
      }
    } else {
      values.set((raw as Float64Array).subarray(data.offset, data.offset + data.length), at);
    }
    at += data.length;
  }
  return { kind: 'number', values, valid: anyNull ? valid : null };
}

function allNull(column: DatasetColumn, n: number): ColumnData {
  const valid = new Uint8Array(n);
  if (isDictType(column)) return { kind: 'dict', codes: new Int32Array(n), dictionary: [], valid };
  const values = column.type === 'int' ? new Int32Array(n) : column.type === 'boolean' ? new Uint8Array(n) : new Float64Array(n);
  return { kind: 'number', values, valid };
}

/** Parquet bytes → Arrow JS table (through parquet-wasm and Arrow IPC). */
export function readArrowTable(bytes: Uint8Array): arrow.Table {
  return arrow.tableFromIPC(parquet.readParquet(bytes).intoIPCStream());
}

export function decodeParquet(dataset: Dataset, bytes: Uint8Array): ColumnBatch {
  const table = readArrowTable(bytes);
  const n = table.numRows;
  const columns = dataset.columns.map((column) => {
    const vector = table.getChild(column.name);
    if (!vector) return allNull(column, n);
    return isDictType(column) ? readDict(vector, n) : readNumbers(column, vector, n);
  });
  return { length: n, columns };
}
