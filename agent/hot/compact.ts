/**
 * Compaction: the L0 files of a closed event-time window → sorted L1 files, one
 * (or, past `l1MaxRows`, several) per partition of the dataset's `partitionBy`
 * identity columns.
 *
 * Invariants:
 * - A window is compacted once its end + grace has passed, and once its oldest
 *   pending L0 file is at least `grace` old (so late rows arriving in a trickle are
 *   gathered into one extra file instead of many).
 * - The window size and `l1MaxRows` are the dataset's in force at this step (a policy
 *   changes them live, dataset-settings.ts): L0 files sealed with an older size are
 *   compacted with the rest of their window start, closed by the current size. Every
 *   size divides a day, so the L0 files of one window start hold rows of one day.
 * - Compaction never rewrites an L1 file: late L0 files of an already compacted
 *   window become additional L1 files. Once the window's hour is closed, merge.ts
 *   merges the hour's L1 files (late ones included) into hourly files.
 * - Order of durability: L1 files published (atomic rename) → ONE transaction
 *   registers them and unregisters their L0 inputs → L0 files unlinked. A crash
 *   before the commit leaves unregistered L1 files; after it, unregistered L0 files;
 *   recovery deletes either kind. Rows are never in two registered files.
 * - Deterministic: inputs in hot_files id order, a stable sort by event time, L1
 *   names derived from the input ids, partitions in path order.
 * - A dataset with numeric columns also gets one rollup file per step (level 2,
 *   hot/<dataset>/R1/…; rollup.ts) over the same sorted rows, published with the L1
 *   files and registered in the same transaction: same lifecycle, same recovery.
 */
import type Database from 'better-sqlite3';
import { readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Dataset, RowValue } from '../../config/dataset.ts';
import { HOT_LEVEL, type HotFileRecord } from '../landing/schema.ts';
import { failpoint } from '../failpoint.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { cellValue, concatBatches, takeRows, timeValues, type ColumnBatch, type ColumnData } from './columns.ts';
import { decodeParquet } from './parquet-reader.ts';
import { encodeParquet } from './parquet-writer.ts';
import { l1Path, partitionSegments, r1Path } from './paths.ts';
import { computeRollup } from './rollup.ts';
import { rollupSchema } from './rollup-schema.ts';
import { insertHotFiles, newHotFile, nowUs as wallClockUs, withCleanup, type NewHotFile } from './registry.ts';

export interface CompactOptions {
  compactionWindowMinutes: number;
  compactionGraceSeconds: number;
  rowGroupRows: number;
  /** Rows per L1 file at most; a larger partition is split into several files. */
  l1MaxRows: number;
  /** Test hook: runs after the L1 files are published, before the commit. */
  beforeCommit?: (files: NewHotFile[]) => void;
  nowUs?: () => number;
}

export interface CompactResult {
  dataset: string;
  windows: number;
  rows: number;
  added: HotFileRecord[];
  /** Paths (relative to the state dir) of the L0 files replaced. */
  removed: string[];
  errors: { windowStartUs: number; message: string }[];
}

/** Stable LSD radix argsort of unsigned 32-bit keys: two 16-bit passes. */
function radixArgsort(keys: Uint32Array): Uint32Array {
  const n = keys.length;
  let from = new Uint32Array(n);
  let to = new Uint32Array(n);
  for (let i = 0; i < n; i++) from[i] = i;
  const counts = new Uint32Array(65536);
  for (let shift = 0; shift < 32; shift += 16) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(keys[i]! >>> shift) & 0xffff]!++;
    let sum = 0;
    for (let b = 0; b < 65536; b++) {
      const c = counts[b]!;
      counts[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const row = from[i]!;
      to[counts[(keys[row]! >>> shift) & 0xffff]!++] = row;
    }
    [from, to] = [to, from];
  }
  return from;
}

/**
 * Stable argsort by time. A window spans well under 2^32 µs (71 minutes), so the
 * common case is a radix sort of offsets; wider spans fall back to a packed
 * (offset, index) numeric sort, or a comparator sort.
 */
export function sortByTime(times: Float64Array): Uint32Array {
  const n = times.length;
  let sorted = true;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const t = times[i] as number;
    if (i > 0 && t < (times[i - 1] as number)) sorted = false;
    if (t < min) min = t;
    if (t > max) max = t;
  }
  if (sorted || n < 2) {
    const identity = new Uint32Array(n);
    for (let i = 0; i < n; i++) identity[i] = i;
    return identity;
  }
  if (max - min < 4294967296) {
    const keys = new Uint32Array(n);
    for (let i = 0; i < n; i++) keys[i] = (times[i] as number) - min;
    return radixArgsort(keys);
  }
  const perm = new Uint32Array(n);
  if ((max - min + 1) * n < Number.MAX_SAFE_INTEGER) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = ((times[i] as number) - min) * n + i;
    keys.sort();
    for (let i = 0; i < n; i++) perm[i] = (keys[i] as number) % n;
    return perm;
  }
  for (let i = 0; i < n; i++) perm[i] = i;
  return perm.sort((a, b) => (times[a] as number) - (times[b] as number) || a - b);
}

interface Partition {
  values: Record<string, RowValue>;
  segments: string;
  rows: Uint32Array;
}

/**
 * A small integer per row naming its partition: dictionary codes directly when the
 * dataset partitions by one string column (the common case), string keys otherwise.
 */
function partitionIds(dataset: Dataset, batch: ColumnBatch): { ids: Int32Array; count: number } {
  const n = batch.length;
  const ids = new Int32Array(n);
  const only = dataset.partitionBy.length === 1 ? (batch.columns[dataset.partitionBy[0]!] as ColumnData) : null;
  if (only && only.kind === 'dict' && !only.valid) {
    const remap = new Int32Array(only.dictionary.length).fill(-1);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const code = only.codes[i]!;
      let id = remap[code]!;
      if (id < 0) remap[code] = id = count++;
      ids[i] = id;
    }
    return { ids, count };
  }
  const keys = new Map<string, number>();
  const columnKey = (data: ColumnData, row: number): string =>
    data.valid && data.valid[row] === 0 ? 'n' : data.kind === 'dict' ? `d${data.codes[row]}` : `v${data.values[row]}`;
  for (let i = 0; i < n; i++) {
    let key = '';
    for (const c of dataset.partitionBy) key += `${columnKey(batch.columns[c] as ColumnData, i)}|`;
    let id = keys.get(key);
    if (id === undefined) keys.set(key, (id = keys.size));
    ids[i] = id;
  }
  return { ids, count: keys.size };
}

/** Groups the rows of `order` by the partition columns, keeping `order` within each group; groups in path order. */
export function partitionRows(dataset: Dataset, batch: ColumnBatch, order: Uint32Array): Partition[] {
  const { ids, count } = partitionIds(dataset, batch);
  const sizes = new Uint32Array(count);
  const firstRow = new Int32Array(count).fill(-1);
  for (let i = 0; i < batch.length; i++) {
    const id = ids[i]!;
    sizes[id]!++;
    if (firstRow[id]! < 0) firstRow[id] = i;
  }
  const partitions: (Partition & { at: number })[] = [];
  for (let id = 0; id < count; id++) {
    const values: Record<string, RowValue> = {};
    for (const c of dataset.partitionBy) values[dataset.columns[c]!.name] = cellValue(dataset, batch, c, firstRow[id]!);
    partitions.push({ values, segments: partitionSegments(values), rows: new Uint32Array(sizes[id]!), at: 0 });
  }
  for (let i = 0; i < order.length; i++) {
    const row = order[i]!;
    const p = partitions[ids[row]!]!;
    p.rows[p.at++] = row;
  }
  return partitions
    .map(({ values, segments, rows }) => ({ values, segments, rows }))
    .sort((a, b) => (a.segments < b.segments ? -1 : a.segments > b.segments ? 1 : 0));
}

interface PendingWindow {
  window_start_us: number;
  first_created_us: number;
}

function compactWindow(db: Database.Database, dataset: Dataset, stateDir: string, options: CompactOptions, windowStartUs: number, result: CompactResult): void {
  const inputs = db
    .prepare(`SELECT * FROM hot_files WHERE dataset = ? AND level = 0 AND window_start_us = ? ORDER BY id`)
    .all(dataset.name, windowStartUs) as HotFileRecord[];
  if (inputs.length === 0) return;
  const merged = concatBatches(
    dataset,
    inputs.map((file) => decodeParquet(dataset, readFileSync(join(stateDir, file.path)))),
  );
  const times = timeValues(merged);
  const order = sortByTime(times);
  const firstL0 = inputs[0]!.id;
  const lastL0 = inputs[inputs.length - 1]!.id;
  const clock = options.nowUs ?? wallClockUs;
  const pending: NewHotFile[] = [];
  const remove = db.prepare(`DELETE FROM hot_files WHERE id = ?`);
  const added = withCleanup(stateDir, pending, () => {
    partitionRows(dataset, merged, order).forEach((partition, ordinal) => {
      for (let start = 0, part = 0; start < partition.rows.length; start += options.l1MaxRows, part++) {
        const rows = partition.rows.subarray(start, start + options.l1MaxRows);
        const batch = takeRows(merged, rows);
        const { bytes, stats } = encodeParquet(dataset, batch, { rowGroupRows: options.rowGroupRows });
        const path = l1Path(dataset.name, windowStartUs, partition.values, firstL0, lastL0, ordinal, part);
        writeFileAtomic(join(stateDir, path), bytes);
        const fileTimes = timeValues(batch);
        pending.push(
          newHotFile(
            {
              dataset: dataset.name,
              level: HOT_LEVEL.L1,
              path,
              window_start_us: windowStartUs,
              partition_json: JSON.stringify(partition.values),
              file_size_bytes: bytes.length,
              created_at_us: clock(),
            },
            stats,
            fileTimes[0] as number,
            fileTimes[fileTimes.length - 1] as number,
          ),
        );
      }
    });
    const rollup = rollupSchema(dataset);
    if (rollup && merged.length > 0) {
      const { bytes, stats } = encodeParquet(rollup.dataset, computeRollup(rollup, merged, order), { rowGroupRows: options.rowGroupRows });
      const path = r1Path(dataset.name, windowStartUs, firstL0, lastL0);
      writeFileAtomic(join(stateDir, path), bytes);
      const fields = { dataset: dataset.name, level: HOT_LEVEL.ROLLUP, path, window_start_us: windowStartUs, partition_json: '{}', file_size_bytes: bytes.length, created_at_us: clock() };
      // min/max_ts_us: the event times of the rows summarised (not of the minutes).
      pending.push(newHotFile(fields, stats, times[order[0]!] as number, times[order[order.length - 1]!] as number));
    }
    options.beforeCommit?.(pending);
    failpoint('compact.after-publish', pending); // crash tests: L1 published, not registered
    return db.transaction(() => {
      const records = insertHotFiles(db, pending);
      for (const input of inputs) remove.run(input.id);
      return records;
    }).immediate();
  });
  failpoint('compact.after-commit', inputs); // crash tests: committed, L0 inputs not yet unlinked
  result.windows++;
  result.rows += merged.length;
  result.added.push(...added);
  for (const input of inputs) {
    result.removed.push(input.path);
    // Unregistered now: losing this unlink to a crash only leaves an orphan for recovery.
    try {
      unlinkSync(join(stateDir, input.path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  try {
    rmdirSync(dirname(join(stateDir, inputs[0]!.path)));
  } catch {
    // Not empty (a late L0 arrived meanwhile) or already gone: fine either way.
  }
}

export function compactDataset(db: Database.Database, dataset: Dataset, stateDir: string, options: CompactOptions, nowUs: number): CompactResult {
  const result: CompactResult = { dataset: dataset.name, windows: 0, rows: 0, added: [], removed: [], errors: [] };
  const windowUs = options.compactionWindowMinutes * 60_000_000;
  const graceUs = options.compactionGraceSeconds * 1_000_000;
  const windows = db
    .prepare(
      `SELECT window_start_us, min(created_at_us) AS first_created_us FROM hot_files
       WHERE dataset = ? AND level = 0 GROUP BY window_start_us ORDER BY window_start_us`,
    )
    .all(dataset.name) as PendingWindow[];
  for (const window of windows) {
    if (window.window_start_us + windowUs + graceUs > nowUs) continue;
    if (window.first_created_us + graceUs > nowUs) continue;
    try {
      compactWindow(db, dataset, stateDir, options, window.window_start_us, result);
    } catch (error) {
      // One bad window (e.g. a registered file missing on disk) must not stop the others.
      result.errors.push({ windowStartUs: window.window_start_us, message: (error as Error).message });
    }
  }
  return result;
}
