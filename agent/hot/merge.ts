/**
 * Merge: fewer, larger hot-tier files once a span of event time is closed. Runs in the
 * compaction step, after compaction (seal-worker.ts).
 * - L1: the L1 files of one closed hour and partition → one file (or, past
 *   `l1MaxRows`, several), rows sorted by stream then time (stream-order.ts), so a
 *   query on one stream skips row groups by their min/max statistics.
 * - Rollups (level 2): the rollup files of one closed hour → one file; of one closed
 *   day → one file. Rows sorted by stream then minute, and each (minute, stream) ONCE:
 *   rows of late files with the same key are folded (sum of counts and sums, min of
 *   mins, max of maxes, last by the greatest last_ts, equal: the later file), as the
 *   `_1m` view folds them when reading (query/rollup-view.ts).
 *
 * Invariants (those of compaction, compact.ts):
 * - A span is closed once its end + one compaction window + grace has passed (the
 *   last window starting in it has been compacted) and no L0 file of the dataset
 *   waits in it. Late rows compacted afterwards become another file in the span,
 *   which the next pass merges with the merged file(s) again. The settle time uses
 *   the dataset's window in force (dataset-settings.ts); after a change, a file of an
 *   older window compacted later is such a late file, merged again. A span that just
 *   got a file from the same step's compaction (`recentPaths`) waits for the next step: with
 *   rows still flowing into a closed hour (a gateway replaying a backlog), some L0
 *   file waits in it or it was just compacted, so it is not rewritten over and over.
 * - A span is merged iff it holds a file that is not a merged file of that span (by
 *   name, paths.ts isMergedPath): merged outputs alone are never rewritten.
 * - Order of durability: merged files published (writeFileAtomic: temp, fsync,
 *   rename) → ONE transaction unregisters the inputs (each must still be registered,
 *   else it rolls back) and registers the outputs → inputs unlinked, after
 *   `retireDelayMs` (RetiredFiles), so a query that bound the old file list finishes.
 *   A crash before the commit leaves unregistered outputs, after it unregistered
 *   inputs; recovery deletes either. A row is never in two registered files, so a
 *   view built from one registry snapshot sees every row exactly once.
 * - Deterministic: inputs in id order; names from the inputs' first and last ids.
 * - Memory: a span's inputs are decoded at once; a group above `mergeMaxRows` rows is
 *   left as it is (its files stay valid, just more of them). Time: `mergeRowsPerStep`
 *   bounds the rows one call merges (the rest waits for the next compaction step).
 * - Merged L1 files keep the dataset's field ids and full stats_json (the writer's
 *   FileStats), like every L1 file. L1 files the tiering already took (tier_files)
 *   are never merged: the file set skips them and the swap transaction re-checks, so a
 *   discovery racing a merge cannot get the same rows uploaded twice (tiering/layout.ts).
 */
import type Database from 'better-sqlite3';
import { readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Dataset, RowValue } from '../../config/dataset.ts';
import { failpoint } from '../failpoint.ts';
import { HOT_LEVEL, type HotFileRecord } from '../landing/schema.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { concatBatches, takeRows, timeValues, type ColumnBatch, type NumberColumn } from './columns.ts';
import { decodeParquet } from './parquet-reader.ts';
import { encodeParquet } from './parquet-writer.ts';
import { isMergedPath, mergedL1Path, mergedRollupPath, type MergeSpanLetter } from './paths.ts';
import { insertHotFiles, newHotFile, nowUs as wallClockUs, withCleanup, type NewHotFile } from './registry.ts';
import { AGGREGATES, MINUTE_US, rollupSchema, type RollupSchema } from './rollup-schema.ts';
import { sortByStreamThenTime } from './stream-order.ts';

export const HOUR_US = 3_600_000_000;
export const DAY_US = 24 * HOUR_US;

export interface MergeOptions {
  compactionWindowMinutes: number;
  compactionGraceSeconds: number;
  rowGroupRows: number;
  l1MaxRows: number;
  /** Rows of one span and partition merged at most (default 2 × l1MaxRows). */
  mergeMaxRows?: number;
  /**
   * Input rows merged per call at most (default: no limit); the first group always
   * runs, the rest wait for the next call. Seal and compaction share one thread, so
   * this bounds how long a merge delays the next seal.
   */
  mergeRowsPerStep?: number;
  /** Receives the inputs once unregistered (default: unlinked at once). */
  retire?: (paths: string[]) => void;
  /** Test hook: runs after the merged files are published, before the commit. */
  beforeCommit?: (files: NewHotFile[]) => void;
  nowUs?: () => number;
}

export interface MergeResult {
  dataset: string;
  /** Groups merged (span × partition for L1, span for rollups). */
  merges: number;
  added: HotFileRecord[];
  /** Paths (relative to the state dir) of the files replaced. */
  removed: string[];
  errors: { spanStartUs: number; message: string }[];
  /** Groups given up because the tiering took one of their files meanwhile (a benign race: they stay as they are). */
  raced: number;
}

/** The tiering registered a merge input while the merge ran: the group stays unmerged, nothing is lost. */
class TakenByTiering extends Error {}

/** Unlinks a file (`path` relative to the state dir) and the directories that emptied, up to hot/<dataset>/<level dir>. */
export function unlinkHotFile(stateDir: string, path: string): void {
  try {
    unlinkSync(join(stateDir, path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  for (let dir = dirname(path); dir.split('/').length > 3; dir = dirname(dir)) {
    try {
      rmdirSync(join(stateDir, dir));
    } catch {
      return; // not empty (or already gone): so are its parents
    }
  }
}

/**
 * Unregistered files waiting for their unlink: a query that bound its file list
 * before the merge keeps reading them until `delayMs` passed. In memory only: after a
 * crash or restart, recovery deletes them (they are unregistered).
 */
export class RetiredFiles {
  private readonly queue: { path: string; atMs: number }[] = [];
  private readonly stateDir: string;
  private readonly delayMs: number;
  private readonly clockMs: () => number;

  constructor(stateDir: string, delayMs: number, clockMs: () => number = Date.now) {
    this.stateDir = stateDir;
    this.delayMs = delayMs;
    this.clockMs = clockMs;
  }

  add(paths: string[]): void {
    const atMs = this.clockMs();
    for (const path of paths) this.queue.push({ path, atMs });
    if (this.delayMs <= 0) this.unlinkDue();
  }

  /** Unlinks the files retired at least `delayMs` ago; returns how many. */
  unlinkDue(): number {
    const now = this.clockMs();
    let n = 0;
    while (this.queue.length > 0 && this.queue[0]!.atMs + this.delayMs <= now) {
      unlinkHotFile(this.stateDir, this.queue.shift()!.path);
      n++;
    }
    return n;
  }

  /** Unlinks every retired file now (clean stop: no query is left running). */
  unlinkAll(): void {
    for (const { path } of this.queue.splice(0)) unlinkHotFile(this.stateDir, path);
  }

  get size(): number {
    return this.queue.length;
  }
}

interface Group {
  spanStartUs: number;
  files: HotFileRecord[];
}

function groupBy(files: HotFileRecord[], key: (f: HotFileRecord) => string, spanStartUs: (f: HotFileRecord) => number): Group[] {
  const groups = new Map<string, Group>();
  for (const file of files) {
    const k = key(file);
    let group = groups.get(k);
    if (!group) groups.set(k, (group = { spanStartUs: spanStartUs(file), files: [] }));
    group.files.push(file);
  }
  return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, g]) => g);
}

const spanStart = (timeUs: number, spanUs: number): number => Math.floor(timeUs / spanUs) * spanUs;

/** The key of a span start that sorts as it should (fixed width). */
const spanKey = (startUs: number): string => String(startUs).padStart(20, '0');

/** Min and max of a column of numbers. */
function range(values: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

interface Step {
  db: Database.Database;
  dataset: Dataset;
  stateDir: string;
  options: MergeOptions;
  result: MergeResult;
}

/** Publishes `write`'s files, then swaps them for `inputs` in one transaction, then retires the inputs. */
function publish(step: Step, inputs: HotFileRecord[], write: (pending: NewHotFile[]) => void): void {
  const { db, stateDir, options, result } = step;
  const pending: NewHotFile[] = [];
  const remove = db.prepare(`DELETE FROM hot_files WHERE id = ? AND path = ?`);
  const isTiered = hasTierMap(db) ? db.prepare(`SELECT 1 FROM tier_files WHERE local_path = ?`).pluck() : null;
  const added = withCleanup(stateDir, pending, () => {
    write(pending);
    options.beforeCommit?.(pending);
    failpoint('merge.after-publish', pending); // crash tests: merged files published, not registered
    return db.transaction(() => {
      for (const input of inputs) {
        // Another writer (none today) retiring an input first must not leave its rows twice.
        if (remove.run(input.id, input.path).changes !== 1) throw new Error(`merge input ${input.path} is no longer registered`);
        if (isTiered?.get(input.path) !== undefined) throw new TakenByTiering(`merge input ${input.path} was taken by the tiering meanwhile`);
      }
      return insertHotFiles(db, pending);
    }).immediate();
  });
  failpoint('merge.after-commit', inputs); // crash tests: committed, inputs not yet unlinked
  result.merges++;
  result.added.push(...added);
  const paths = inputs.map((f) => f.path);
  result.removed.push(...paths);
  if (options.retire) options.retire(paths);
  else for (const path of paths) unlinkHotFile(stateDir, path);
}

/** Whether landing.db has the tiering's tier map (created by the daemon at start; absent in bare hot-tier use). */
function hasTierMap(db: Database.Database): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tier_files'`).get() !== undefined;
}

function readAll(step: Step, schema: Dataset, inputs: HotFileRecord[]): ColumnBatch {
  return concatBatches(
    schema,
    inputs.map((f) => decodeParquet(schema, readFileSync(join(step.stateDir, f.path)))),
  );
}

/** Where and how a merged file is written; `ids`: the first and last input ids (its name). */
export interface MergedFileTarget {
  stateDir: string;
  spanStartUs: number;
  ids: [number, number];
  rowGroupRows: number;
  l1MaxRows: number;
  createdAtUs: number;
}

/**
 * Writes the rows of one hour and partition (`batch`, any order) as merged L1 files,
 * sorted by stream then time, `l1MaxRows` per file; returns them, unregistered.
 * Pushes each onto `pending` as soon as it is published (withCleanup).
 */
export function writeMergedL1(dataset: Dataset, batch: ColumnBatch, partition: Record<string, RowValue>, target: MergedFileTarget, pending: NewHotFile[] = []): NewHotFile[] {
  const { order } = sortByStreamThenTime(dataset, batch);
  const written: NewHotFile[] = [];
  for (let start = 0, part = 0; start < order.length; start += target.l1MaxRows, part++) {
    const rows = takeRows(batch, order.subarray(start, start + target.l1MaxRows));
    const { bytes, stats } = encodeParquet(dataset, rows, { rowGroupRows: target.rowGroupRows });
    const path = mergedL1Path(dataset.name, target.spanStartUs, partition, target.ids[0], target.ids[1], part);
    writeFileAtomic(join(target.stateDir, path), bytes);
    const [lo, hi] = range(timeValues(rows));
    const fields = { dataset: dataset.name, level: HOT_LEVEL.L1, path, window_start_us: target.spanStartUs, partition_json: JSON.stringify(partition), file_size_bytes: bytes.length, created_at_us: target.createdAtUs };
    const file = newHotFile(fields, stats, lo, hi);
    pending.push(file);
    written.push(file);
  }
  return written;
}

/**
 * Writes rollup rows of one hour or day (`batch`: rows of `schema.dataset`, any
 * order, a (minute, stream) possibly in several rows) as one merged rollup file:
 * by stream then minute, each (minute, stream) once. `times`: the event times the
 * rows summarise (min_ts_us, max_ts_us). Returns it, unregistered.
 */
export function writeMergedRollup(schema: RollupSchema, batch: ColumnBatch, letter: MergeSpanLetter, times: [number, number], target: MergedFileTarget): NewHotFile {
  const { order, ranks } = sortByStreamThenTime(schema.dataset, batch, MINUTE_US);
  const rows = foldRollupRows(schema, batch, order, ranks);
  const { bytes, stats } = encodeParquet(schema.dataset, rows, { rowGroupRows: target.rowGroupRows });
  const path = mergedRollupPath(schema.source.name, target.spanStartUs, letter, target.ids[0], target.ids[1]);
  writeFileAtomic(join(target.stateDir, path), bytes);
  const fields = { dataset: schema.source.name, level: HOT_LEVEL.ROLLUP, path, window_start_us: target.spanStartUs, partition_json: '{}', file_size_bytes: bytes.length, created_at_us: target.createdAtUs };
  return newHotFile(fields, stats, times[0], times[1]);
}

function target(step: Step, group: Group): MergedFileTarget {
  const { stateDir, options } = step;
  const inputs = group.files;
  const ids: [number, number] = [inputs[0]!.id, inputs[inputs.length - 1]!.id];
  return { stateDir, spanStartUs: group.spanStartUs, ids, rowGroupRows: options.rowGroupRows, l1MaxRows: options.l1MaxRows, createdAtUs: (options.nowUs ?? wallClockUs)() };
}

function mergeL1(step: Step, group: Group): void {
  const inputs = group.files;
  const merged = readAll(step, step.dataset, inputs);
  const partition = JSON.parse(inputs[0]!.partition_json) as Record<string, RowValue>;
  publish(step, inputs, (pending) => writeMergedL1(step.dataset, merged, partition, target(step, group), pending));
}

/**
 * The rollup rows of `batch` in `order` (by stream then minute; `ranks`: the stream
 * rank of each), with rows of equal (stream, minute) folded into one.
 */
export function foldRollupRows(schema: RollupSchema, batch: ColumnBatch, order: Uint32Array, ranks: Int32Array): ColumnBatch {
  const n = order.length;
  const minutes = timeValues(batch);
  const heads: number[] = [];
  const starts: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0 && ranks[i] === ranks[i - 1] && minutes[order[i]!] === minutes[order[i - 1]!]) continue;
    heads.push(order[i]!);
    starts.push(i);
  }
  const out = takeRows(batch, Uint32Array.from(heads));
  if (heads.length === n) return out;
  starts.push(n);
  const keyCount = 1 + schema.streamKey.length;
  for (let j = 0; j < schema.measures.length; j++) {
    const at = keyCount + j * AGGREGATES.length;
    const [count, min, max, sum, last, lastTs] = [0, 1, 2, 3, 4, 5].map((k) => batch.columns[at + k] as NumberColumn) as [NumberColumn, NumberColumn, NumberColumn, NumberColumn, NumberColumn, NumberColumn];
    const o = [0, 1, 2, 3, 4, 5].map((k) => out.columns[at + k] as NumberColumn);
    for (let g = 0; g < heads.length; g++) {
      if (starts[g + 1]! - starts[g]! === 1) continue;
      let total = 0;
      let lo = NaN;
      let hi = NaN;
      let s = 0;
      let lastValue = NaN;
      let lastAt = -Infinity;
      for (let i = starts[g]!; i < starts[g + 1]!; i++) {
        const row = order[i]!;
        const c = count.values[row]!;
        if (c === 0) continue; // nulls elsewhere in this row
        const x = min.values[row]!;
        const y = max.values[row]!;
        if (total === 0) {
          lo = x;
          hi = y;
          s = sum.values[row]!;
        } else {
          if (x < lo || lo !== lo) lo = x; // NaN only stays the min when every value is NaN
          if (y > hi || y !== y) hi = y; // NaN is the max once seen
          s += sum.values[row]!;
        }
        if (lastTs.values[row]! >= lastAt) {
          lastAt = lastTs.values[row]!;
          lastValue = last.values[row]!;
        }
        total += c;
      }
      o[0]!.values[g] = total;
      if (total === 0) continue;
      [lo, hi, s, lastValue, lastAt].forEach((v, k) => {
        const column = o[k + 1]!;
        column.values[g] = v;
        if (column.valid) column.valid[g] = 1;
      });
    }
  }
  return out;
}

function mergeRollups(step: Step, schema: RollupSchema, group: Group, letter: MergeSpanLetter): void {
  const inputs = group.files;
  const merged = readAll(step, schema.dataset, inputs);
  // min/max_ts_us: the event times of the rows summarised, as for every rollup file.
  const times: [number, number] = [Math.min(...inputs.map((f) => f.min_ts_us)), Math.max(...inputs.map((f) => f.max_ts_us))];
  publish(step, inputs, (pending) => {
    pending.push(writeMergedRollup(schema, merged, letter, times, target(step, group)));
  });
}

/** `recentPaths`: files the same step's compaction just added (their spans wait). */
export function mergeDataset(db: Database.Database, dataset: Dataset, stateDir: string, options: MergeOptions, nowUs: number, recentPaths: ReadonlySet<string> = new Set()): MergeResult {
  const result: MergeResult = { dataset: dataset.name, merges: 0, added: [], removed: [], errors: [], raced: 0 };
  const step: Step = { db, dataset, stateDir, options, result };
  const settleUs = options.compactionWindowMinutes * 60_000_000 + options.compactionGraceSeconds * 1_000_000;
  const maxRows = options.mergeMaxRows ?? 2 * options.l1MaxRows;
  const pendingL0 = db.prepare(`SELECT DISTINCT window_start_us FROM hot_files WHERE dataset = ? AND level = 0`).pluck().all(dataset.name) as number[];
  const closed = (startUs: number, spanUs: number): boolean =>
    startUs + spanUs + settleUs <= nowUs && !pendingL0.some((w) => w >= startUs && w < startUs + spanUs);
  // L1 files the tiering already took (tier_files) are frozen: merging them would put
  // their rows in warm twice, under two names (tiering/layout.ts).
  const tiered = hasTierMap(db) ? ' AND NOT EXISTS (SELECT 1 FROM tier_files t WHERE t.local_path = hot_files.path)' : '';
  const files = db
    .prepare(`SELECT * FROM hot_files WHERE dataset = ? AND level IN (?, ?)${tiered} ORDER BY id`)
    .all(dataset.name, HOT_LEVEL.L1, HOT_LEVEL.ROLLUP) as HotFileRecord[];
  let budget = options.mergeRowsPerStep ?? Infinity;
  const run = (group: Group, merge: () => void): void => {
    if (budget <= 0 || group.files.some((f) => recentPaths.has(f.path))) return;
    budget -= group.files.reduce((n, f) => n + f.record_count, 0);
    try {
      merge();
    } catch (error) {
      if (error instanceof TakenByTiering) {
        result.raced++;
        return;
      }
      // One bad span (e.g. a registered file missing on disk) must not stop the others.
      result.errors.push({ spanStartUs: group.spanStartUs, message: (error as Error).message });
    }
  };

  const hourOf = (f: HotFileRecord): number => spanStart(f.window_start_us, HOUR_US);
  const l1 = files.filter((f) => f.level === HOT_LEVEL.L1);
  for (const group of groupBy(l1, (f) => `${spanKey(hourOf(f))}\0${f.partition_json}`, hourOf)) {
    if (!closed(group.spanStartUs, HOUR_US) || group.files.every((f) => isMergedPath(f.path, 'h'))) continue;
    if (group.files.reduce((n, f) => n + f.record_count, 0) > maxRows) continue;
    run(group, () => mergeL1(step, group));
  }

  const schema = rollupSchema(dataset);
  if (!schema) return result;
  const rollups = files.filter((f) => f.level === HOT_LEVEL.ROLLUP);
  const dayOf = (f: HotFileRecord): number => spanStart(f.window_start_us, DAY_US);
  const closedDays = new Set<number>();
  for (const group of groupBy(rollups, (f) => spanKey(dayOf(f)), dayOf)) {
    if (!closed(group.spanStartUs, DAY_US)) continue;
    closedDays.add(group.spanStartUs);
    if (group.files.every((f) => isMergedPath(f.path, 'd'))) continue;
    run(group, () => mergeRollups(step, schema, group, 'd'));
  }
  const open = rollups.filter((f) => !closedDays.has(dayOf(f)) && !isMergedPath(f.path, 'd'));
  for (const group of groupBy(open, (f) => spanKey(hourOf(f)), hourOf)) {
    if (!closed(group.spanStartUs, HOUR_US) || group.files.every((f) => isMergedPath(f.path, 'h'))) continue;
    run(group, () => mergeRollups(step, schema, group, 'h'));
  }
  return result;
}
