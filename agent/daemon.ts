/**
 * The composition root: the only module that knows every part.
 *
 * Start order (downstream before upstream): state lock → landing schema → blob
 * recovery → landing log → sealer (hot-tier recovery, then seal/compact timers) →
 * observability (metrics, feed-gap alerts) → on-site reads (their own worker: query
 * engine, latest cache, HTTP API; fed by the landing writer directly) → tiering
 * (uploads, eviction, disk budget, archive) → central policy (the last good one applied
 * before the first fetch, then polled; sync/policy/) and its status reports → sources → health loop, then READY=1 to
 * systemd. Health and readiness live here; every change is pushed to the reads worker,
 * which serves /healthz and /readyz (and asks this thread for /metrics, /v1/status and
 * evicted blobs). Stop sends STOPPING=1 and runs the other way: sources stop taking new
 * messages and let their in-flight ones commit and ack, tiering lets running uploads
 * finish, the API closes, the alert checks end, the landing log drains, the sealer
 * seals what landed, the lock is released.
 *
 * Sources pause while any reason holds: the landing log cannot commit (disk full, I/O
 * error), or the disk budget is at its critical watermark (tiering/evictor.ts).
 *
 * Liveness (/healthz and the systemd watchdog, agent/health-loop.ts): the landing
 * writer is running and answers within `stallMs` (half of WatchdogSec=, else 30 s).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { IPublishPacket } from 'mqtt';
import type { LoadedConfig } from '../config/loader.ts';
import { BlobStore } from './blobs/blob-store.ts';
import { Sealer } from './hot/sealer.ts';
import { LandingLog } from './landing/landing-log.ts';
import { applyPragmas, ensureSchema } from './landing/schema.ts';
import type { Component } from './lifecycle.ts';
import { onceStop } from './lifecycle.ts';
import type { Logger } from './log.ts';
import type { HealthStatus } from './api/ports.ts';
import { HealthLoop } from './health-loop.ts';
import { compileFolderMapping, compileMqttRoutes } from './mapping/mapper.ts';
import { compileKafkaRoutes } from './mapping/kafka-mapper.ts';
import { FolderSource } from './sources/folder-source.ts';
import { KafkaSource } from './sources/kafka-source.ts';
import { MqttSource } from './sources/mqtt-source.ts';
import { OnSiteReads } from './on-site-reads.ts';
import { Observability } from './observability.ts';
import { SdNotifier, type Notifier } from './sd-notify.ts';
import { acquireStateLock } from './state-lock.ts';
import { deprioritizeThisThread } from './thread-priority.ts';
import { ensureTierSchema } from '../tiering/tier-map.ts';
import { Tiering } from '../tiering/tiering.ts';
import { BLOBS_POLICY } from '../tiering/settings.ts';
import { CatalogSync } from '../sync/catalog-sync.ts';
import { validatorChecker } from '../sync/policy/check.ts';
import { PolicyAgent } from '../sync/policy/policy-agent.ts';
import { StatusReporter } from '../sync/policy/status-report.ts';

/** Without a systemd watchdog: how often liveness is checked, and how long a landing commit may hang. */
const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
const DEFAULT_STALL_MS = 30_000;

/** Test and benchmark instrumentation; production passes nothing. */
export interface DaemonHooks {
  mqttAckMode?: 'after_commit' | 'on_receipt';
  onMqttAck?: (packet: IPublishPacket) => void;
  /** systemd notifications; default: sd_notify through systemd-notify, a no-op outside systemd. */
  notifier?: Notifier;
}

export class Daemon {
  readonly landing: LandingLog;
  readonly sealer: Sealer;
  readonly blobs: BlobStore;
  readonly sources: (MqttSource | KafkaSource | FolderSource)[] = [];
  readonly reads: OnSiteReads;
  readonly observability: Observability;
  readonly notifier: Notifier;
  readonly healthLoop: HealthLoop;
  /** A landing request unanswered for longer than this makes the daemon not alive. */
  readonly stallMs: number;
  readonly tiering: Tiering;
  readonly catalogSync: CatalogSync;
  /** Central policies (null: no `policy` section) and the status reports to the centre. */
  readonly policy: PolicyAgent | null = null;
  readonly policyStatus: StatusReporter | null = null;
  /** Why the sources are paused; they resume when it is empty. */
  private readonly pauseReasons = new Set<'landing_blocked' | 'disk_critical'>();
  private readonly started: Component[] = [];
  private releaseLock: (() => Promise<void>) | null = null;
  private ready = false;
  private fatal: string | null = null;
  private readonly loaded: LoadedConfig;
  private readonly logger: Logger;
  readonly dbPath: string;

  constructor(loaded: LoadedConfig, logger: Logger, hooks: DaemonHooks = {}) {
    this.loaded = loaded;
    this.logger = logger;
    const { config } = loaded;
    this.dbPath = join(config.state_dir, 'landing.db');
    this.notifier = hooks.notifier ?? new SdNotifier({ logger });
    const watchdogMs = this.notifier.watchdogMs;
    this.stallMs = watchdogMs === null ? DEFAULT_STALL_MS : Math.max(1, Math.floor(watchdogMs / 2));
    this.healthLoop = new HealthLoop({
      liveness: () => this.liveness(),
      notifier: this.notifier,
      // sd_watchdog_enabled(3) asks for pings at half the timeout; a third leaves room for timer drift.
      intervalMs: watchdogMs === null ? DEFAULT_HEALTH_INTERVAL_MS : Math.max(1, Math.floor(watchdogMs / 3)),
      logger,
    });
    this.blobs = new BlobStore(join(config.state_dir, 'blobs'));
    this.landing = new LandingLog({
      dbPath: this.dbPath,
      datasets: config.datasets,
      maxRows: config.landing.group_commit_max_rows,
      maxDelayMs: config.landing.group_commit_max_delay_ms,
      retryInitialMs: config.landing.retry_initial_ms,
      dedupeRetentionHours: config.landing.dedupe_retention_hours,
      maxStreams: config.alerts.feed_gap.max_streams,
      logger,
    });
    this.sealer = new Sealer({
      dbPath: this.dbPath,
      stateDir: config.state_dir,
      datasets: config.datasets,
      hot: config.hot,
      // A query that bound a merge's inputs may read them until its timeout.
      retired_unlink_delay_ms: Math.max(60_000, config.query.timeout_ms),
      logger,
    });
    for (const source of config.sources.mqtt) {
      this.sources.push(
        new MqttSource({
          config: source,
          mapper: compileMqttRoutes(source, loaded.datasets),
          landing: this.landing,
          blobs: this.blobs,
          logger,
          ...(source.password !== undefined ? { password: source.password } : {}),
          ...(hooks.mqttAckMode ? { ackMode: hooks.mqttAckMode } : {}),
          ...(hooks.onMqttAck ? { onAck: hooks.onMqttAck } : {}),
        }),
      );
    }
    for (const source of config.sources.kafka) {
      this.sources.push(
        new KafkaSource({ config: source, mapper: compileKafkaRoutes(source, loaded.datasets), landing: this.landing, blobs: this.blobs, logger }),
      );
    }
    for (const source of config.sources.folders) {
      this.sources.push(
        new FolderSource({
          config: source,
          mapper: compileFolderMapping(source, loaded.datasets),
          landing: this.landing,
          blobs: this.blobs,
          logger,
        }),
      );
    }
    const health = {
      health: () => this.liveness(),
      ready: () => {
        const reasons: string[] = [];
        if (!this.ready) reasons.push('starting');
        if (this.landing.blocked) reasons.push('the landing log cannot commit (disk full or I/O error): sources are paused');
        if (this.pauseReasons.has('disk_critical')) reasons.push('the disk budget is at its critical watermark: sources are paused');
        reasons.push(...this.liveness().reasons);
        reasons.push(...this.observability.feed.problems());
        return { ok: reasons.length === 0, reasons };
      },
    };
    this.observability = new Observability({
      loaded,
      dbPath: this.dbPath,
      landing: this.landing,
      sealer: this.sealer,
      sources: this.sources,
      health,
      logger,
      // Read at scrape; the tiering component is created below.
      watermark: () => (this.landing.blocked ? 'critical' : (this.tiering.evictor?.watermark ?? 'ok')),
      catalog: () => this.tiering.catalogConfigured,
      catalogStatus: () => this.catalogSync.status(),
      policyStatus: () => this.policy?.status ?? null,
    });
    this.reads = new OnSiteReads({
      loaded,
      dbPath: this.dbPath,
      landing: this.landing,
      sealer: this.sealer,
      blobsDir: this.blobs.root,
      health,
      fetchEvictedBlob: (sha256) => this.tiering.fetchBlob(sha256),
      fetchWarmRange: ({ fromUs, toUs, dataset }) => this.tiering.fetchDataRange({ fromUs, toUs }, dataset !== undefined ? { dataset } : {}),
      metrics: this.observability.metricsPort,
      status: this.observability.statusPort,
      logger,
    });
    this.landing.on('fatal', (error: Error) => {
      this.fatal = `landing writer crashed: ${error.message}`;
      this.reads.healthChanged();
    });
    this.catalogSync = new CatalogSync({
      config,
      datasets: loaded.datasets,
      dbPath: this.dbPath,
      logger: logger.child({ component: 'catalog' }),
      onError: (kind) => this.observability.metrics.catalogErrors.inc({ kind }),
    });
    this.tiering = new Tiering({
      config: config.tiering,
      sharedStores: () => ({ warm: this.catalogSync.warm, cold: this.catalogSync.cold }),
      ...(CatalogSync.configured(config) ? { catalog: this.catalogSync.handoff } : {}),
      dbPath: this.dbPath,
      stateDir: config.state_dir,
      context: { plant: config.plant, agentId: loaded.config.agent_id },
      logger: logger.child({ component: 'tiering' }),
      beforeUnlink: () => this.reads.refreshViews(),
      // The largest window in force (a policy changes them per dataset, live).
      hourSettleUs: () => (this.sealer.maxCompactionWindowMinutes() * 60 + config.hot.compaction_grace_seconds) * 1_000_000 + 2 * config.hot.compaction_interval_ms * 1000,
      onPressure: (critical) => this.setPaused('disk_critical', critical),
    });
    if (config.policy) {
      const policyLogger = logger.child({ component: 'policy' });
      this.policy = new PolicyAgent({
        config: config.policy,
        plant: config.plant,
        stateDir: config.state_dir,
        datasets: [...loaded.datasets.map((d) => d.name), BLOBS_POLICY],
        base: { tiering: config.tiering, hot: config.hot },
        check: validatorChecker,
        apply: (effective) => this.tiering.applyPolicy(effective),
        hot: this.sealer,
        onApplied: (version) => this.observability.metrics.policyVersion.set(version),
        hotBytesPerHour: () => this.tiering.hotBytesPerHour(),
        logger: policyLogger,
      });
      if (config.policy.status) {
        this.policyStatus = new StatusReporter({
          config: config.policy.status,
          ...(config.policy.store ? { store: config.policy.store } : {}),
          plant: config.plant,
          agentId: loaded.config.agent_id,
          dbPath: this.dbPath,
          policy: () => this.policy?.status ?? null,
          snapshot: async () => {
            const status = await this.observability.statusPort.status();
            return { disk: status.disk as { size_bytes: number | null; free_bytes: number | null; watermark: string }, alerts: status.alerts as unknown[] };
          },
          logger: policyLogger,
        });
      }
    }
    this.landing.on('blocked', () => this.setPaused('landing_blocked', true));
    this.landing.on('unblocked', () => this.setPaused('landing_blocked', false));
  }

  /** Sources pause while any reason holds and resume when the last one clears. */
  private setPaused(reason: 'landing_blocked' | 'disk_critical', on: boolean): void {
    const before = this.pauseReasons.size > 0;
    if (on) this.pauseReasons.add(reason);
    else this.pauseReasons.delete(reason);
    const after = this.pauseReasons.size > 0;
    if (after && !before) this.sources.forEach((s) => s.pause());
    if (!after && before) this.sources.forEach((s) => s.resume());
    this.reads.healthChanged();
  }

  /** Whether the sources are paused, and why (tests, health). */
  get pausedFor(): string[] {
    return [...this.pauseReasons];
  }

  async start(): Promise<void> {
    const { config } = this.loaded;
    await mkdir(config.state_dir, { recursive: true, mode: 0o750 });
    this.releaseLock = await acquireStateLock(config.state_dir);
    try {
      await this.recoverBlobs();
      for (const component of [this.landing, this.sealer, this.observability, this.reads, this.catalogSync, this.tiering, ...(this.policy ? [this.policy] : []), ...(this.policyStatus ? [this.policyStatus] : []), ...this.sources]) {
        await component.start();
        this.started.push(component);
      }
      await this.keepOrphanHolds();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.ready = true;
    // After the reads worker started (threads inherit their creator's nice value): the
    // ingest loop yields to reads on a saturated CPU (thread-priority.ts).
    deprioritizeThisThread();
    this.reads.healthChanged();
    this.notifier.ready(`ingesting from ${this.sources.length} source(s); API ${this.reads.url ?? 'off'}`);
    await this.healthLoop.start(); // after READY=1: the first watchdog ping follows it
    this.started.push(this.healthLoop);
    this.logger.info(
      { plant: config.plant, agent_id: config.agent_id, state_dir: config.state_dir, api: this.reads.url, sources: this.sources.map((s) => s.name) },
      'lakeside ready',
    );
  }

  /**
   * Held batches (landing/source-holds.ts) of a Kafka source no longer configured can
   * never be settled against its group: they are kept (at least once), so that they do
   * not stop the seal of their datasets for good.
   */
  private async keepOrphanHolds(): Promise<void> {
    const kafka = new Set(this.loaded.config.sources.kafka.map((source) => source.name));
    const orphans = (await this.landing.heldBatches()).filter((held) => !kafka.has(held.source));
    if (orphans.length === 0) return;
    await this.landing.settleHolds(orphans.map((held) => held.hold), []);
    this.logger.warn(
      { sources: [...new Set(orphans.map((held) => held.source))], batches: orphans.length },
      'held batches of a Kafka source that is no longer configured: kept, unchecked (they may also be landed by another agent)',
    );
  }

  /** Alive: what /healthz answers and what the health loop pings the watchdog on. */
  liveness(now = Date.now()): HealthStatus {
    const reasons: string[] = [];
    if (this.fatal) reasons.push(this.fatal);
    const stalled = this.landing.stalledMs(now);
    if (stalled > this.stallMs) reasons.push(`the landing writer has not answered for ${Math.round(stalled / 1000)} s (a hung disk?)`);
    return { ok: reasons.length === 0, reasons };
  }

  readonly stop = onceStop(async () => {
    this.notifier.stopping('draining sources, landing log and seals');
    for (const component of this.started.reverse()) {
      try {
        await component.stop();
      } catch (error) {
        this.logger.error({ component: component.name, err: (error as Error).message }, 'stop failed');
      }
    }
    await this.releaseLock?.();
    await this.notifier.flush();
    this.logger.info('lakeside stopped');
  });

  /** Creates the schema, then removes blob files no committed row references (a crash before their commit). */
  private async recoverBlobs(): Promise<void> {
    const db = new Database(this.dbPath);
    try {
      applyPragmas(db);
      ensureSchema(db, this.loaded.datasets);
      ensureTierSchema(db);
      const known = db.prepare('SELECT 1 FROM blobs WHERE sha256 = ?').pluck();
      await this.blobs.start();
      const result = await this.blobs.recover((sha) => known.get(sha) !== undefined);
      if (result.orphansRemoved + result.tempRemoved > 0) this.logger.info(result, 'blob store recovered');
    } finally {
      db.close();
    }
  }
}
