/**
 * Per-dataset hot-tier settings that change at runtime (a central policy's
 * `compaction_window_minutes` and `target_file_bytes`, issue 7), and how the seal
 * worker turns them into the options of seal, compaction and merge.
 *
 * Invariants:
 * - A window divides a UTC day (1440 % minutes === 0). Windows start at multiples of
 *   their size since the epoch, so every window lies in one UTC day whatever its size;
 *   files of one window start (L0 of an old and a new size alike), of one hour or one
 *   day then hold rows of one day (the Iceberg day partition, sync/iceberg/data-file.ts).
 *   A window that does not divide a day is refused, never clamped: the policy
 *   validator refuses it (sync/policy/safety.ts) and `hotSettingsProblem` refuses it
 *   again before anything applies.
 * - Changing a window never moves a row: L0 files keep the window they were sealed
 *   in, compaction takes every L0 file of one window start in one transaction whatever
 *   size it was sealed with, so each row still ends in exactly one L1 file. What
 *   changes is only when a window counts as closed and how new rows are aligned: an
 *   old, larger L0 window may be compacted earlier (a late row becomes an extra L1
 *   file), an old, smaller one later.
 * - The L1 row cap for a target size comes from the dataset's recent L1 files
 *   (bytes per row), bounded; without history it is the configured cap.
 */
import type Database from 'better-sqlite3';

export const DAY_MINUTES = 1440;

/** What a policy sets for one dataset; `targetFileBytes` null: the configured row cap. */
export interface DatasetHotSettings {
  compactionWindowMinutes: number;
  targetFileBytes: number | null;
}

/** The hot options one dataset's seal, compaction and merge use now. */
export interface DatasetHotOptions {
  compactionWindowMinutes: number;
  l1MaxRows: number;
}

/** Why a window cannot be used, or null. */
export function windowProblem(minutes: number): string | null {
  if (!Number.isInteger(minutes) || minutes <= 0 || minutes > DAY_MINUTES || DAY_MINUTES % minutes !== 0) {
    return `compaction_window_minutes ${minutes} does not divide a day (1440 minutes): a window would span two UTC days, and a file must hold rows of one day (use e.g. 1, 5, 10, 15, 20, 30, 60)`;
  }
  return null;
}

/** The first problem of a settings map (dataset named), or null. */
export function hotSettingsProblem(settings: Record<string, DatasetHotSettings>): string | null {
  for (const [dataset, s] of Object.entries(settings)) {
    const problem = windowProblem(s.compactionWindowMinutes);
    if (problem) return `dataset ${dataset}: ${problem}`;
    if (s.targetFileBytes !== null && !(Number.isInteger(s.targetFileBytes) && s.targetFileBytes > 0)) {
      return `dataset ${dataset}: target_file_bytes ${s.targetFileBytes} is not a positive integer`;
    }
  }
  return null;
}

/** Bytes per row are taken from this many of the dataset's newest L1 files. */
const RECENT_L1_FILES = 20;
/** Bounds of the estimate (a file of tiny or huge rows must not give an absurd cap). */
export const MIN_BYTES_PER_ROW = 1;
export const MAX_BYTES_PER_ROW = 1 << 20;
/** Bounds of the row cap a target size gives. */
export const MIN_L1_ROWS = 1000;
export const MAX_L1_ROWS = 16_000_000;

/** Bytes per row of the dataset's recent L1 files (Parquet size / rows), bounded; null without history. */
export function recentBytesPerRow(db: Database.Database, dataset: string): number | null {
  const row = db
    .prepare(
      `SELECT sum(file_size_bytes) AS bytes, sum(record_count) AS rows FROM
         (SELECT file_size_bytes, record_count FROM hot_files WHERE dataset = ? AND level = 1 AND record_count > 0 ORDER BY id DESC LIMIT ?)`,
    )
    .get(dataset, RECENT_L1_FILES) as { bytes: number | null; rows: number | null };
  if (!row.rows || row.bytes === null) return null;
  return Math.min(MAX_BYTES_PER_ROW, Math.max(MIN_BYTES_PER_ROW, row.bytes / row.rows));
}

/** The L1 row cap for a target file size: target / bytes per row, bounded; `fallbackRows` without history. */
export function l1RowsForTarget(targetBytes: number, bytesPerRow: number | null, fallbackRows: number): number {
  if (bytesPerRow === null) return fallbackRows;
  return Math.min(MAX_L1_ROWS, Math.max(MIN_L1_ROWS, Math.round(targetBytes / bytesPerRow)));
}

/** One dataset's options now: its settings over the configured defaults. */
export function datasetHotOptions(
  db: Database.Database,
  dataset: string,
  settings: DatasetHotSettings | undefined,
  defaults: DatasetHotOptions,
): DatasetHotOptions {
  if (!settings) return defaults;
  const l1MaxRows = settings.targetFileBytes === null ? defaults.l1MaxRows : l1RowsForTarget(settings.targetFileBytes, recentBytesPerRow(db, dataset), defaults.l1MaxRows);
  return { compactionWindowMinutes: settings.compactionWindowMinutes, l1MaxRows };
}
