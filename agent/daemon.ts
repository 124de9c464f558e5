/**
 * The composition root: the only module that knows every part.
 *
 * Start order (downstream before upstream): state lock → landing schema → blob
 * recovery → landing log → sealer (hot-tier recovery, then seal/compact timers) →
 * on-site reads (query engine, latest cache, HTTP API) → sources. Stop runs the other
 * way: sources stop taking new messages and let their in-flight ones commit and ack,
 * the API closes, the landing log drains, the sealer seals what landed, the lock is
 * released.
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
import { compileFolderMapping, compileMqttRoutes } from './mapping/mapper.ts';
import { FolderSource } from './sources/folder-source.ts';
import { MqttSource } from './sources/mqtt-source.ts';
import { OnSiteReads } from './on-site-reads.ts';
import { acquireStateLock } from './state-lock.ts';

/** Test and benchmark instrumentation; production passes nothing. */
export interface DaemonHooks {
  mqttAckMode?: 'after_commit' | 'on_receipt';
  onMqttAck?: (packet: IPublishPacket) => void;
}

export class Daemon {
  readonly landing: LandingLog;
  readonly sealer: Sealer;
  readonly blobs: BlobStore;
  readonly sources: (MqttSource | FolderSource)[] = [];
  readonly reads: OnSiteReads;
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
    this.blobs = new BlobStore(join(config.state_dir, 'blobs'));
    this.landing = new LandingLog({
      dbPath: this.dbPath,
      datasets: config.datasets,
      maxRows: config.landing.group_commit_max_rows,
      maxDelayMs: config.landing.group_commit_max_delay_ms,
      retryInitialMs: config.landing.retry_initial_ms,
      dedupeRetentionHours: config.landing.dedupe_retention_hours,
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
    this.reads = new OnSiteReads({
      loaded,
      dbPath: this.dbPath,
      landing: this.landing,
      sealer: this.sealer,
      blobs: this.blobs,
      health: {
        health: () => ({ ok: !this.fatal, reasons: this.fatal ? [this.fatal] : [] }),
        ready: () => {
          const reasons: string[] = [];
          if (!this.ready) reasons.push('starting');
          if (this.landing.blocked) reasons.push('the landing log cannot commit (disk full or I/O error): sources are paused');
          if (this.fatal) reasons.push(this.fatal);
          return { ok: reasons.length === 0, reasons };
        },
      },
      logger,
    });
    this.landing.on('fatal', (error: Error) => (this.fatal = `landing writer crashed: ${error.message}`));
    this.landing.on('blocked', () => this.sources.forEach((s) => s.pause()));
    this.landing.on('unblocked', () => this.sources.forEach((s) => s.resume()));
  }

  async start(): Promise<void> {
    const { config } = this.loaded;
    await mkdir(config.state_dir, { recursive: true, mode: 0o750 });
    this.releaseLock = await acquireStateLock(config.state_dir);
    try {
      await this.recoverBlobs();
      for (const component of [this.landing, this.sealer, this.reads, ...this.sources]) {
        await component.start();
        this.started.push(component);
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.ready = true;
    this.logger.info(
      { plant: config.plant, agent_id: config.agent_id, state_dir: config.state_dir, api: this.reads.url, sources: this.sources.map((s) => s.name) },
      'lakeside ready',
    );
  }

  readonly stop = onceStop(async () => {
    for (const component of this.started.reverse()) {
      try {
        await component.stop();
      } catch (error) {
        this.logger.error({ component: component.name, err: (error as Error).message }, 'stop failed');
      }
    }
    await this.releaseLock?.();
    this.logger.info('lakeside stopped');
  });

  /** Creates the schema, then removes blob files no committed row references (a crash before their commit). */
  private async recoverBlobs(): Promise<void> {
    const db = new Database(this.dbPath);
    try {
      applyPragmas(db);
      ensureSchema(db, this.loaded.datasets);
      const known = db.prepare('SELECT 1 FROM blobs WHERE sha256 = ?').pluck();
      await this.blobs.start();
      const result = await this.blobs.recover((sha) => known.get(sha) !== undefined);
      if (result.orphansRemoved + result.tempRemoved > 0) this.logger.info(result, 'blob store recovered');
    } finally {
      db.close();
    }
  }
}
