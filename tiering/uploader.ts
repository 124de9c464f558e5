/**
 * Upload hot → warm: L1 files and blobs, registered in the tier map, go to the warm
 * store at their deterministic keys (layout.ts), then are handed to the catalog.
 *
 * Invariants:
 * - Order: highest dataset priority first (blobs have their own policy), oldest
 *   event time first within a priority. Every time a slot frees, the next file is
 *   chosen afresh, so a high-priority file that arrives during a backlog goes next.
 * - A file is marked `uploaded` only after the store confirmed the whole object with
 *   its sha256 (stores/object-store.ts). A crash in between leaves it `local`; the
 *   retry finds the object already there, verifies it and moves on: no second object.
 * - A failure is counted in the file's row with the time of the next attempt
 *   (jittered exponential backoff, agent/retry.ts); after `max_attempts`, or at once
 *   when a retry cannot help (a key conflict, a local file that changed), the file is
 *   set aside with its reason and an error is logged; the queue goes on without it.
 * - Upload windows: a dataset whose window is closed is not started (one in flight
 *   finishes). The bandwidth cap (token-bucket.ts) is shared by all uploads.
 * - `uploaded` files are offered to the catalog hand-off in batches; the ids it
 *   answers become `committed`. Nothing here ever deletes a local file.
 * - `stop()` cuts running uploads short (their file streams are destroyed): they stay
 *   `local`, with no attempt counted, and start over after a restart.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { TieringConfig } from '../config/tiering-schema.ts';
import { failpoint } from '../agent/failpoint.ts';
import { backoffDelay } from '../agent/retry.ts';
import type { CatalogHandoff } from './catalog-handoff.ts';
import { discoverNewFiles, type KeyContext } from './layout.ts';
import { Periodic } from './periodic.ts';
import type { ObjectStore } from './stores/object-store.ts';
import type { TierMap, TierRecord } from './tier-map.ts';
import type { TokenBucket } from './token-bucket.ts';
import { buildSettings, type TieringSettings } from './settings.ts';

export interface TieringLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface UploaderOptions {
  db: Database.Database;
  map: TierMap;
  store: ObjectStore;
  catalog: CatalogHandoff;
  config: TieringConfig;
  stateDir: string;
  context: KeyContext;
  logger: TieringLogger;
  bucket?: TokenBucket | null;
  /** The settings in force, read once per upload start (a policy swaps them live); default: built from `config`. */
  settings?: () => TieringSettings;
  /** The buckets an upload of a dataset (null: a blob) passes through, read at its start; default: `bucket`. */
  buckets?: (dataset: string | null) => TokenBucket[];
  /** tiering.wait_for_hour_merge: how long after its hour ends an L1 file may be uploaded (null: at once), read at each discovery. */
  hourSettleUs?: (() => number) | null;
  /** Wall clock in ms (windows, backoff, ages); injectable for tests. */
  nowMs?: () => number;
}

export interface UploadStats {
  uploaded: number;
  uploadedBytes: number;
  /** Puts that found the object already there (a retry after a crash). */
  alreadyThere: number;
  failures: number;
  setAside: number;
  committed: number;
}

const COMMIT_BATCH = 500;
const COMMIT_EVERY_MS = 1000;
/** Bounds the exclusion list of a pass; past it the pass ends and the next one starts afresh. */
const MAX_FAILED_PER_PASS = 500;

export class Uploader {
  readonly stats: UploadStats = { uploaded: 0, uploadedBytes: 0, alreadyThere: 0, failures: 0, setAside: 0, committed: 0 };
  private readonly options: UploaderOptions;
  private readonly settings: () => TieringSettings;
  private readonly nowMs: () => number;
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly loop: Periodic;
  private stopping = false;
  private uploadedSinceCommit = 0;
  private readonly failedThisPass = new Set<number>();
  /** File streams of running uploads. */
  private readonly sources = new Set<Readable>();
  private lastCommitMs = 0;
  /** Bytes handed to the store per second, recent (for the drain estimate). */
  private rateWindow: { atMs: number; bytes: number }[] = [];

  constructor(options: UploaderOptions) {
    this.options = options;
    if (options.settings) this.settings = options.settings;
    else {
      const fixed = buildSettings(options.config, null);
      this.settings = () => fixed;
    }
    this.nowMs = options.nowMs ?? Date.now;
    this.loop = new Periodic(() => this.pass(), options.config.scan_interval_ms, (error) =>
      options.logger.error({ code: 'UPLOAD_PASS_FAILED', err: error.message }, 'upload pass failed'),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Stops starting uploads and cuts running ones short (they stay `local` and go again after a restart). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const source of this.sources) source.destroy(new Error('tiering is stopping'));
    await this.loop.stop();
  }

  /**
   * Discovers new files, uploads every due file the windows allow, commits. A file that
   * fails is not tried again in the same pass (its retry waits for a later one), so a
   * pass ends even while the network is down.
   */
  async pass(): Promise<void> {
    const { options } = this;
    let lastScan = -Infinity;
    this.failedThisPass.clear();
    for (;;) {
      if (this.stopping || this.failedThisPass.size >= MAX_FAILED_PER_PASS) break;
      if (this.nowMs() - lastScan >= options.config.scan_interval_ms) {
        await discoverNewFiles(options.db, options.map, options.stateDir, options.context, this.nowMs() * 1000, 500, options.hourSettleUs ? options.hourSettleUs() : null);
        lastScan = this.nowMs();
      }
      this.fillSlots();
      if (this.inFlight.size === 0) break;
      await Promise.race(this.inFlight.values());
      // Commit in batches, but at least every second: eviction waits on commits.
      if (this.uploadedSinceCommit >= COMMIT_BATCH || (this.uploadedSinceCommit > 0 && this.nowMs() - this.lastCommitMs >= COMMIT_EVERY_MS)) await this.commitUploaded();
    }
    await Promise.all(this.inFlight.values());
    await this.commitUploaded();
  }

  private fillSlots(): void {
    const settings = this.settings();
    const free = settings.config.upload_concurrency - this.inFlight.size;
    if (free <= 0 || this.stopping) return;
    const now = this.nowMs();
    const next = this.options.map.nextToUpload({
      nowUs: now * 1000,
      limit: free,
      priorityCase: settings.priorityCase,
      closed: settings.windows.closedAt(new Date(now)),
      exclude: [...this.inFlight.keys(), ...this.failedThisPass],
    });
    for (const record of next) {
      const task = this.uploadOne(record).finally(() => this.inFlight.delete(record.id));
      this.inFlight.set(record.id, task);
    }
  }

  private async uploadOne(record: TierRecord): Promise<void> {
    const { options } = this;
    const buckets = options.buckets ? options.buckets(record.kind === 'data' ? record.dataset : null) : options.bucket ? [options.bucket] : [];
    try {
      const result = await options.store.put(record.object_key, {
        path: join(options.stateDir, record.local_path),
        sizeBytes: record.size_bytes,
        sha256: record.sha256,
        contentType: record.kind === 'data' ? 'application/vnd.apache.parquet' : 'application/octet-stream',
        throttle: (source) => {
          // Kept so stop() can cut the upload short instead of waiting for a slow, capped one.
          this.sources.add(source);
          source.once('close', () => this.sources.delete(source));
          return buckets.reduce<Readable>((stream, bucket) => bucket.throttle(stream), source);
        },
      });
      failpoint('tiering.after-put', [{ path: record.local_path }]); // crash tests: object stored, not yet marked
      options.map.markUploaded(record.id, this.nowMs() * 1000);
      this.stats.uploaded++;
      this.uploadedSinceCommit++;
      if (result.created) this.stats.uploadedBytes += record.size_bytes;
      else this.stats.alreadyThere++;
      this.noteBytes(record.size_bytes);
    } catch (error) {
      // Cut short by stop(): not the file's fault, no attempt counted; the next start retries it.
      if (!this.stopping) this.recordFailure(record, error);
    }
  }

  private recordFailure(record: TierRecord, error: unknown): void {
    const { logger, map } = this.options;
    const { config } = this.settings();
    this.failedThisPass.add(record.id);
    const e = error as { message?: string; retriable?: boolean; code?: string };
    const attempts = record.attempts + 1;
    const hopeless = e.retriable === false;
    const setAside = hopeless || attempts >= config.max_attempts;
    const delayMs = backoffDelay(attempts - 1, { initialMs: config.retry_initial_ms, maxMs: config.retry_max_ms });
    const reason = `${e.code ? `${e.code}: ` : ''}${e.message ?? String(error)}`;
    const now = this.nowMs();
    map.recordFailure(record.id, reason, (now + delayMs) * 1000, setAside, now * 1000);
    this.stats.failures++;
    const fields = { dataset: record.dataset ?? '(blobs)', file: record.local_path, key: record.object_key, attempts, err: reason };
    if (setAside) {
      this.stats.setAside++;
      logger.error({ code: 'UPLOAD_SET_ASIDE', ...fields }, hopeless ? 'upload cannot succeed: file set aside' : 'upload failed too often: file set aside');
    } else {
      logger.warn({ code: 'UPLOAD_FAILED', retry_in_ms: delayMs, ...fields }, 'upload failed; will retry');
    }
  }

  /** Offers uploaded files to the catalog; marks the ones it committed. */
  async commitUploaded(): Promise<number> {
    const { catalog, map, logger } = this.options;
    let total = 0;
    this.uploadedSinceCommit = 0;
    this.lastCommitMs = this.nowMs();
    for (;;) {
      const batch = map.uploadedNotCommitted(COMMIT_BATCH);
      if (batch.length === 0) break;
      let ids: number[];
      try {
        ids = await catalog.commit(batch);
      } catch (error) {
        logger.warn({ code: 'CATALOG_HANDOFF_FAILED', catalog: catalog.name, files: batch.length, err: (error as Error).message }, 'catalog hand-off failed; files stay uploaded and are offered again');
        break;
      }
      const moved = map.markCommitted(ids, this.nowMs() * 1000);
      total += moved;
      if (ids.length < batch.length) break; // the rest waits in the catalog's outbox
    }
    this.stats.committed += total;
    return total;
  }

  private noteBytes(bytes: number): void {
    const now = this.nowMs();
    this.rateWindow.push({ atMs: now, bytes });
    this.rateWindow = this.rateWindow.filter((s) => now - s.atMs <= 60_000);
  }

  /** Bytes per second over the last minute of uploads (0 when idle). */
  recentRateBytesPerSecond(): number {
    const now = this.nowMs();
    const recent = this.rateWindow.filter((s) => now - s.atMs <= 60_000);
    if (recent.length === 0) return 0;
    const span = Math.max(1000, now - recent[0]!.atMs);
    return (recent.reduce((n, s) => n + s.bytes, 0) * 1000) / span;
  }

}
