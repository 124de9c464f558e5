/**
 * The alerts component: every `check_interval_ms` it drains the streams that got rows
 * from the landing writer (LandingLog.activity, counted off the main thread), feeds
 * them to the feed-gap detector, and raises or clears alerts.
 *
 * An alert goes to the log (warn, code FEED_GAP; FEED_GAP_CLEARED when it clears), to
 * the metrics (`lakeside_alerts_active`, `lakeside_feed_gap_alerts_total`), to
 * `lakeside status` (openAlerts, through GET /v1/status), and to the optional MQTT
 * topic and webhook (notifiers.ts, in the background).
 *
 * Lifecycle: the constructor does no I/O; start() takes the cadences saved by the last
 * run (cadence-file.ts), starts the notifiers and the check timer; stop() ends the
 * timer, waits for a running check, saves the cadences, stops the notifiers. Cadences
 * are also saved every SAVE_INTERVAL_MS, so a crash loses at most that much learning.
 * Open alerts live in memory: a restored stream that stays silent opens its alert
 * again k × cadence after the start. No gap alert opens while the agent itself has
 * paused the sources (landing log blocked), nor for floor_seconds after.
 */
import type { LakesideConfig } from '../../config/schema.ts';
import type { ActivityReport } from '../landing/ingest-tally.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import { ErrorCode, type Logger } from '../log.ts';
import type { LakesideMetrics } from '../metrics/metrics.ts';
import { readCadences, writeCadences } from './cadence-file.ts';
import { FeedGapDetector, type FeedGapAlert } from './feed-gap.ts';
import { createNotifiers, type AlertNotifier } from './notifiers.ts';

export interface AlertManagerOptions {
  config: Pick<LakesideConfig, 'alerts' | 'plant'> & { agent_id: string };
  /** Streams with rows since the last call (LandingLog.activity). */
  activity: () => Promise<ActivityReport>;
  metrics: LakesideMetrics;
  logger: Logger;
  now?: () => number;
  /** Default: from `alerts.mqtt` and `alerts.webhook`. */
  notifiers?: AlertNotifier[];
  /**
   * True while the agent itself stops the feeds (the landing log is blocked and sources
   * are paused): no gap alert opens then, nor for floor_seconds after, since the
   * silence is ours and has its own alert (LANDING_DISK_FULL).
   */
  feedsPaused?: () => boolean;
  /** Where learned cadences are kept across restarts (cadence-file.ts); none: not kept. */
  cadencePath?: string;
}

/** How often the learned cadences are written while running (and once at stop). */
const SAVE_INTERVAL_MS = 5 * 60_000;

/** An open alert as the API and `lakeside status` show it. */
export interface AlertView {
  id: string;
  kind: string;
  code: string;
  message: string;
  dataset: string;
  stream: Record<string, string>;
  last_arrival: string;
  opened_at: string;
  threshold_seconds: number;
  cadence_seconds: number;
  silent_seconds: number;
}

const round = (value: number): number => Math.round(value * 1000) / 1000;

function streamLabel(alert: FeedGapAlert): string {
  const parts = Object.entries(alert.streamKey).map(([k, v]) => `${k}=${v}`);
  return parts.length ? `${alert.dataset}{${parts.join(',')}}` : alert.dataset;
}

export class AlertManager implements Component {
  readonly name = 'alerts';
  readonly detector: FeedGapDetector;
  private readonly options: AlertManagerOptions;
  private readonly now: () => number;
  private readonly notifiers: AlertNotifier[];
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private quietUntilMs = Number.NEGATIVE_INFINITY;
  private untrackedSeen = 0;
  private savedAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: AlertManagerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    const gap = options.config.alerts.feed_gap;
    this.detector = new FeedGapDetector(
      { k: gap.k, floorSeconds: gap.floor_seconds, ceilingSeconds: gap.ceiling_seconds, minSamples: gap.min_samples },
      this.now,
    );
    this.notifiers =
      options.notifiers ?? createNotifiers(options.config.alerts, options.logger, (channel, outcome) => options.metrics.alertDeliveries.inc({ channel, outcome }));
  }

  async start(): Promise<void> {
    this.restoreCadences();
    for (const notifier of this.notifiers) await notifier.start();
    this.options.metrics.alertsActive.set({ kind: 'feed_gap' }, 0);
    this.timer = setInterval(() => void this.check(), this.options.config.alerts.feed_gap.check_interval_ms);
    this.timer.unref();
  }

  readonly stop = onceStop(async () => {
    if (this.timer) clearInterval(this.timer);
    await this.checking;
    this.saveCadences();
    for (const notifier of this.notifiers) await notifier.stop().catch(() => {});
  });

  /** One check: take the arrivals, clear and raise alerts. Concurrent calls share one run. */
  check(): Promise<void> {
    this.checking ??= this.runCheck().finally(() => (this.checking = null));
    return this.checking;
  }

  openAlerts(): AlertView[] {
    const now = this.now();
    return this.detector.openAlerts().map((alert) => this.view(alert, now));
  }

  private async runCheck(): Promise<void> {
    let report: ActivityReport;
    try {
      report = await this.options.activity();
    } catch {
      return; // the landing log is stopping or failed; its own errors are logged there
    }
    this.options.metrics.streamsUntracked.inc(Math.max(0, report.untrackedRows - this.untrackedSeen));
    this.untrackedSeen = Math.max(this.untrackedSeen, report.untrackedRows);
    for (const [dataset, id, key, lastMs, count] of report.streams) {
      const cleared = this.detector.arrived(dataset, id, key, lastMs, count);
      if (cleared) this.onCleared(cleared);
    }
    const gap = this.options.config.alerts.feed_gap;
    if (this.options.feedsPaused?.()) this.quietUntilMs = this.now() + gap.floor_seconds * 1000;
    if (gap.enabled && this.now() >= this.quietUntilMs) for (const alert of this.detector.check()) this.onOpened(alert);
    this.options.metrics.alertsActive.set({ kind: 'feed_gap' }, this.detector.openAlerts().length);
    if (this.now() - this.savedAtMs >= SAVE_INTERVAL_MS) this.saveCadences();
  }

  private restoreCadences(): void {
    const path = this.options.cadencePath;
    if (!path) return;
    try {
      const restored = this.detector.restore(readCadences(path));
      if (restored > 0) this.options.logger.info({ streams: restored, path }, `feed-gap cadences of ${restored} stream(s) restored`);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'feed-gap cadences not restored; learning them again');
    }
    this.savedAtMs = this.now();
  }

  private saveCadences(): void {
    const path = this.options.cadencePath;
    if (!path) return;
    this.savedAtMs = this.now();
    try {
      writeCadences(path, this.detector.cadences(), this.savedAtMs);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message, path }, 'feed-gap cadences not saved');
    }
  }

  private onOpened(alert: FeedGapAlert): void {
    const view = this.view(alert, alert.openedAtMs);
    this.options.metrics.feedGapAlerts.inc({ dataset: alert.dataset });
    this.options.logger.warn({ code: ErrorCode.feedGap, alert: view }, view.message);
    this.notify('opened', view);
  }

  private onCleared(alert: FeedGapAlert): void {
    const view = { ...this.view(alert, alert.clearedAtMs ?? this.now()), silent_seconds: round(alert.silentSeconds ?? 0) };
    const message = `feed gap cleared: ${streamLabel(alert)} sends again after ${view.silent_seconds} s of silence`;
    this.options.logger.info({ code: ErrorCode.feedGapCleared, alert: view }, message);
    this.notify('cleared', { ...view, message });
  }

  private notify(event: 'opened' | 'cleared', alert: AlertView): void {
    const { plant, agent_id } = this.options.config;
    const payload = { event, plant, agent_id, at: new Date(this.now()).toISOString(), alert: { ...alert } };
    for (const notifier of this.notifiers) notifier.notify(payload);
  }

  private view(alert: FeedGapAlert, nowMs: number): AlertView {
    const silent = round((nowMs - alert.lastArrivalMs) / 1000);
    return {
      id: alert.id,
      kind: alert.kind,
      code: ErrorCode.feedGap,
      message: `feed gap: no rows from ${streamLabel(alert)} for ${silent} s (normal cadence ${round(alert.cadenceSeconds)} s, threshold ${round(alert.thresholdSeconds)} s)`,
      dataset: alert.dataset,
      stream: alert.streamKey,
      last_arrival: new Date(alert.lastArrivalMs).toISOString(),
      opened_at: new Date(alert.openedAtMs).toISOString(),
      threshold_seconds: round(alert.thresholdSeconds),
      cadence_seconds: round(alert.cadenceSeconds),
      silent_seconds: silent,
    };
  }
}
