/**
 * Feeds the metrics (metrics.ts) from what the agent already does, never from the
 * ingest path itself:
 * - landing 'committed': a few counter adds per batch from the tally the writer
 *   thread summed (ingest-tally.ts), one histogram observation;
 * - landing 'blocked'/'unblocked', sealer 'step-done': gauges and histograms;
 * - at scrape (`refresh()`): landing depth and hot-tier files from landing.db on a
 *   read-only connection (O(datasets) and O(hot files) in SQLite, not O(rows): the
 *   depth is the dataset's last id minus its seal watermark), disk use by statfs,
 *   source counters from their stats, stream freshness from the alert manager's
 *   watched streams;
 * - at scrape, from the tier map (`tier_files`, same connection; one GROUP BY over the
 *   rows not expired or dropped, through the state index): the upload backlog (local
 *   files still present; set-aside ones included, they are not off-site either) and
 *   its oldest age (since registration), files and bytes in warm (uploaded or
 *   committed) and cold (archived), and the catalog commit lag (oldest uploaded file
 *   not yet committed; 0 with no catalog, where uploaded counts as committed). Blobs
 *   have no dataset: their series carry `dataset=""`, like the other "no dataset"
 *   series. The disk watermark state comes from `watermark` (the daemon: landing
 *   blocked or the evictor's last pass).
 *
 * Stream series are capped: the first `maxStreamSeries` streams seen get their own
 * `lakeside_stream_freshness_seconds` series, for good (no churn); every stream counts
 * in the per-dataset `lakeside_stream_freshness_max_seconds` and
 * `lakeside_stream_watched_streams`; `lakeside_stream_series_omitted_streams` says how
 * many have no series of their own.
 */
import { statfs } from 'node:fs/promises';
import Database from 'better-sqlite3';
import type { StreamState } from '../alerts/feed-gap.ts';
import type { Sealer, StepDone } from '../hot/sealer.ts';
import type { IngestTally } from '../landing/ingest-tally.ts';
import type { LandingLog } from '../landing/landing-log.ts';
import { HOT_LEVEL, landedTable } from '../landing/schema.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { TIERS, WATERMARK_STATES, type LakesideMetrics } from './metrics.ts';

export type WatermarkState = (typeof WATERMARK_STATES)[number];

/** What a source exposes for metrics: the component name and its stats object. */
export interface SourceStatsView {
  readonly name: string;
  readonly stats: object;
}

export interface MetricsFeedOptions {
  metrics: LakesideMetrics;
  landing: LandingLog;
  sealer: Sealer;
  sources: readonly SourceStatsView[];
  datasets: readonly string[];
  dbPath: string;
  stateDir: string;
  /** The watched streams (AlertManager.detector.watched), first seen first. */
  streams: () => Iterable<StreamState>;
  maxStreamSeries: number;
  /** Current disk state; default: critical while the landing log is blocked, else ok (the daemon adds the evictor's high/critical). */
  watermark?: () => WatermarkState;
  /** Whether a catalog takes the uploaded files (default none: uploaded counts as committed, the commit lag is 0). */
  catalog?: () => boolean;
  logger: Logger;
  now?: () => number;
}

/** The numbers of the last refresh, for GET /v1/status. */
export interface MetricsSnapshot {
  landingDepth: Record<string, number>;
  hotFiles: Record<string, { files: number; bytes: number }>;
  disk: { sizeBytes: number; freeBytes: number } | null;
  watermark: WatermarkState;
  streams: { watched: number; stalestSeconds: number | null };
}

/** Failed seal steps in a row before /readyz says so (one failure is retried a second later). */
const SEAL_FAILURES_NOT_READY = 3;

const HOT_TIER_OF: Record<number, (typeof TIERS)[number]> = { [HOT_LEVEL.L0]: 'hot_l0', [HOT_LEVEL.L1]: 'hot_l1', [HOT_LEVEL.ROLLUP]: 'hot_rollup' };

export class MetricsFeed implements Component {
  readonly name = 'metrics';
  private readonly options: MetricsFeedOptions;
  private readonly now: () => number;
  private db: Database.Database | null = null;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly receivedSeen = new Map<string, number>();
  /** Seal steps in a row that failed (whole step or any dataset), for readiness. */
  private sealFailuresInARow = 0;
  /** `dataset` labels the tier-map series were ever set for (reset to 0 when their files go). */
  private readonly tierLabels = new Set<string>(['']);

  constructor(options: MetricsFeedOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    const { landing, sealer, metrics } = this.options;
    const onCommitted = (_items: number, tally: IngestTally, commitMs: number): void => this.onCommitted(tally, commitMs);
    const onBlocked = (): void => metrics.landingBlocked.set(1);
    const onUnblocked = (): void => metrics.landingBlocked.set(0);
    landing.on('committed', onCommitted);
    landing.on('blocked', onBlocked);
    landing.on('unblocked', onUnblocked);
    this.unsubscribe.push(
      () => landing.off('committed', onCommitted),
      () => landing.off('blocked', onBlocked),
      () => landing.off('unblocked', onUnblocked),
      sealer.on('step-done', (step) => this.onStep(step)),
    );
    metrics.landingBlocked.set(landing.blocked ? 1 : 0);
  }

  readonly stop = onceStop(async () => {
    for (const off of this.unsubscribe.splice(0)) off();
    this.db?.close();
    this.db = null;
  });

  /** Brings the scrape-time metrics up to date; returns what it read. */
  async refresh(): Promise<MetricsSnapshot> {
    const { metrics } = this.options;
    const snapshot: MetricsSnapshot = {
      landingDepth: {},
      hotFiles: {},
      disk: null,
      watermark: this.options.watermark?.() ?? (this.options.landing.blocked ? 'critical' : 'ok'),
      streams: { watched: 0, stalestSeconds: null },
    };
    try {
      this.readLandingDb(snapshot);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'metrics: landing.db not readable');
    }
    try {
      const fs = await statfs(this.options.stateDir);
      snapshot.disk = { sizeBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize };
      metrics.diskSize.set(snapshot.disk.sizeBytes);
      metrics.diskFree.set(snapshot.disk.freeBytes);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'metrics: statfs of the state directory failed');
    }
    for (const state of WATERMARK_STATES) metrics.diskWatermark.set({ state }, state === snapshot.watermark ? 1 : 0);
    this.readSources();
    snapshot.streams = this.readStreams();
    return snapshot;
  }

  /** Readiness reasons this feed can see (the daemon adds them to /readyz). */
  problems(): string[] {
    const n = this.sealFailuresInARow;
    return n >= SEAL_FAILURES_NOT_READY ? [`the hot tier cannot seal: the last ${n} seal steps failed (SEAL_FAILED in the log); on-site reads miss the newest rows`] : [];
  }

  private onCommitted(tally: IngestTally, commitMs: number): void {
    const { metrics } = this.options;
    metrics.landingCommits.inc();
    metrics.landingCommitDuration.observe(commitMs / 1000);
    for (const [source, dataset, rows, duplicates] of tally.rows) {
      if (rows > 0) metrics.ingestRows.inc({ dataset, source }, rows);
      if (duplicates > 0) metrics.ingestDuplicates.inc({ dataset, source }, duplicates);
    }
    for (const [dataset, reason, count] of tally.quarantined) metrics.quarantined.inc({ dataset, reason }, count);
  }

  private onStep(step: StepDone): void {
    const { metrics } = this.options;
    const seal = step.op === 'seal';
    (seal ? metrics.sealDuration : metrics.compactionDuration).observe(step.ms / 1000);
    for (const { dataset, rows } of step.rows) (seal ? metrics.sealRows : metrics.compactionRows).inc({ dataset }, rows);
    if (seal) this.sealFailuresInARow = step.ok && step.failed.length === 0 ? 0 : this.sealFailuresInARow + 1;
    const failures = seal ? metrics.sealFailures : metrics.compactionFailures;
    if (!step.ok) failures.inc({ dataset: '' });
    for (const dataset of step.failed) failures.inc({ dataset });
  }

  private readLandingDb(snapshot: MetricsSnapshot): void {
    const { metrics, datasets, dbPath } = this.options;
    this.db ??= new Database(dbPath, { readonly: true, fileMustExist: true });
    const db = this.db;
    const sequences = new Map(db.prepare('SELECT name, seq FROM sqlite_sequence').all().map((r) => [(r as { name: string }).name, (r as { seq: number }).seq]));
    const sealed = new Map(db.prepare('SELECT dataset, id FROM sealed_through').all().map((r) => [(r as { dataset: string }).dataset, (r as { id: number }).id]));
    for (const dataset of datasets) {
      // AUTOINCREMENT ids are dense (a rolled-back insert gives its id back) and only
      // sealed rows are ever deleted, so last id − watermark counts the landed rows.
      const depth = Math.max(0, (sequences.get(landedTable(dataset)) ?? 0) - (sealed.get(dataset) ?? 0));
      snapshot.landingDepth[dataset] = depth;
      metrics.landingDepth.set({ dataset }, depth);
      for (const tier of Object.values(HOT_TIER_OF)) {
        metrics.tierFiles.set({ dataset, tier }, 0);
        metrics.tierBytes.set({ dataset, tier }, 0);
      }
    }
    const rows = db.prepare('SELECT dataset, level, count(*) AS files, coalesce(sum(file_size_bytes), 0) AS bytes FROM hot_files GROUP BY dataset, level').all() as {
      dataset: string;
      level: number;
      files: number;
      bytes: number;
    }[];
    for (const row of rows) {
      const tier = HOT_TIER_OF[row.level];
      if (!tier) continue;
      metrics.tierFiles.set({ dataset: row.dataset, tier }, row.files);
      metrics.tierBytes.set({ dataset: row.dataset, tier }, row.bytes);
      const total = (snapshot.hotFiles[row.dataset] ??= { files: 0, bytes: 0 });
      total.files += row.files;
      total.bytes += row.bytes;
    }
    this.readTierMap(db);
  }

  /** Upload backlog, warm and cold tiers, commit lag (see the header); nothing before tiering created its table. */
  private readTierMap(db: Database.Database): void {
    const { metrics, datasets } = this.options;
    for (const dataset of datasets) this.tierLabels.add(dataset);
    const fresh = () => ({ backlogFiles: 0, backlogBytes: 0, oldestRegisteredUs: null as number | null, oldestUploadedUs: null as number | null, warm: { files: 0, bytes: 0 }, cold: { files: 0, bytes: 0 } });
    const seen = new Map(Array.from(this.tierLabels, (dataset) => [dataset, fresh()]));
    const rows = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tier_files'`).get()
      ? (db
          .prepare(
            `SELECT coalesce(dataset, '') AS dataset, state, state = 'local' AND local_state = 'present' AS waiting, count(*) AS files,
               coalesce(sum(size_bytes), 0) AS bytes, min(registered_us) AS registered, min(uploaded_us) AS uploaded
             FROM tier_files WHERE state IN ('local', 'uploaded', 'committed', 'archived') GROUP BY 1, 2, 3`,
          )
          .all() as { dataset: string; state: string; waiting: number; files: number; bytes: number; registered: number; uploaded: number | null }[])
      : [];
    const oldest = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b));
    for (const row of rows) {
      this.tierLabels.add(row.dataset);
      let d = seen.get(row.dataset);
      if (!d) seen.set(row.dataset, (d = fresh()));
      if (row.waiting) {
        d.backlogFiles += row.files;
        d.backlogBytes += row.bytes;
        d.oldestRegisteredUs = oldest(d.oldestRegisteredUs, row.registered);
      }
      if (row.state === 'uploaded') d.oldestUploadedUs = oldest(d.oldestUploadedUs, row.uploaded);
      const tier = row.state === 'uploaded' || row.state === 'committed' ? d.warm : row.state === 'archived' ? d.cold : null;
      if (tier) {
        tier.files += row.files;
        tier.bytes += row.bytes;
      }
    }
    const nowUs = this.now() * 1000;
    const ageSeconds = (us: number | null): number => (us === null ? 0 : Math.max(0, (nowUs - us) / 1e6));
    const catalog = this.options.catalog?.() ?? false;
    for (const [dataset, d] of seen) {
      metrics.uploadBacklogFiles.set({ dataset }, d.backlogFiles);
      metrics.uploadBacklogBytes.set({ dataset }, d.backlogBytes);
      metrics.uploadBacklogAge.set({ dataset }, ageSeconds(d.oldestRegisteredUs));
      metrics.commitLag.set({ dataset }, catalog ? ageSeconds(d.oldestUploadedUs) : 0);
      for (const [tier, count] of [['warm', d.warm], ['cold', d.cold]] as const) {
        metrics.tierFiles.set({ dataset, tier }, count.files);
        metrics.tierBytes.set({ dataset, tier }, count.bytes);
      }
    }
  }

  private readSources(): void {
    const { metrics, sources } = this.options;
    for (const source of sources) {
      const stats = source.stats as Record<string, unknown>;
      if (typeof stats.connected === 'number') metrics.sourceConnections.set({ source: source.name }, stats.connected);
      // MQTT counts messages received, folders files ingested or refused.
      const received = typeof stats.received === 'number' ? stats.received : Number(stats.ingested ?? 0) + Number(stats.refused ?? 0);
      const delta = received - (this.receivedSeen.get(source.name) ?? 0);
      if (delta > 0) metrics.sourceReceived.inc({ source: source.name }, delta);
      else if (!this.receivedSeen.has(source.name)) metrics.sourceReceived.inc({ source: source.name }, 0);
      this.receivedSeen.set(source.name, received);
    }
  }

  private readStreams(): MetricsSnapshot['streams'] {
    const { metrics, maxStreamSeries, datasets } = this.options;
    const now = this.now();
    const watched = new Map<string, number>(datasets.map((d) => [d, 0]));
    const stalest = new Map<string, number>();
    let exported = 0;
    let total = 0;
    let stalestAll: number | null = null;
    for (const stream of this.options.streams()) {
      const age = Math.max(0, (now - stream.lastArrivalMs) / 1000);
      total++;
      watched.set(stream.dataset, (watched.get(stream.dataset) ?? 0) + 1);
      stalest.set(stream.dataset, Math.max(stalest.get(stream.dataset) ?? 0, age));
      stalestAll = Math.max(stalestAll ?? 0, age);
      if (exported < maxStreamSeries) {
        metrics.streamFreshness.set({ dataset: stream.dataset, stream: stream.id }, age);
        exported++;
      }
    }
    for (const [dataset, count] of watched) {
      metrics.streamsWatched.set({ dataset }, count);
      if (stalest.has(dataset)) metrics.streamFreshnessMax.set({ dataset }, stalest.get(dataset)!);
    }
    metrics.streamsOmitted.set(total - exported);
    return { watched: total, stalestSeconds: stalestAll };
  }
}
