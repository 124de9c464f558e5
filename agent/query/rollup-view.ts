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
 *   each (minute, stream) is one row, equal to a GROUP BY over the raw rows. Once an
 *   hour (a day) is closed, hot/merge.ts folds its files into one, so this GROUP BY
 *   only runs over the few files of late rows not merged yet.
 * - Typed even with no rollup file (a typed empty SELECT), like the dataset views.
 */
import { AGGREGATES, MINUTE_US, type RollupSchema } from '../hot/rollup-schema.ts';
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

/**
 * The indices of the rollup files (`times`: the event times each summarises,
 * [min_ts_us, max_ts_us]) whose minutes overlap another file's: only these can hold a
 * (minute, stream) that another file also holds (late rows). Every other file's rows
 * are the view's rows as they are (a file holds each (minute, stream) once).
 */
export function overlappingRollupFiles(times: readonly (readonly [number, number])[]): number[] {
  const ranges = times.map(([lo, hi], i) => ({ i, lo: Math.floor(lo / MINUTE_US), hi: Math.floor(hi / MINUTE_US) }));
  ranges.sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const overlapping: number[] = [];
  let cluster: number[] = [];
  let end = -Infinity;
  for (const r of ranges) {
    if (r.lo > end) {
      if (cluster.length > 1) overlapping.push(...cluster);
      cluster = [];
    }
    cluster.push(r.i);
    end = Math.max(end, r.hi);
  }
  if (cluster.length > 1) overlapping.push(...cluster);
  return overlapping.sort((a, b) => a - b);
}

/**
 * `absolutePaths` (the dataset's rollup files) must lie under the sandbox's allowed
 * directory; `sameSchema`: every file holds exactly the rollup schema's field ids
 * (views.ts filesShareSchema), so they are read without `union_by_name`.
 * `needsMerge(path)`: whether the file may share a (minute, stream) with another file
 * (overlappingRollupFiles); the others are read as they are, without the GROUP BY
 * (every file by default).
 */
export function rollupViewSql(schema: RollupSchema, absolutePaths: string[], sameSchema = false, needsMerge: (path: string) => boolean = () => true): string {
  const empty = emptySelect(schema.dataset);
  const read = (paths: string[]): string =>
    `read_parquet([${paths.map(sqlString).join(', ')}], union_by_name = ${!sameSchema}, hive_partitioning = false)`;
  const keyCount = 1 + schema.streamKey.length;
  const keys = schema.dataset.columns.slice(0, keyCount).map((c) => quoteIdent(c.name));
  const merged = schema.dataset.columns.slice(keyCount).map((_, j) => mergeExpression(schema, keyCount, keyCount + j));
  const toMerge = absolutePaths.filter((p) => needsMerge(p));
  const asIs = absolutePaths.filter((p) => !needsMerge(p));
  const parts = [empty];
  if (asIs.length > 0) parts.push(`SELECT * FROM ${read(asIs)}`);
  if (toMerge.length > 0) parts.push(`SELECT ${[...keys, ...merged].join(', ')} FROM ${read(toMerge)} GROUP BY ${keys.join(', ')}`);
  const body = parts.length === 1 ? empty : parts.map((p) => `SELECT * FROM (${p})`).join(' UNION ALL BY NAME ');
  return `CREATE OR REPLACE VIEW ${quoteIdent(schema.dataset.name)} AS ${body}`;
}
