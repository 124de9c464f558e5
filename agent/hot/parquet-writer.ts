/**
 * Turns a column batch of one dataset into the bytes of a Parquet file, plus the
 * statistics the Iceberg manifests need (kept as JSON in `hot_files.stats_json`).
 *
 * What a file looks like (the contract readers and the catalog rely on):
 * - one column per dataset column, in dataset order, named as in the config; each
 *   Parquet schema element carries the column's Iceberg `field_id`;
 * - column 0, the event time: INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true), i.e.
 *   Iceberg `timestamptz`; timestamp columns likewise; long → INT64, int → INT32,
 *   double → DOUBLE, boolean → BOOLEAN, string and blob (sha256 hex) → BYTE_ARRAY
 *   STRING (UTF-8). Strings are handed to the writer dictionary-encoded from typed
 *   arrays (fast); in the file they are ordinary UTF-8 columns (dictionary pages,
 *   plain where mostly unique), only the embedded `ARROW:schema` remembers the Arrow
 *   dictionary type, the same in every file (readers merging files compare it);
 * - ZSTD, row groups of `rowGroupRows` rows, chunk-level Parquet statistics;
 *   timestamps and longs DELTA_BINARY_PACKED, doubles plain, the rest dictionary;
 *   nullability as declared.
 *
 * Stats are keyed by field id (as JSON object keys). Bounds are plain JSON values:
 * numbers (timestamps as µs), strings, booleans; NaN never is a bound. Strings are
 * ordered by UTF-8 bytes, as Iceberg orders them. Bounds are not truncated here.
 */
import * as arrow from 'apache-arrow';
import * as parquet from 'parquet-wasm/node';
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';
import { isDictType, type ColumnBatch, type ColumnData, type DictColumn } from './columns.ts';
import { readParquetFooter } from './parquet-footer.ts';

export type BoundValue = number | string | boolean;

/** Per-file statistics, keyed by field id. Stored as JSON in `hot_files.stats_json`. */
export interface FileStats {
  record_count: number;
  /** Values per column, nulls and NaNs included (Iceberg `value_counts`). */
  value_counts: Record<string, number>;
  null_value_counts: Record<string, number>;
  /** Only for double columns. */
  nan_value_counts: Record<string, number>;
  /** Absent for a column with no non-null (non-NaN) value. */
  lower_bounds: Record<string, BoundValue>;
  upper_bounds: Record<string, BoundValue>;
  /** Compressed bytes of each column, summed over row groups, read from the written footer. */
  column_sizes: Record<string, number>;
}

export interface EncodedParquet {
  bytes: Uint8Array;
  stats: FileStats;
}

export interface ParquetWriteOptions {
  rowGroupRows: number;
}

const FIELD_ID_KEY = 'PARQUET:field_id';

function packBits(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array((bytes.length + 7) >> 3);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

function nullsOf(column: ColumnData): number {
  if (!column.valid) return 0;
  let nulls = 0;
  for (let i = 0; i < column.valid.length; i++) if (column.valid[i] === 0) nulls++;
  return nulls;
}

/** Float64 integers (|x| < 2^53) → int64, through 32-bit words, without a BigInt per value. */
function toInt64(values: Float64Array | Int32Array | Uint8Array): BigInt64Array {
  const words = new Int32Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    const hi = Math.floor(x / 4294967296);
    words[2 * i] = x - hi * 4294967296;
    words[2 * i + 1] = hi;
  }
  return new BigInt64Array(words.buffer);
}

const NON_BMP_ORDER_RISK = /[\uD800-\uFFFF]/;
/** UTF-8 byte order (= code point order); UTF-16 order differs only around surrogates. */
export function compareUtf8(a: string, b: string): number {
  if (NON_BMP_ORDER_RISK.test(a) || NON_BMP_ORDER_RISK.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Keeps only the dictionary entries some valid row uses, so writers and bounds see no strays. */
function compactDictionary(column: DictColumn): DictColumn {
  const remap = new Int32Array(column.dictionary.length).fill(-1);
  const dictionary: string[] = [];
  const codes = new Int32Array(column.codes.length);
  const valid = column.valid;
  for (let i = 0; i < column.codes.length; i++) {
    if (valid && valid[i] === 0) continue;
    const old = column.codes[i] as number;
    let code = remap[old] as number;
    if (code < 0) {
      code = dictionary.length;
      remap[old] = code;
      dictionary.push(column.dictionary[old] as string);
    }
    codes[i] = code;
  }
  return { kind: 'dict', codes, dictionary, valid };
}

/** More distinct values than half the rows: a dictionary page would not pay. */
function mostlyUnique(column: DictColumn): boolean {
  return column.dictionary.length > column.codes.length / 2;
}

/** Arrow Utf8 data from strings: one encode of the joined text instead of one per value. */
function utf8Data(strings: string[], valid: Uint8Array | null): arrow.Data<arrow.Utf8> {
  const joined = strings.join('');
  const bytes = Buffer.from(joined, 'utf8');
  const offsets = new Int32Array(strings.length + 1);
  const ascii = bytes.length === joined.length;
  let at = 0;
  for (let i = 0; i < strings.length; i++) {
    const s = strings[i] as string;
    at += ascii ? s.length : Buffer.byteLength(s);
    offsets[i + 1] = at;
  }
  const nullCount = valid ? valid.length - valid.reduce((a, b) => a + b, 0) : 0;
  return arrow.makeData({
    type: new arrow.Utf8(),
    length: strings.length,
    nullCount,
    nullBitmap: valid && nullCount > 0 ? packBits(valid) : null,
    valueOffsets: offsets,
    data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
  });
}

function arrowColumn(column: DatasetColumn, data: ColumnData, index: number): arrow.Data {
  const length = data.kind === 'dict' ? data.codes.length : data.values.length;
  const nullCount = nullsOf(data);
  const nullBitmap = data.valid && nullCount > 0 ? packBits(data.valid) : null;
  if (data.kind === 'dict') {
    // Always the Arrow dictionary type, whatever the file's values: the type is recorded
    // in the file's ARROW:schema, and readers that honour it (PyIceberg over pyarrow)
    // refuse to concatenate files whose types differ ("dictionary vs string"). Whether
    // the column is dictionary-ENCODED in Parquet is decided apart (mostlyUnique).
    const type = new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32(), index);
    const dictionary = arrow.makeVector(utf8Data(data.dictionary, null));
    return arrow.makeData({ type, length, nullCount, nullBitmap, data: data.codes, dictionary });
  }
  switch (column.type) {
    case 'timestamp':
      return arrow.makeData({ type: new arrow.TimestampMicrosecond('UTC'), length, nullCount, nullBitmap, data: toInt64(data.values) });
    case 'long':
      return arrow.makeData({ type: new arrow.Int64(), length, nullCount, nullBitmap, data: toInt64(data.values) });
    case 'int':
      return arrow.makeData({ type: new arrow.Int32(), length, nullCount, nullBitmap, data: data.values as Int32Array });
    case 'boolean':
      return arrow.makeData({ type: new arrow.Bool(), length, nullCount, nullBitmap, data: packBits(data.values as Uint8Array) });
    default:
      return arrow.makeData({ type: new arrow.Float64(), length, nullCount, nullBitmap, data: data.values as Float64Array });
  }
}

/** The Arrow table handed to parquet-wasm; every field carries `PARQUET:field_id`. */
export function buildArrowTable(dataset: Dataset, batch: ColumnBatch): arrow.Table {
  const children = dataset.columns.map((column, c) => arrowColumn(column, batch.columns[c] as ColumnData, c));
  const fields = dataset.columns.map(
    (column, c) => new arrow.Field(column.name, (children[c] as arrow.Data).type, column.nullable, new Map([[FIELD_ID_KEY, String(column.fieldId)]])),
  );
  const schema = new arrow.Schema(fields);
  const struct = arrow.makeData({ type: new arrow.Struct(fields), length: batch.length, nullCount: 0, children });
  return new arrow.Table(schema, [new arrow.RecordBatch(schema, struct)]);
}

function columnStats(column: DatasetColumn, data: ColumnData, stats: FileStats): void {
  const id = String(column.fieldId);
  const length = data.kind === 'dict' ? data.codes.length : data.values.length;
  const valid = data.valid;
  stats.value_counts[id] = length;
  stats.null_value_counts[id] = nullsOf(data);
  if (data.kind === 'dict') {
    let lower: string | null = null;
    let upper: string | null = null;
    for (const s of data.dictionary) {
      if (lower === null || compareUtf8(s, lower) < 0) lower = s;
      if (upper === null || compareUtf8(s, upper) > 0) upper = s;
    }
    if (lower !== null && upper !== null) {
      stats.lower_bounds[id] = lower;
      stats.upper_bounds[id] = upper;
    }
    return;
  }
  const values = data.values;
  let min = Infinity;
  let max = -Infinity;
  let nans = 0;
  for (let i = 0; i < length; i++) {
    if (valid && valid[i] === 0) continue;
    const x = values[i] as number;
    if (x !== x) {
      nans++;
      continue;
    }
    if (x < min) min = x;
    if (x > max) max = x;
  }
  if (column.type === 'double') stats.nan_value_counts[id] = nans;
  if (min > max) return;
  stats.lower_bounds[id] = column.type === 'boolean' ? min !== 0 : min;
  stats.upper_bounds[id] = column.type === 'boolean' ? max !== 0 : max;
}

/** Statistics of a batch (without column sizes, which only the written file knows). */
export function computeStats(dataset: Dataset, batch: ColumnBatch): FileStats {
  const stats: FileStats = {
    record_count: batch.length,
    value_counts: {},
    null_value_counts: {},
    nan_value_counts: {},
    lower_bounds: {},
    upper_bounds: {},
    column_sizes: {},
  };
  dataset.columns.forEach((column, c) => columnStats(column, batch.columns[c] as ColumnData, stats));
  return stats;
}

/** Compressed size per field id, from the footer of the bytes just written. */
export function columnSizes(dataset: Dataset, bytes: Uint8Array): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const group of readParquetFooter(bytes).rowGroups) {
    for (const chunk of group.columns) {
      const index = dataset.columnIndex.get(chunk.path[0] ?? '');
      if (index === undefined) continue;
      const id = String((dataset.columns[index] as DatasetColumn).fieldId);
      sizes[id] = (sizes[id] ?? 0) + chunk.compressedSize;
    }
  }
  return sizes;
}

export function encodeParquet(dataset: Dataset, batch: ColumnBatch, options: ParquetWriteOptions): EncodedParquet {
  const compacted: ColumnBatch = {
    length: batch.length,
    columns: batch.columns.map((data, c) => (isDictType(dataset.columns[c] as DatasetColumn) && data.kind === 'dict' ? compactDictionary(data) : data)),
  };
  const stats = computeStats(dataset, compacted);
  const ipc = arrow.tableToIPC(buildArrowTable(dataset, compacted), 'stream');
  const table = parquet.Table.fromIPCStream(ipc);
  let builder = new parquet.WriterPropertiesBuilder()
    .setCompression(parquet.Compression.ZSTD)
    .setMaxRowGroupSize(options.rowGroupRows)
    .setStatisticsEnabled(parquet.EnabledStatistics.Chunk)
    .setCreatedBy('lakeside');
  dataset.columns.forEach((column, c) => {
    const data = compacted.columns[c] as ColumnData;
    // Mostly-unique strings (blob hashes) gain nothing from a dictionary page.
    if (data.kind === 'dict' && mostlyUnique(data)) builder = builder.setColumnDictionaryEnabled(column.name, false);
  });
  for (const column of dataset.columns) {
    // Dictionaries rarely pay for times and measurements and cost most of the write
    // time; delta encoding turns near-regular timestamps into almost nothing.
    if (column.type === 'timestamp' || column.type === 'long') {
      builder = builder.setColumnDictionaryEnabled(column.name, false).setColumnEncoding(column.name, parquet.Encoding.DELTA_BINARY_PACKED);
    } else if (column.type === 'double') {
      builder = builder.setColumnDictionaryEnabled(column.name, false);
    }
  }
  const props = builder.build();
  const bytes = parquet.writeParquet(table, props);
  stats.column_sizes = columnSizes(dataset, bytes);
  return { bytes, stats };
}
