/**
 * The `<dataset>_1m` view: per-minute aggregates per stream, for charts over the hot
 * tier (72 hours) without scanning raw rows. One per dataset with rollups
 * (hot/rollup-schema.ts: a numeric column that is not a stream key).
 *
 * Columns: `minute` TIMESTAMPTZ (start of the minute, UTC), the stream key columns
 * (none: the dataset is one stream), then per numeric column `<c>`:
 *   `<c>_count` BIGINT   non-null values in the minute (count(c))
 *   `<c>_min`, `<c>_max`  the column's type (NaN sorts above every number)
 *   `<c>_sum`  DOUBLE for a double column, BIGINT for int/long
 *   `<c>_last` the column's type: the last non-null value by event time (arg_max(c, time))
 *   `<c>_last_ts` TIMESTAMPTZ: the event time of `<c>_last`
 * A (minute, stream) with rows but no non-null `<c>` has `<c>_count` 0 and nulls.
 *
 * Invariants:
 * - Freshness: rows reach the rollups only when their window is compacted, i.e.
 *   after the window's end + `compaction_grace_seconds` (and the grace since its
 *   oldest L0 file). The newest minutes are therefore absent here while already in
 *   the `<dataset>` view; a chart of the last minutes must read the raw view (or
 *   `/v1/window`).
 * - Rows are exact merges: late rows of an already compacted window land in another
 *   rollup file with the same (minute, stream) keys; the view groups over every
 *   registered rollup file (sum of counts and sums, min of mins, max of maxes, last
 *   by the greatest `_last_ts`; equal `_last_ts` across files: either value). So
 *   each (minute, stream) is one row, equal to a GROUP BY over the raw rows.
 * - Typed even with no rollup file (a typed empty SELECT), like the dataset views.
 */
import { AGGREGATES, type RollupSchema } from '../hot/rollup-schema.ts';
import { sqlString } from './sandbox.ts';
import { duckdbType, emptySelect, quoteIdent } from './views.ts';

/** How rollup column `index` (an aggregate of measure j, laid out as in rollup-schema.ts) merges across files. */
function mergeExpression(schema: RollupSchema, keyCount: number, index: number): string {
  const column = schema.dataset.columns[index]!;
  const name = quoteIdent(column.name);
  const aggregate = AGGREGATES[(index - keyCount) % AGGREGATES.length]!;
  switch (aggregate) {
    case 'count':
      return `CAST(sum(${name}) AS BIGINT) AS ${name}`;
    case 'min':
      return `min(${name}) AS ${name}`;
    case 'max':
    case 'last_ts':
      return `max(${name}) AS ${name}`;
    case 'sum':
      return `CAST(sum(${name}) AS ${duckdbType(column)}) AS ${name}`;
    case 'last':
      return `arg_max(${name}, ${quoteIdent(schema.dataset.columns[index + 1]!.name)}) AS ${name}`;
  }
}

/** `absolutePaths` (the dataset's rollup files) must lie under the sandbox's allowed directory. */
export function rollupViewSql(schema: RollupSchema, absolutePaths: string[]): string {
  const empty = emptySelect(schema.dataset);
  const source =
    absolutePaths.length === 0
      ? empty
      : `SELECT * FROM (${empty}) UNION ALL BY NAME SELECT * FROM read_parquet([${absolutePaths.map(sqlString).join(', ')}], union_by_name = true, hive_partitioning = false)`;
  const keyCount = 1 + schema.streamKey.length;
  const keys = schema.dataset.columns.slice(0, keyCount).map((c) => quoteIdent(c.name));
  const merged = schema.dataset.columns.slice(keyCount).map((_, j) => mergeExpression(schema, keyCount, keyCount + j));
  const body = `SELECT ${[...keys, ...merged].join(', ')} FROM (${source}) GROUP BY ${keys.join(', ')}`;
  return `CREATE OR REPLACE VIEW ${quoteIdent(schema.dataset.name)} AS ${body}`;
}
