/**
 * The resolved dataset model shared by mapping, the landing log, sealing and (later)
 * the catalog. A row is an array of values aligned with `columns`; column 0 is always
 * the event-time column, in microseconds since the epoch (UTC).
 *
 * Field ids are stable: explicit, or time column = 1 and the columns 2, 3, … in the
 * declared order, skipping ids already taken explicitly.
 */
import type { ColumnType, DatasetConfig } from './schema.ts';

export type StoredType = Exclude<ColumnType, never>;

export interface DatasetColumn {
  name: string;
  type: StoredType;
  nullable: boolean;
  fieldId: number;
}

/** One value of a row: string (string, blob sha256), number (int, long, double, timestamp µs), boolean, or null. */
export type RowValue = string | number | boolean | null;
export type RowValues = RowValue[];

export interface Dataset {
  name: string;
  /** columns[0] is the time column (type `timestamp`, not nullable). */
  columns: DatasetColumn[];
  columnIndex: Map<string, number>;
  /** Indexes of the dedupe key columns, if the dataset names one. */
  dedupeKey: number[] | null;
  /** Indexes of the columns that identify a stream (empty: the dataset is one stream). */
  streamKey: number[];
  /** Indexes of the identity partition columns. */
  partitionBy: number[];
  /** Index of the blob column, if any. */
  blobColumn: number | null;
  maxFutureSkewUs: number;
  maxPastAgeUs: number;
}

export function resolveDataset(config: DatasetConfig): Dataset {
  const taken = new Set<number>();
  if (config.time_field_id !== undefined) taken.add(config.time_field_id);
  for (const column of config.columns) if (column.field_id !== undefined) taken.add(column.field_id);
  let next = 1;
  const nextId = (): number => {
    while (taken.has(next)) next++;
    taken.add(next);
    return next;
  };
  const columns: DatasetColumn[] = [
    { name: config.time_column, type: 'timestamp', nullable: false, fieldId: config.time_field_id ?? nextId() },
  ];
  for (const column of config.columns) {
    columns.push({ name: column.name, type: column.type, nullable: column.nullable, fieldId: column.field_id ?? nextId() });
  }
  const columnIndex = new Map(columns.map((c, i) => [c.name, i]));
  const indexOf = (name: string): number => {
    const index = columnIndex.get(name);
    if (index === undefined) throw new Error(`dataset ${config.name}: unknown column ${name}`);
    return index;
  };
  const blob = columns.findIndex((c) => c.type === 'blob');
  return {
    name: config.name,
    columns,
    columnIndex,
    dedupeKey: config.dedupe_key ? config.dedupe_key.map(indexOf) : null,
    streamKey: (config.stream_key ?? []).map(indexOf),
    partitionBy: config.partition_by.map(indexOf),
    blobColumn: blob >= 0 ? blob : null,
    maxFutureSkewUs: config.max_future_skew_seconds * 1_000_000,
    maxPastAgeUs: config.max_past_age_hours * 3_600_000_000,
  };
}
