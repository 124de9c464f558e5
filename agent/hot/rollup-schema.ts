/**
 * The shape of a dataset's per-minute rollups (hot/rollup.ts writes them at
 * compaction; query/views.ts exposes them as `<dataset>_1m`).
 *
 * Invariants:
 * - A dataset has rollups iff it has a numeric column (int, long, double) that is not
 *   a stream key column; those are its measures. No numeric column → no rollup
 *   files, no `_1m` view. A dataset whose rollup column names would collide (e.g. a
 *   column `value_sum` beside `value`) has no rollups either.
 * - Columns, in order: `minute` (timestamp µs UTC, start of the minute; Parquet
 *   TIMESTAMP(MICROS, UTC) = Iceberg timestamptz), the stream key columns (dataset
 *   types; no stream key = the whole dataset is one stream), then per measure
 *   `<m>_count` (long: non-null values), `<m>_min`, `<m>_max` (the measure's type;
 *   NaN orders above every number, as in DuckDB), `<m>_sum` (double for a double,
 *   else long, exact while |sum| < 2^53), `<m>_last` (the measure's type: the last
 *   non-null value by event time; equal times: the row landed last) and
 *   `<m>_last_ts` (its event time; lets rollups of different files be merged).
 *   A group whose measure is null on every row has count 0 and nulls elsewhere.
 * - Field ids are local to the hot tier (rollups are never handed to Iceberg) and
 *   stable, derived from the dataset's stable field ids: minute = 1, stream key
 *   column = fieldId × 8, measure aggregate k (count…last_ts = 1…6) = fieldId × 8 + k.
 */
import type { Dataset, DatasetColumn, StoredType } from '../../config/dataset.ts';

export const ROLLUP_VIEW_SUFFIX = '_1m';
export const MINUTE_US = 60_000_000;
export const MINUTE_COLUMN = 'minute';

export const AGGREGATES = ['count', 'min', 'max', 'sum', 'last', 'last_ts'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export interface RollupSchema {
  /** The dataset the rollups summarise. */
  source: Dataset;
  /** The rollup file's own columns, as a dataset (column 0 = `minute`), for the Parquet writer and the views. */
  dataset: Dataset;
  /** Source column indexes of the stream key columns (rollup columns 1…k). */
  streamKey: number[];
  /** Source column indexes of the measures; measure j's aggregates are rollup columns 1 + k + 6j + (0…5). */
  measures: number[];
}

export function isNumericType(type: StoredType): boolean {
  return type === 'int' || type === 'long' || type === 'double';
}

export function rollupViewName(dataset: string): string {
  return `${dataset}${ROLLUP_VIEW_SUFFIX}`;
}

function aggregateType(source: DatasetColumn, aggregate: Aggregate): StoredType {
  if (aggregate === 'count') return 'long';
  if (aggregate === 'last_ts') return 'timestamp';
  if (aggregate === 'sum') return source.type === 'double' ? 'double' : 'long';
  return source.type;
}

/** The dataset's rollup schema, or null when it has no rollups. */
export function rollupSchema(source: Dataset): RollupSchema | null {
  const keys = new Set(source.streamKey);
  const measures = source.columns.map((c, i) => (i > 0 && !keys.has(i) && isNumericType(c.type) ? i : -1)).filter((i) => i >= 0);
  if (measures.length === 0) return null;
  const columns: DatasetColumn[] = [{ name: MINUTE_COLUMN, type: 'timestamp', nullable: false, fieldId: 1 }];
  for (const k of source.streamKey) {
    const c = source.columns[k]!;
    columns.push({ name: c.name, type: c.type, nullable: c.nullable, fieldId: c.fieldId * 8 });
  }
  for (const m of measures) {
    const c = source.columns[m]!;
    AGGREGATES.forEach((aggregate, k) =>
      columns.push({ name: `${c.name}_${aggregate}`, type: aggregateType(c, aggregate), nullable: aggregate !== 'count', fieldId: c.fieldId * 8 + k + 1 }),
    );
  }
  const columnIndex = new Map(columns.map((c, i) => [c.name, i]));
  if (columnIndex.size !== columns.length) return null;
  const dataset: Dataset = {
    name: rollupViewName(source.name),
    columns,
    columnIndex,
    dedupeKey: null,
    streamKey: source.streamKey.map((_, i) => 1 + i),
    partitionBy: [],
    blobColumn: null,
    maxFutureSkewUs: 0,
    maxPastAgeUs: 0,
  };
  return { source, dataset, streamKey: [...source.streamKey], measures };
}
