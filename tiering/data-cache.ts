/**
 * The read-through cache of evicted data files (issue 5, item 6): for a query over a
 * time range older than the hot window, the L1 files of that range the evictor removed
 * (committed, so safe in warm, or archived to cold) are fetched back into
 * `<state_dir>/cache/data` (data-cache-dir.ts), and the query engine's dataset views
 * list them beside the hot files. The daemon fetches for `POST /v1/query` with
 * `include_warm`; `lakeside backfill` fetches ahead of time.
 *
 * Invariants:
 * - Bounded: the cache holds at most `maxBytes`. A range whose files alone exceed the
 *   budget is refused (CacheBudgetError) before anything is fetched; otherwise the least
 *   recently used files outside the range are deleted first to make room, so the
 *   budget holds at every moment, not only after the fetch.
 * - A file used in the last `inUseMs` (default 2 min: a query that fetched it may still
 *   be reading it) is never deleted to make room; if the room cannot be made without
 *   such files, the fetch is refused (CacheBudgetError, "in use") rather than letting a
 *   running query lose rows.
 * - Verified: a download is written to a temp name, hashed on the way, and renamed into
 *   place only if its sha256 and size are the tier map's; a mismatch is refused
 *   (ObjectStoreError CHECKSUM_MISMATCH) and leaves nothing behind.
 * - Never twice in a view: only evicted files are fetched, and an evicted file is no
 *   longer in `hot_files`.
 * - The state is the directory itself (LRU order = mtime, touched on every use), so the
 *   daemon and a `lakeside backfill` beside it share one cache. Fetches within one
 *   process run one at a time. Deleting the directory loses nothing.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { cachedDataPath, listCachedData } from './data-cache-dir.ts';
import { hashingStream } from './stores/hashing.ts';
import { ObjectNotFoundError, ObjectStoreError, type ObjectStore } from './stores/object-store.ts';
import type { TierMap, TierRecord } from './tier-map.ts';

/** Event times, µs since the epoch: [fromUs, toUs). */
export interface TimeRange {
  fromUs: number;
  toUs: number;
}

export interface DataCacheOptions {
  /** `<state_dir>/cache/data`. */
  dir: string;
  maxBytes: number;
  map: TierMap;
  warm: ObjectStore | null;
  cold: ObjectStore | null;
  /** Files used more recently than this are not deleted to make room (default 120 000 ms). */
  inUseMs?: number;
}

export interface FetchProgress {
  doneFiles: number;
  totalFiles: number;
  doneBytes: number;
  totalBytes: number;
}

export interface RangeReport {
  /** Evicted files the range needs, and their bytes. */
  files: number;
  bytes: number;
  /** Of those, fetched now (the rest were cached already). */
  fetchedFiles: number;
  fetchedBytes: number;
  /** Cached files deleted to make room (least recently used first). */
  dropped: number;
}

/** The range's files do not fit in the cache at all. */
export class CacheBudgetError extends Error {
  readonly code = 'CACHE_BUDGET_EXCEEDED';
  readonly neededBytes: number;
  readonly maxBytes: number;
  constructor(neededBytes: number, maxBytes: number, files: number, inUseBytes = 0) {
    super(
      inUseBytes > 0
        ? `the range needs ${files} evicted files (${neededBytes} bytes), but ${inUseBytes} bytes of the read cache (tiering.read_cache_max_bytes = ${maxBytes}) hold files queries used in the last minutes: retry later, narrow the range, or raise the budget`
        : `the range needs ${files} evicted files (${neededBytes} bytes), more than the read cache holds (tiering.read_cache_max_bytes = ${maxBytes}): narrow the range or the dataset, or raise the budget`,
    );
    this.neededBytes = neededBytes;
    this.maxBytes = maxBytes;
  }
}

/** A needed file cannot be fetched: no store configured for its tier, or the object is gone. */
export class WarmUnavailableError extends Error {
  readonly code = 'WARM_UNAVAILABLE';
}

export class DataReadCache {
  private readonly options: DataCacheOptions;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: DataCacheOptions) {
    this.options = options;
  }

  /** Removes downloads a crash left half-written, and trims to the budget (it may have shrunk). */
  async start(): Promise<void> {
    const { dir } = this.options;
    await mkdir(dir, { recursive: true });
    for (const dataset of await readdir(dir)) {
      const names = await readdir(join(dir, dataset)).catch(() => [] as string[]);
      for (const name of names) if (name.startsWith('.tmp-')) await unlink(join(dir, dataset, name)).catch(() => {});
    }
    await this.makeRoom(new Set(), 0, 0);
  }

  /** Bytes held now. */
  sizeBytes(): number {
    return listCachedData(this.options.dir).reduce((n, f) => n + f.sizeBytes, 0);
  }

  /** The evicted files a query over `range` (of `dataset`, or of every dataset) needs. */
  needed(range: TimeRange, dataset?: string): TierRecord[] {
    return this.options.map.evictedDataOverlapping(range.fromUs, range.toUs, dataset);
  }

  /** Makes every evicted file of the range present in the cache (verified), within the budget. */
  fetchRange(range: TimeRange, options: { dataset?: string; onProgress?: (p: FetchProgress) => void } = {}): Promise<RangeReport> {
    const next = this.tail.then(() => this.fetchRangeNow(range, options));
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async fetchRangeNow(range: TimeRange, options: { dataset?: string; onProgress?: (p: FetchProgress) => void }): Promise<RangeReport> {
    const { dir, maxBytes } = this.options;
    const records = this.needed(range, options.dataset);
    const totalBytes = records.reduce((n, r) => n + r.size_bytes, 0);
    if (totalBytes > maxBytes) throw new CacheBudgetError(totalBytes, maxBytes, records.length);
    const cached = new Set(listCachedData(dir).map((f) => f.path));
    const wanted = new Set(records.map((r) => cachedDataPath(dir, r.dataset!, r.sha256)));
    const missing = records.filter((r) => !cached.has(cachedDataPath(dir, r.dataset!, r.sha256)));
    const incoming = missing.reduce((n, r) => n + r.size_bytes, 0);
    const room = await this.makeRoom(wanted, incoming, this.options.inUseMs ?? 120_000);
    if (room.inUseBytes > 0) throw new CacheBudgetError(totalBytes, maxBytes, records.length, room.inUseBytes);
    const dropped = room.dropped;
    const progress: FetchProgress = { doneFiles: 0, totalFiles: records.length, doneBytes: 0, totalBytes };
    const report: RangeReport = { files: records.length, bytes: totalBytes, fetchedFiles: 0, fetchedBytes: 0, dropped };
    for (const record of records) {
      const path = cachedDataPath(dir, record.dataset!, record.sha256);
      if (cached.has(path)) {
        const now = new Date();
        await utimes(path, now, now).catch(() => {});
      } else {
        await this.download(record, path);
        report.fetchedFiles++;
        report.fetchedBytes += record.size_bytes;
      }
      progress.doneFiles++;
      progress.doneBytes += record.size_bytes;
      options.onProgress?.({ ...progress });
    }
    return report;
  }

  /**
   * Deletes least recently used files outside `keep` until `incomingBytes` more fit in
   * the budget, never one used in the last `inUseMs`. Returns how many went, and, when
   * the room could not be made, how many bytes in-use files hold (nothing deleted then).
   */
  private async makeRoom(keep: Set<string>, incomingBytes: number, inUseMs: number): Promise<{ dropped: number; inUseBytes: number }> {
    const files = listCachedData(this.options.dir);
    const total = files.reduce((n, f) => n + f.sizeBytes, 0) + incomingBytes;
    const recent = Date.now() - inUseMs;
    const candidates = files.filter((f) => !keep.has(f.path)).sort((a, b) => a.usedMs - b.usedMs);
    const droppable = candidates.filter((f) => f.usedMs < recent);
    const victims: typeof files = [];
    let left = total;
    for (const file of droppable) {
      if (left <= this.options.maxBytes) break;
      victims.push(file);
      left -= file.sizeBytes;
    }
    if (left > this.options.maxBytes) return { dropped: 0, inUseBytes: candidates.filter((f) => f.usedMs >= recent).reduce((n, f) => n + f.sizeBytes, 0) };
    for (const file of victims) await unlink(file.path).catch(() => {});
    return { dropped: victims.length, inUseBytes: 0 };
  }

  private async download(record: TierRecord, path: string): Promise<void> {
    const { map } = this.options;
    let current = record;
    for (let attempt = 0; ; attempt++) {
      const store = current.state === 'archived' ? this.options.cold : this.options.warm;
      if (!store) throw new WarmUnavailableError(`${current.object_key} is ${current.state === 'archived' ? 'in cold' : 'in warm'}, and no ${current.state === 'archived' ? 'cold' : 'warm'} store is configured`);
      try {
        await this.downloadFrom(store, current, path);
        return;
      } catch (error) {
        if (!(error instanceof ObjectNotFoundError)) throw error;
        // Archived between the look-up and the get: the next try reads cold.
        const again = map.get(current.id);
        if (attempt > 0 || !again || again.state === current.state) throw new WarmUnavailableError(`${current.object_key} is missing from ${store.description}`);
        current = again;
      }
    }
  }

  private async downloadFrom(store: ObjectStore, record: TierRecord, path: string): Promise<void> {
    await mkdir(join(path, '..'), { recursive: true });
    const temp = join(path, '..', `.tmp-${record.sha256}-${randomBytes(4).toString('hex')}`);
    try {
      const hashing = hashingStream();
      await pipeline(await store.get(record.object_key), hashing.stream, createWriteStream(temp));
      const sha256 = hashing.digest();
      if (sha256 !== record.sha256 || hashing.bytes() !== record.size_bytes) {
        throw new ObjectStoreError(
          'CHECKSUM_MISMATCH',
          `${record.object_key} from ${store.description} has sha256 ${sha256} (${hashing.bytes()} bytes), the tier map says ${record.sha256} (${record.size_bytes} bytes): not cached`,
          false,
        );
      }
      await rename(temp, path);
    } finally {
      await unlink(temp).catch(() => {});
    }
  }
}
