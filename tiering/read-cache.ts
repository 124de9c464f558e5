/**
 * The read-through cache for blobs that left local disk: a blob the evictor removed
 * (committed, safe in warm or cold) is fetched back on demand into
 * `<state_dir>/cache/blobs/<sha256>`, so `/v1/blobs` still serves old frames.
 *
 * Invariants:
 * - Bounded: after every fetch the least recently used files go until the cache
 *   holds at most `maxBytes` (one blob larger than the budget is served, then dropped).
 * - A cached file is verified: its bytes hash to its name (content address), checked
 *   before it is renamed into place; a temp file a crash leaves is removed at start.
 * - Concurrent requests for one blob share one fetch.
 * - The cache is not part of the hot tier: nothing registers or uploads it, and
 *   deleting the directory loses nothing.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { hashingStream } from './stores/hashing.ts';
import { ObjectNotFoundError, type ObjectStore } from './stores/object-store.ts';
import type { TierMap } from './tier-map.ts';
import { blobLocalPath } from './layout.ts';

export interface BlobCacheOptions {
  dir: string;
  maxBytes: number;
  map: TierMap;
  warm: ObjectStore | null;
  cold: ObjectStore | null;
}

export class BlobReadCache {
  private readonly options: BlobCacheOptions;
  /** sha256 → size, in least-recently-used-first order (a Map keeps insertion order). */
  private readonly entries = new Map<string, number>();
  private bytes = 0;
  private readonly fetching = new Map<string, Promise<string | null>>();

  constructor(options: BlobCacheOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { dir } = this.options;
    await mkdir(dir, { recursive: true });
    const found: { sha: string; size: number; atime: number }[] = [];
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (!/^[0-9a-f]{64}$/.test(name)) {
        await rm(path, { force: true, recursive: true });
        continue;
      }
      const s = await stat(path);
      found.push({ sha: name, size: s.size, atime: s.atimeMs });
    }
    for (const f of found.sort((a, b) => a.atime - b.atime)) this.remember(f.sha, f.size);
    await this.trim();
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** A local path holding the blob, fetched if needed; null when the tier map does not know it as evicted. */
  fetch(sha256: string): Promise<string | null> {
    const path = join(this.options.dir, sha256);
    if (this.entries.has(sha256)) {
      this.touch(sha256);
      void utimes(path, new Date(), new Date()).catch(() => {});
      return Promise.resolve(path);
    }
    let running = this.fetching.get(sha256);
    if (!running) {
      running = this.fetchFromStores(sha256, path).finally(() => this.fetching.delete(sha256));
      this.fetching.set(sha256, running);
    }
    return running;
  }

  private async fetchFromStores(sha256: string, path: string): Promise<string | null> {
    const record = this.options.map.byPath(blobLocalPath(sha256));
    if (!record || record.local_state === 'present' || !['committed', 'archived'].includes(record.state)) return null;
    const store = record.state === 'archived' ? this.options.cold : this.options.warm;
    if (!store) return null;
    const temp = join(this.options.dir, `.tmp-${sha256}-${randomBytes(4).toString('hex')}`);
    try {
      const hashing = hashingStream();
      let source;
      try {
        source = await store.get(record.object_key);
      } catch (error) {
        if (error instanceof ObjectNotFoundError) return null;
        throw error;
      }
      await pipeline(source, hashing.stream, createWriteStream(temp));
      if (hashing.digest() !== sha256) throw new Error(`blob ${sha256} fetched from ${store.description} does not hash to its name`);
      await rename(temp, path);
      this.remember(sha256, hashing.bytes());
      // Served from the path before it may be trimmed: the newest entry goes last.
      await this.trim(sha256);
      return path;
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  private remember(sha256: string, size: number): void {
    this.entries.set(sha256, size);
    this.bytes += size;
  }

  private touch(sha256: string): void {
    const size = this.entries.get(sha256)!;
    this.entries.delete(sha256);
    this.entries.set(sha256, size);
  }

  /** Drops least recently used files until within the budget (`keep` last of all). */
  private async trim(keep?: string): Promise<void> {
    for (const [sha, size] of this.entries) {
      if (this.bytes <= this.options.maxBytes) break;
      if (sha === keep) continue;
      this.entries.delete(sha);
      this.bytes -= size;
      await unlink(join(this.options.dir, sha)).catch(() => {});
    }
  }
}
