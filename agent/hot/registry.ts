/**
 * Reads and writes `hot_files`, the register of published hot-tier files (schema in
 * landing/schema.ts). A row exists iff its file is part of the hot tier: it is
 * inserted in the same transaction that removes the file's inputs, after the file
 * is durable on disk.
 */
import type Database from 'better-sqlite3';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { HotFileRecord, HotLevel } from '../landing/schema.ts';
import type { FileStats } from './parquet-writer.ts';

export type NewHotFile = Omit<HotFileRecord, 'id'>;

export function newHotFile(
  fields: { dataset: string; level: HotLevel; path: string; window_start_us: number; partition_json: string; file_size_bytes: number; created_at_us: number },
  stats: FileStats,
  minTsUs: number,
  maxTsUs: number,
): NewHotFile {
  return { ...fields, min_ts_us: minTsUs, max_ts_us: maxTsUs, record_count: stats.record_count, stats_json: JSON.stringify(stats) };
}

/** Inserts rows (inside the caller's transaction) and returns them with their ids. */
export function insertHotFiles(db: Database.Database, files: NewHotFile[]): HotFileRecord[] {
  const insert = db.prepare(
    `INSERT INTO hot_files (dataset, level, path, window_start_us, partition_json, min_ts_us, max_ts_us,
       record_count, file_size_bytes, stats_json, created_at_us)
     VALUES (@dataset, @level, @path, @window_start_us, @partition_json, @min_ts_us, @max_ts_us,
       @record_count, @file_size_bytes, @stats_json, @created_at_us)`,
  );
  return files.map((file) => ({ id: Number(insert.run(file).lastInsertRowid), ...file }));
}

export function hotFilesOf(db: Database.Database, dataset: string): HotFileRecord[] {
  return db.prepare(`SELECT * FROM hot_files WHERE dataset = ? ORDER BY id`).all(dataset) as HotFileRecord[];
}

export function nowUs(): number {
  return Date.now() * 1000;
}

/**
 * Runs one publish-then-commit step; if it throws before committing, the files it
 * already published (listed in `pending`) are unlinked, so a failing step retried
 * every interval does not pile up orphans. (A crash skips this: recovery cleans up.)
 */
export function withCleanup<T>(stateDir: string, pending: NewHotFile[], step: () => T): T {
  try {
    return step();
  } catch (error) {
    for (const file of pending) {
      try {
        unlinkSync(join(stateDir, file.path));
      } catch {
        // Already gone or never renamed into place.
      }
    }
    throw error;
  }
}
