/**
 * Tiering as one component (agent/lifecycle.ts): the tier map, the uploader (hot →
 * warm), the evictor (retention, disk budget, source pressure) and the archiver
 * (warm → cold, expiry), each on its own timer, on one SQLite connection to the
 * landing database (main thread; short transactions).
 *
 * Lifecycle: the constructor does no I/O; `start()` creates the tier-map table,
 * opens the stores, finishes evictions a crash interrupted and starts the timers;
 * `stop()` stops the timers, lets running uploads finish, closes the stores and the
 * connection.
 *
 * Live settings: every pass of the uploader, evictor and archiver reads one
 * `TieringSettings` (settings.ts) from a cell; `applyPolicy` builds the next one whole
 * (a policy that cannot apply throws and changes nothing), then swaps it and the
 * bandwidth buckets' rates in one synchronous step, so no pass sees a mix. A running
 * upload keeps the bucket objects it started with (their rates follow the change;
 * a cap removed applies to uploads started after).
 *
 * Start it after the sealer (hot-tier recovery ran) and the query engine
 * (evictions refresh its views), before the sources.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { TieringConfig } from '../config/tiering-schema.ts';
import { applyPragmas } from '../agent/landing/schema.ts';
import { onceStop, type Component } from '../agent/lifecycle.ts';
import { Archiver } from './archiver.ts';
import { NO_CATALOG, type CatalogHandoff } from './catalog-handoff.ts';
import { Evictor, measureDisk, type MeasureDisk } from './evictor.ts';
import type { KeyContext } from './layout.ts';
import { Periodic } from './periodic.ts';
import { BlobReadCache } from './read-cache.ts';
import { openStore } from './stores/open-store.ts';
import { ObjectStoreError, type ObjectStore } from './stores/object-store.ts';
import { ensureTierSchema, TierMap } from './tier-map.ts';
import { DataReadCache, WarmUnavailableError, type FetchProgress, type RangeReport, type TimeRange } from './data-cache.ts';
import { DATA_CACHE_DIR } from './data-cache-dir.ts';
import { buildSettings, SettingsCell, type TieringSettings } from './settings.ts';
import { TokenBucket } from './token-bucket.ts';
import type { EffectivePolicy } from '../config/policy-schema.ts';
import { Uploader, type TieringLogger } from './uploader.ts';

/** The key of the blobs' bucket among the datasets' (not a dataset name: those are identifiers). */
const BLOBS_KEY = '(blobs)';

export interface TieringOptions {
  config: TieringConfig;
  dbPath: string;
  stateDir: string;
  context: KeyContext;
  logger: TieringLogger;
  catalog?: CatalogHandoff;
  /** Refresh the query views (files about to be unlinked are no longer registered). */
  beforeUnlink?: (paths: string[]) => Promise<void>;
  /**
   * How long after its hour ends the merge has had its turn (the largest compaction
   * window in force + grace + two steps); a function when windows change live (policy).
   */
  hourSettleUs?: number | (() => number);
  /** Pause (true) or resume (false) the sources at the critical watermark. */
  onPressure?: (critical: boolean) => void;
  /** Stores opened (and closed) by another component (sync/catalog-sync.ts), read at start. */
  sharedStores?: () => { warm: ObjectStore | null; cold: ObjectStore | null };
  /** Tests: stores and disk measure in place of the configured ones, an injected clock. */
  warmStore?: ObjectStore;
  coldStore?: ObjectStore;
  measure?: MeasureDisk;
  nowMs?: () => number;
}

export class Tiering implements Component {
  readonly name = 'tiering';
  private readonly options: TieringOptions;
  private db: Database.Database | null = null;
  map: TierMap | null = null;
  uploader: Uploader | null = null;
  evictor: Evictor | null = null;
  archiver: Archiver | null = null;
  private warm: ObjectStore | null = null;
  private cold: ObjectStore | null = null;
  private ownsStores = true;
  private archiveLoop: Periodic | null = null;
  private blobCache: BlobReadCache | null = null;
  private dataCache: DataReadCache | null = null;
  private readonly settings: SettingsCell;
  /** The plant's cap (null: none) and the per-dataset shares of it. */
  private plantBucket: TokenBucket | null = null;
  private readonly datasetBuckets = new Map<string, TokenBucket>();

  constructor(options: TieringOptions) {
    this.options = options;
    this.settings = new SettingsCell(buildSettings(options.config, null));
    this.updateBuckets(this.settings.current);
  }

  /** The settings in force (the config file's, or a policy's over them). */
  get currentSettings(): TieringSettings {
    return this.settings.current;
  }

  /**
   * Applies a central policy (null: back to the config file's settings) live. Throws,
   * changing nothing, when the policy cannot apply; otherwise the next pass of every
   * loop runs on it. Returns the settings now in force.
   */
  applyPolicy(policy: EffectivePolicy | null): TieringSettings {
    const next = buildSettings(this.options.config, policy);
    this.settings.swap(next);
    this.updateBuckets(next);
    return next;
  }

  private updateBuckets(settings: TieringSettings): void {
    const cap = settings.config.bandwidth_bytes_per_second ?? null;
    if (cap === null) this.plantBucket = null;
    else if (this.plantBucket) this.plantBucket.setRate(cap);
    else this.plantBucket = new TokenBucket(cap);
    const shares = new Map<string, number>();
    const entries: [string, { bandwidthShare: number | null }][] = [...settings.datasets, ...(settings.blobs ? [[BLOBS_KEY, settings.blobs] as [string, { bandwidthShare: number | null }]] : [])];
    if (cap !== null) for (const [name, d] of entries) if (d.bandwidthShare !== null && d.bandwidthShare < 1) shares.set(name, Math.max(1, Math.floor(cap * d.bandwidthShare)));
    for (const name of [...this.datasetBuckets.keys()]) if (!shares.has(name)) this.datasetBuckets.delete(name);
    for (const [name, rate] of shares) {
      const bucket = this.datasetBuckets.get(name);
      if (bucket) bucket.setRate(rate);
      else this.datasetBuckets.set(name, new TokenBucket(rate));
    }
  }

  /** The buckets an upload of `dataset` (null: a blob) passes through: its share's, then the plant's cap. */
  private bucketsFor(dataset: string | null): TokenBucket[] {
    const own = this.datasetBuckets.get(dataset ?? BLOBS_KEY);
    return [own, this.plantBucket].filter((b): b is TokenBucket => b !== undefined && b !== null);
  }

  /** The rates (bytes/s) an upload of `dataset` (null: a blob) is held to now, its share's first. */
  uploadRates(dataset: string | null): number[] {
    return this.bucketsFor(dataset).map((b) => b.rateBytesPerSecond);
  }

  /** Hot-tier bytes per hour per dataset, over the last day of event time (the policy's disk-budget check). */
  hotBytesPerHour(nowMs = Date.now()): Record<string, number> {
    if (!this.db?.open) return {};
    const rows = this.db
      .prepare(`SELECT dataset, coalesce(sum(file_size_bytes), 0) AS bytes FROM hot_files WHERE max_ts_us >= ? GROUP BY dataset`)
      .all((nowMs - 86_400_000) * 1000) as { dataset: string; bytes: number }[];
    return Object.fromEntries(rows.map((r) => [r.dataset, r.bytes / 24]));
  }

  async start(): Promise<void> {
    const o = this.options;
    const db = new Database(o.dbPath);
    this.db = db;
    // Connection settings only: the daemon created the schema (and WAL mode) before, so a
    // restart on a full disk does not fail here on a write.
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = FULL');
    if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get()) {
      applyPragmas(db);
      ensureTierSchema(db);
    }
    const map = new TierMap(db);
    this.map = map;
    const catalog = o.catalog ?? NO_CATALOG;
    const clock = o.nowMs ? { nowMs: o.nowMs } : {};
    const settings = () => this.settings.current;
    const shared = o.sharedStores?.();
    this.ownsStores = !shared;
    this.warm = o.warmStore ?? (shared ? shared.warm : o.config.warm ? await openStore(o.config.warm) : null);
    this.cold = o.coldStore ?? (shared ? shared.cold : o.config.cold ? await openStore(o.config.cold) : null);
    if (this.warm) {
      const settle = o.hourSettleUs ?? 0;
      const hourSettleUs = o.config.wait_for_hour_merge ? (typeof settle === 'number' ? () => settle : settle) : null;
      this.uploader = new Uploader({ db, map, store: this.warm, catalog, config: o.config, stateDir: o.stateDir, context: o.context, logger: o.logger, settings, buckets: (d) => this.bucketsFor(d), hourSettleUs, ...clock });
    }
    if (this.warm && this.cold) {
      this.archiver = new Archiver({ map, warm: this.warm, cold: this.cold, catalog, config: o.config, stateDir: o.stateDir, logger: o.logger, settings, ...clock });
    }
    if (this.warm || this.cold) {
      this.blobCache = new BlobReadCache({ dir: join(o.stateDir, 'cache', 'blobs'), maxBytes: o.config.read_cache_max_bytes, map, warm: this.warm, cold: this.cold });
      await this.blobCache.start();
      this.dataCache = new DataReadCache({ dir: join(o.stateDir, DATA_CACHE_DIR), maxBytes: o.config.read_cache_max_bytes, map, warm: this.warm, cold: this.cold });
      await this.dataCache.start();
    }
    this.evictor = new Evictor({
      db,
      map,
      config: o.config,
      stateDir: o.stateDir,
      logger: o.logger,
      measure: o.measure ?? measureDisk(db, o.stateDir, o.config.disk_budget.max_bytes),
      beforeUnlink: o.beforeUnlink ?? (async () => {}),
      onPressure: o.onPressure ?? (() => {}),
      settings,
      ...clock,
    });
    this.uploader?.start();
    this.evictor.start();
    if (this.archiver) {
      const archiver = this.archiver;
      this.archiveLoop = new Periodic(() => archiver.pass(), o.config.archive_interval_ms, (error) =>
        o.logger.error({ code: 'ARCHIVE_FAILED', err: error.message }, 'archive pass failed'),
      );
      this.archiveLoop.start(Math.min(60_000, o.config.archive_interval_ms));
    }
    o.logger.info({ warm: this.warm?.description ?? null, cold: this.cold?.description ?? null, catalog: catalog.name }, 'tiering started');
  }

  /** Whether a catalog takes the uploaded files (without one, uploaded counts as committed). */
  get catalogConfigured(): boolean {
    return (this.options.catalog ?? NO_CATALOG) !== NO_CATALOG;
  }

  /** A local path for an evicted blob, fetched from warm or cold into the read cache; null if it is not an evicted blob. */
  async fetchBlob(sha256: string): Promise<string | null> {
    return this.blobCache ? this.blobCache.fetch(sha256) : null;
  }

  /**
   * Fetches the evicted data files of a time range (of one dataset, or all) from warm or
   * cold into the read cache, where the query views pick them up (data-cache.ts).
   */
  async fetchDataRange(range: TimeRange, options: { dataset?: string; onProgress?: (p: FetchProgress) => void } = {}): Promise<RangeReport> {
    if (!this.dataCache) throw new WarmUnavailableError('no warm or cold store is configured: there is nothing to fetch back');
    try {
      return await this.dataCache.fetchRange(range, options);
    } catch (error) {
      // A store failure or a corrupt object: the caller sees one code (and the reason).
      if (error instanceof ObjectStoreError) throw new WarmUnavailableError(error.message, { cause: error });
      throw error;
    }
  }

  readonly stop = onceStop(async () => {
    await this.uploader?.stop();
    await this.evictor?.stop();
    await this.archiveLoop?.stop();
    if (this.ownsStores) {
      await this.warm?.close();
      await this.cold?.close();
    }
    if (this.db?.open) this.db.close();
  });
}
