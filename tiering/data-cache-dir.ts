/**
 * Where the read-through cache of evicted data files lives, shared by the fetching side
 * (data-cache.ts: the daemon's tiering, `lakeside backfill`) and the query engine, which
 * adds what it finds here to the dataset views. Kept free of store code so the reads
 * worker can import it cheaply.
 *
 * Layout: `<state_dir>/cache/data/<dataset>/<sha256>.parquet`. A name of this form is
 * a complete file whose bytes hash to the name (renamed into place after the check);
 * anything else (`.tmp-…`) is a download in progress and never listed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const DATA_CACHE_DIR = join('cache', 'data');
const CACHED_NAME = /^([0-9a-f]{64})\.parquet$/;

export interface CachedDataFile {
  dataset: string;
  sha256: string;
  /** Absolute path. */
  path: string;
  sizeBytes: number;
  /** Last use (mtime, set on every use): the LRU order. */
  usedMs: number;
}

export function cachedDataPath(cacheDir: string, dataset: string, sha256: string): string {
  return join(cacheDir, dataset, `${sha256}.parquet`);
}

/** Every complete cached file under `cacheDir` (missing directory: none). */
export function listCachedData(cacheDir: string): CachedDataFile[] {
  const files: CachedDataFile[] = [];
  for (const dataset of readdirOrEmpty(cacheDir)) {
    for (const name of readdirOrEmpty(join(cacheDir, dataset))) {
      const match = CACHED_NAME.exec(name);
      if (!match) continue;
      const path = join(cacheDir, dataset, name);
      try {
        const s = statSync(path);
        files.push({ dataset, sha256: match[1]!, path, sizeBytes: s.size, usedMs: s.mtimeMs });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // trimmed meanwhile
      }
    }
  }
  return files;
}

/** Cached files per dataset, paths sorted (a stable view key). */
export function cachedDataByDataset(cacheDir: string): Map<string, string[]> {
  const byDataset = new Map<string, string[]>();
  for (const file of listCachedData(cacheDir)) {
    const list = byDataset.get(file.dataset) ?? [];
    list.push(file.path);
    byDataset.set(file.dataset, list);
  }
  for (const list of byDataset.values()) list.sort();
  return byDataset;
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
}
