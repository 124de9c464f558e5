/**
 * Observability as one component: the Prometheus metrics (metrics/metrics.ts) and
 * what feeds them (metrics/feed.ts), the feed-gap alerts (alerts/alert-manager.ts),
 * and the two API ports they serve: GET /metrics and GET /v1/status.
 *
 * Start after the landing log and the sealer (it subscribes to their events) and
 * before the sources (so the first commit is counted); stop before the landing log
 * (the alert check asks its writer for stream activity).
 */
import { cadenceFilePath } from './alerts/cadence-file.ts';
import { readFileSync } from 'node:fs';
import type { LoadedConfig } from '../config/loader.ts';
import type { HealthPort, MetricsPort, StatusPort } from './api/ports.ts';
import { AlertManager } from './alerts/alert-manager.ts';
import type { AlertNotifier } from './alerts/notifiers.ts';
import type { Sealer } from './hot/sealer.ts';
import type { LandingLog } from './landing/landing-log.ts';
import { onceStop, type Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { MetricsFeed, type SourceStatsView, type WatermarkState } from './metrics/feed.ts';
import { LakesideMetrics } from './metrics/metrics.ts';

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface ObservabilityOptions {
  loaded: LoadedConfig;
  dbPath: string;
  landing: LandingLog;
  sealer: Sealer;
  sources: readonly SourceStatsView[];
  health: HealthPort;
  logger: Logger;
  /** Tests: a clock, and notifiers instead of the configured ones. */
  now?: () => number;
  notifiers?: AlertNotifier[];
  watermark?: () => WatermarkState;
  /** Whether a catalog takes uploaded files (the commit lag metric); default none. */
  catalog?: () => boolean;
  /** The catalog committer's state for /v1/status (null: no catalog). */
  catalogStatus?: () => Record<string, unknown> | null;
  /** The central policy's state for /v1/status (null: no policy section). */
  policyStatus?: () => unknown;
}

export class Observability implements Component {
  readonly name = 'observability';
  readonly metrics = new LakesideMetrics();
  readonly feed: MetricsFeed;
  readonly alerts: AlertManager;
  private readonly options: ObservabilityOptions;
  private readonly startedAt = Date.now();

  constructor(options: ObservabilityOptions) {
    this.options = options;
    const { config, datasets } = options.loaded;
    this.alerts = new AlertManager({
      config,
      activity: () => options.landing.activity(),
      feedsPaused: () => options.landing.blocked,
      cadencePath: cadenceFilePath(config.state_dir),
      metrics: this.metrics,
      logger: options.logger.child({ component: 'alerts' }),
      ...(options.now ? { now: options.now } : {}),
      ...(options.notifiers ? { notifiers: options.notifiers } : {}),
    });
    this.feed = new MetricsFeed({
      metrics: this.metrics,
      landing: options.landing,
      sealer: options.sealer,
      sources: options.sources,
      datasets: datasets.map((d) => d.name),
      dbPath: options.dbPath,
      stateDir: config.state_dir,
      streams: () => this.alerts.detector.watched(),
      maxStreamSeries: config.metrics.max_stream_series,
      logger: options.logger,
      ...(options.now ? { now: options.now } : {}),
      ...(options.watermark ? { watermark: options.watermark } : {}),
      ...(options.catalog ? { catalog: options.catalog } : {}),
    });
  }

  async start(): Promise<void> {
    const { config } = this.options.loaded;
    this.metrics.buildInfo.set({ version: VERSION, agent_id: config.agent_id }, 1);
    await this.feed.start();
    await this.alerts.start();
  }

  readonly stop = onceStop(async () => {
    await this.alerts.stop();
    await this.feed.stop();
  });

  readonly metricsPort: MetricsPort = {
    metrics: async () => {
      await this.feed.refresh();
      return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
    },
  };

  readonly statusPort: StatusPort = {
    status: async () => {
      const { config } = this.options.loaded;
      const snapshot = await this.feed.refresh();
      const { landing, health } = this.options;
      return {
        plant: config.plant,
        agent_id: config.agent_id,
        version: VERSION,
        started_at: new Date(this.startedAt).toISOString(),
        uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
        health: health.health(),
        ready: health.ready(),
        landing: {
          blocked: landing.blocked,
          depth_rows: snapshot.landingDepth,
          commits: landing.stats.commits,
          rows_inserted: landing.stats.rowsInserted,
          duplicates: landing.stats.duplicates,
          quarantined: landing.stats.quarantined,
        },
        hot: snapshot.hotFiles,
        disk: {
          state_dir: config.state_dir,
          size_bytes: snapshot.disk?.sizeBytes ?? null,
          free_bytes: snapshot.disk?.freeBytes ?? null,
          watermark: snapshot.watermark,
        },
        sources: this.options.sources.map((s) => ({ name: s.name, ...s.stats })),
        streams: { watched: snapshot.streams.watched, stalest_seconds: snapshot.streams.stalestSeconds },
        alerts: this.alerts.openAlerts(),
        catalog: this.options.catalogStatus?.() ?? null,
        policy: this.options.policyStatus?.() ?? null,
      };
    },
  };
}
