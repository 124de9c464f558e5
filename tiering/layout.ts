/**
 * Object keys in the warm and cold stores, and the discovery of files to tier.
 *
 * Layout (keys are relative to the store URL's prefix, `s3://bucket/<prefix>`; warm
 * and cold use the same key for the same file):
 *
 *   <plant>/<dataset>/data/<window>/<partition k=v/…>/<agent_id>-<l1 file name>
 *   <plant>/blobs/<sha256[0..2]>/<sha256>
 *
 * e.g. `ulm/inspections/data/20261121T1440Z/line=3/ulm-1-7-p0-0.parquet` for the
 * local L1 file `hot/inspections/L1/20261121T1440Z/line=3/1-7-p0-0.parquet`.
 *
 * Invariants:
 * - Keys are deterministic: the same local file always maps to the same key, so a
 *   retried upload addresses the same object (the store verifies, never duplicates).
 * - Data keys carry the agent id: L1 names derive from this agent's landing ids, so
 *   two agents of one plant never collide. Blob keys are content addresses: the same
 *   frame from two agents is one object.
 * - Only L1 files (level 1) and blobs are tiered; L0 files are compacted into L1
 *   first, rollups (level 2) are local summaries.
 * - An L1 file is tiered at most once, and a merge never rewrites a tiered file: the
 *   hot-tier merge (agent/hot/merge.ts) skips L1 files the tier map knows, and the
 *   tier map registers a data file only while `hot_files` still lists it (tier-map.ts),
 *   both inside SQLite transactions, so a merge and a discovery racing for the same
 *   file cannot both win (no data object uploaded twice under two names).
 * - With `hourSettleUs` (tiering.wait_for_hour_merge), an L1 file is discovered only
 *   once its hour has been closed for that long, after the merge had its turn.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { sha256OfFile } from './stores/file-store.ts';
import type { NewTierFile, TierMap } from './tier-map.ts';

const HOUR_US = 3_600_000_000;

export interface KeyContext {
  plant: string;
  agentId: string;
}

/** `hot/<dataset>/L1/<rest…>/<name>` → the data key. */
export function dataKey(context: KeyContext, localPath: string): string {
  const segments = localPath.split('/');
  if (segments[0] !== 'hot' || segments[2] !== 'L1' || segments.length < 5) throw new Error(`not an L1 path: ${localPath}`);
  const dataset = segments[1]!;
  const rest = segments.slice(3);
  rest[rest.length - 1] = `${context.agentId}-${rest[rest.length - 1]}`;
  return [context.plant, dataset, 'data', ...rest].join('/');
}

export function blobKey(context: KeyContext, sha256: string): string {
  return `${context.plant}/blobs/${sha256.slice(0, 2)}/${sha256}`;
}

/** The blob's path relative to the state directory (agent/blobs/blob-store.ts layout). */
export function blobLocalPath(sha256: string): string {
  return `blobs/${sha256.slice(0, 2)}/${sha256}`;
}

/**
 * Registers L1 files and blobs the tier map does not know yet, at most `limit` of
 * each per call; L1 files are hashed from disk. Returns how many were registered.
 */
export async function discoverNewFiles(
  db: Database.Database,
  map: TierMap,
  stateDir: string,
  context: KeyContext,
  nowUs: number,
  limit = 500,
  hourSettleUs: number | null = null,
): Promise<number> {
  // Files of hours that closed at least `hourSettleUs` ago: window_start < the start of
  // the hour holding (now - settle), i.e. their hour ended before now - settle.
  const windowBeforeUs = hourSettleUs === null ? Number.MAX_SAFE_INTEGER : Math.floor((nowUs - hourSettleUs) / HOUR_US) * HOUR_US;
  const l1 = db
    .prepare(
      `SELECT h.dataset, h.path, h.min_ts_us, h.max_ts_us FROM hot_files h
       WHERE h.level = 1 AND h.window_start_us < ? AND NOT EXISTS (SELECT 1 FROM tier_files t WHERE t.local_path = h.path)
       ORDER BY h.id LIMIT ?`,
    )
    .all(windowBeforeUs, limit) as { dataset: string; path: string; min_ts_us: number; max_ts_us: number }[];
  const files: NewTierFile[] = [];
  for (const row of l1) {
    let hashed;
    try {
      hashed = await sha256OfFile(join(stateDir, row.path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // reported by hot-tier recovery
      throw error;
    }
    files.push({ kind: 'data', dataset: row.dataset, local_path: row.path, object_key: dataKey(context, row.path), size_bytes: hashed.sizeBytes, sha256: hashed.sha256, event_time_us: row.max_ts_us, min_event_time_us: row.min_ts_us });
  }
  const blobs = db
    .prepare(
      `SELECT b.sha256, b.size_bytes, b.first_seen_us FROM blobs b
       WHERE NOT EXISTS (SELECT 1 FROM tier_files t WHERE t.local_path = 'blobs/' || substr(b.sha256, 1, 2) || '/' || b.sha256)
       ORDER BY b.first_seen_us LIMIT ?`,
    )
    .all(limit) as { sha256: string; size_bytes: number; first_seen_us: number }[];
  for (const blob of blobs) {
    files.push({ kind: 'blob', dataset: null, local_path: blobLocalPath(blob.sha256), object_key: blobKey(context, blob.sha256), size_bytes: blob.size_bytes, sha256: blob.sha256, event_time_us: blob.first_seen_us });
  }
  return files.length ? map.register(files, nowUs) : 0;
}
