/**
 * The Iceberg v2 `data_file` record of one uploaded Parquet file of a dataset.
 *
 * Invariants:
 * - Every Avro long is a bigint (avro-file.ts); int-keyed maps are lists of
 *   {key, value} pairs keyed by field id, in ascending key order (deterministic bytes).
 * - Bounds are in the single-value binary form (single-value.ts) of the column's
 *   Iceberg type; NaN is never a bound; a string bound longer than
 *   MAX_STRING_BOUND_BYTES is left out (no bound is always correct, a wrongly
 *   truncated upper bound would hide rows).
 * - The table's `plant` column is not in the file: its counts (every row, no null)
 *   and bounds (the plant) are added so engines prune by plant through the metrics as
 *   well as through the partition.
 * - Partition: day = days since the epoch of the file's rows, which must all fall on
 *   one UTC day (a file spanning two days is refused, its partition would lie);
 *   plant; then the `partition_by` values from the file's partition_json.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Dataset, RowValue } from '../../config/dataset.ts';
import { readParquetFooter } from '../../agent/hot/parquet-footer.ts';
import type { FileStats } from '../../agent/hot/parquet-writer.ts';
import type { IcebergPrimitive } from './metadata.ts';
import { encodeSingleValue } from './single-value.ts';
import { icebergTypeOf, PLANT_COLUMN, PLANT_FIELD_ID, plantColumnConflict } from './table-schema.ts';

export const MAX_STRING_BOUND_BYTES = 256;
const US_PER_DAY = 86_400_000_000;

export interface MapEntry<V> {
  key: number;
  value: V;
}

/** A partition value as stored: date → days (number), long → bigint, int/double → number, string, boolean. */
export type PartitionValue = number | bigint | string | boolean | null;

/** The v2 `data_file` struct (field ids in manifest.ts). */
export interface DataFile {
  /** 0 data, 1 position deletes, 2 equality deletes. */
  content: number;
  file_path: string;
  file_format: string;
  /** Partition values by partition field name. */
  partition: Record<string, PartitionValue>;
  record_count: bigint;
  file_size_in_bytes: bigint;
  column_sizes: MapEntry<bigint>[] | null;
  value_counts: MapEntry<bigint>[] | null;
  null_value_counts: MapEntry<bigint>[] | null;
  nan_value_counts: MapEntry<bigint>[] | null;
  lower_bounds: MapEntry<Buffer>[] | null;
  upper_bounds: MapEntry<Buffer>[] | null;
  key_metadata: Buffer | null;
  split_offsets: bigint[] | null;
  equality_ids: number[] | null;
  sort_order_id: number | null;
}

export interface DataFileInput {
  dataset: Dataset;
  plant: string;
  /** Absolute URI: s3://bucket/key or file:///path. */
  path: string;
  fileSizeBytes: number;
  stats: FileStats;
  /** `hot_files.partition_json`, parsed: the partition_by values by column name. */
  partitionValues: Record<string, RowValue>;
  /** Row-group start offsets (splitOffsetsOf), or null if unknown. */
  splitOffsets: bigint[] | null;
  /** The table's id of the `plant` column (plantFieldIdIn); PLANT_FIELD_ID when left out. */
  plantFieldId?: number;
}

function counts(map: Record<string, number>): MapEntry<bigint>[] {
  return Object.entries(map)
    .map(([key, value]) => ({ key: Number(key), value: BigInt(value) }))
    .sort((a, b) => a.key - b.key);
}

function bound(type: IcebergPrimitive, value: number | string | boolean): Buffer | null {
  if (typeof value === 'number' && Number.isNaN(value)) return null;
  const bytes = encodeSingleValue(type, value);
  return type === 'string' && bytes.length > MAX_STRING_BOUND_BYTES ? null : bytes;
}

function bounds(dataset: Dataset, map: FileStats['lower_bounds'], plant: string, plantFieldId: number): MapEntry<Buffer>[] {
  const out: MapEntry<Buffer>[] = [];
  for (const column of dataset.columns) {
    const value = map[String(column.fieldId)];
    if (value === undefined) continue;
    const bytes = bound(icebergTypeOf(column), value);
    if (bytes) out.push({ key: column.fieldId, value: bytes });
  }
  const plantBytes = bound('string', plant);
  if (plantBytes) out.push({ key: plantFieldId, value: plantBytes });
  return out.sort((a, b) => a.key - b.key);
}

/** The day partition of a file: its rows' UTC day, which must be one day. */
function dayOf(dataset: Dataset, stats: FileStats, path: string): number {
  const id = String(dataset.columns[0]!.fieldId);
  const lower = stats.lower_bounds[id];
  const upper = stats.upper_bounds[id];
  if (typeof lower !== 'number' || typeof upper !== 'number') throw new Error(`${path}: no time bounds in the file's stats`);
  const day = Math.floor(lower / US_PER_DAY);
  if (Math.floor(upper / US_PER_DAY) !== day) throw new Error(`${path}: rows span more than one UTC day (${lower}..${upper} µs); the day partition needs one`);
  return day;
}

function partitionValue(type: IcebergPrimitive, value: RowValue | undefined): PartitionValue {
  if (value === undefined || value === null) return null;
  if ((type === 'long' || type === 'timestamptz') && typeof value === 'number') return BigInt(value);
  return value;
}

export function dataFileFor(input: DataFileInput): DataFile {
  const { dataset, stats, plant } = input;
  const conflict = plantColumnConflict(dataset);
  if (conflict) throw new Error(conflict);
  const time = dataset.columns[0]!;
  const partition: Record<string, PartitionValue> = { [`${time.name}_day`]: dayOf(dataset, stats, input.path), [PLANT_COLUMN]: plant };
  for (const index of dataset.partitionBy) {
    const column = dataset.columns[index]!;
    partition[column.name] = partitionValue(icebergTypeOf(column), input.partitionValues[column.name]);
  }
  const rows = BigInt(stats.record_count);
  const plantFieldId = input.plantFieldId ?? PLANT_FIELD_ID;
  const plantCounts = (n: bigint): MapEntry<bigint>[] => [{ key: plantFieldId, value: n }];
  return {
    content: 0,
    file_path: input.path,
    file_format: 'PARQUET',
    partition,
    record_count: rows,
    file_size_in_bytes: BigInt(input.fileSizeBytes),
    column_sizes: counts(stats.column_sizes),
    value_counts: [...counts(stats.value_counts), ...plantCounts(rows)],
    null_value_counts: [...counts(stats.null_value_counts), ...plantCounts(0n)],
    nan_value_counts: counts(stats.nan_value_counts),
    lower_bounds: bounds(dataset, stats.lower_bounds, plant, plantFieldId),
    upper_bounds: bounds(dataset, stats.upper_bounds, plant, plantFieldId),
    key_metadata: null,
    split_offsets: input.splitOffsets,
    equality_ids: null,
    sort_order_id: 0,
  };
}

/** The row-group start offsets of a Parquet file (Iceberg `split_offsets`), ascending. */
export function splitOffsetsOf(parquet: Uint8Array): bigint[] {
  return readParquetFooter(parquet)
    .rowGroups.map((g) => BigInt(g.startOffset))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** splitOffsetsOf for a file on disk, reading only its footer. */
export function splitOffsetsOfFile(path: string): bigint[] {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(8);
    if (size < 12 || readSync(fd, tail, 0, 8, size - 8) !== 8) throw new Error(`${path}: too short for a Parquet file`);
    const length = tail.readUInt32LE(0) + 8;
    if (length > size - 4) throw new Error(`${path}: footer length ${length - 8} exceeds the file`);
    // readParquetFooter reads from the end: the footer and its 8-byte trailer are enough.
    const footer = Buffer.alloc(length);
    readSync(fd, footer, 0, length, size - length);
    return splitOffsetsOf(footer);
  } finally {
    closeSync(fd);
  }
}
