/**
 * Every Prometheus metric of the agent, defined in one place (prom-client, one
 * registry per daemon). `catalog` lists them for the README table and the tests.
 *
 * Naming scheme: `lakeside_<subsystem>_<name>_<unit>`, counters end in `_total`
 * (Prometheus' convention, after the unit), units are base units (`_seconds`,
 * `_bytes`) or what is counted (`_rows`, `_files`, `_messages`, `_streams`). Labels
 * are bounded: `dataset` and `source` come from the config, `reason` from the
 * mapper's fixed codes, `tier` and `state` from fixed sets; the only label that grows
 * with the plant, `stream`, is capped (metrics.max_stream_series, stream-series.ts).
 *
 * Invariants: defining a metric does no I/O and costs nothing per row; the ingest
 * path adds to counters once per committed batch (feed.ts). Metrics whose `fedBy` is
 * `null` are defined (help text, type, labels) for the subsystems that will feed them
 * (catalog requests, policies) and stay without samples until then.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** What feeds it today, or null when only defined. */
  fedBy: string | null;
}

/** Seal and compaction steps take milliseconds to minutes. */
const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** A group commit is an fsync or two. */
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Values of `tier`. */
export const TIERS = ['hot_l0', 'hot_l1', 'hot_rollup', 'warm', 'cold'] as const;
/** Values of `lakeside_disk_watermark_state{state}`. */
export const WATERMARK_STATES = ['ok', 'high', 'critical'] as const;

export class LakesideMetrics {
  readonly registry = new Registry();
  readonly catalog: MetricDefinition[] = [];

  // ingest and landing
  readonly ingestRows = this.counter('lakeside_ingest_rows_total', 'Rows landed (durable in the landing log, acknowledged to their source), per dataset and source.', ['dataset', 'source'], 'landing commits');
  readonly ingestDuplicates = this.counter('lakeside_ingest_duplicate_rows_total', 'Rows dropped at landing because their dedupe key had already landed (redeliveries).', ['dataset', 'source'], 'landing commits');
  readonly quarantined = this.counter('lakeside_quarantine_messages_total', 'Messages and files quarantined, per dataset ("" when none matched) and reason code.', ['dataset', 'reason'], 'landing commits');
  readonly landingCommits = this.counter('lakeside_landing_commits_total', 'Group commits of the landing log.', [], 'landing commits');
  readonly landingCommitDuration = this.histogram('lakeside_landing_commit_duration_seconds', 'Time inside one landing transaction, fsync included.', [], COMMIT_BUCKETS, 'landing commits');
  readonly landingDepth = this.gauge('lakeside_landing_depth_rows', 'Rows landed and not yet sealed into a hot-tier file, per dataset.', ['dataset'], 'landing.db at scrape');
  readonly landingBlocked = this.gauge('lakeside_landing_blocked', '1 while the landing log cannot commit (disk full, I/O error) and sources are paused.', [], "landing 'blocked'/'unblocked'");

  // hot tier
  readonly sealDuration = this.histogram('lakeside_seal_duration_seconds', 'Wall time of one seal step (all datasets).', [], STEP_BUCKETS, "sealer 'step-done'");
  readonly sealRows = this.counter('lakeside_seal_rows_total', 'Rows sealed into L0 files, per dataset.', ['dataset'], "sealer 'step-done'");
  readonly sealFailures = this.counter('lakeside_seal_failures_total', 'Seal steps that failed, per dataset ("" when the whole step failed).', ['dataset'], "sealer 'step-done'");
  readonly compactionDuration = this.histogram('lakeside_compaction_duration_seconds', 'Wall time of one compaction step (all datasets).', [], STEP_BUCKETS, "sealer 'step-done'");
  readonly compactionRows = this.counter('lakeside_compaction_rows_total', 'Rows compacted into L1 files, per dataset.', ['dataset'], "sealer 'step-done'");
  readonly compactionFailures = this.counter('lakeside_compaction_failures_total', 'Compaction steps or windows that failed, per dataset ("" when the whole step failed).', ['dataset'], "sealer 'step-done'");
  readonly tierFiles = this.gauge('lakeside_tier_files', `Files per dataset and tier (${TIERS.join(', ')}; warm: uploaded or committed, cold: archived; blobs as dataset="").`, ['dataset', 'tier'], 'hot_files (hot tiers) and tier_files (warm, cold) at scrape');
  readonly tierBytes = this.gauge('lakeside_tier_size_bytes', 'Bytes of the files per dataset and tier.', ['dataset', 'tier'], 'hot_files (hot tiers) and tier_files (warm, cold) at scrape');

  // tiering (the tier map), catalog, policy
  readonly uploadBacklogFiles = this.gauge('lakeside_upload_backlog_files', 'Files waiting for upload to the warm bucket (set-aside ones included), per dataset; blobs as dataset="".', ['dataset'], 'tier_files at scrape');
  readonly uploadBacklogBytes = this.gauge('lakeside_upload_backlog_bytes', 'Bytes waiting for upload to the warm bucket, per dataset; blobs as dataset="".', ['dataset'], 'tier_files at scrape');
  readonly uploadBacklogAge = this.gauge('lakeside_upload_backlog_oldest_age_seconds', 'Seconds the oldest file waiting for upload has waited since it was registered, per dataset (0 when none waits); blobs as dataset="".', ['dataset'], 'tier_files at scrape');
  readonly commitLag = this.gauge('lakeside_catalog_commit_lag_seconds', 'Age of the oldest uploaded file not yet committed to the Iceberg catalog, per dataset; 0 with no catalog configured (uploaded counts as committed).', ['dataset'], 'tier_files at scrape');
  readonly catalogErrors = this.counter('lakeside_catalog_errors_total', 'Failed catalog requests, per kind (conflict, unavailable, rejected); fed once the catalog layer (Iceberg issue) exists.', ['kind'], null);
  readonly policyVersion = this.gauge('lakeside_policy_version', 'Version of the central tiering policy in force (absent until one applies).', [], 'policy component on apply');

  // disk
  readonly diskSize = this.gauge('lakeside_disk_size_bytes', 'Size of the file system holding the state directory.', [], 'statfs at scrape');
  readonly diskFree = this.gauge('lakeside_disk_free_bytes', 'Bytes available to the agent on the file system holding the state directory.', [], 'statfs at scrape');
  readonly diskWatermark = this.gauge('lakeside_disk_watermark_state', `1 for the current disk state (${WATERMARK_STATES.join(', ')}), 0 for the others.`, ['state'], "landing 'blocked' (critical) and the evictor's last pass against the disk budget (high, critical), at scrape");

  // streams
  readonly streamFreshness = this.gauge('lakeside_stream_freshness_seconds', 'Seconds since the last row of a stream landed (first metrics.max_stream_series streams only).', ['dataset', 'stream'], 'stream activity at scrape');
  readonly streamFreshnessMax = this.gauge('lakeside_stream_freshness_max_seconds', 'Seconds since the last row of the stalest watched stream, per dataset (all streams).', ['dataset'], 'stream activity at scrape');
  readonly streamsWatched = this.gauge('lakeside_stream_watched_streams', 'Streams watched for freshness and feed gaps, per dataset.', ['dataset'], 'stream activity at scrape');
  readonly streamsOmitted = this.gauge('lakeside_stream_series_omitted_streams', 'Watched streams without their own freshness series (beyond metrics.max_stream_series).', [], 'stream activity at scrape');
  readonly streamsUntracked = this.counter('lakeside_stream_untracked_rows_total', 'Rows of streams beyond alerts.feed_gap.max_streams (not watched for freshness or gaps).', [], 'stream activity');

  // sources
  readonly sourceConnections = this.gauge('lakeside_source_connections', 'Open connections of a source (MQTT pool).', ['source'], 'source stats at scrape');
  readonly sourceReceived = this.counter('lakeside_source_received_messages_total', 'Messages or files a source received (before mapping and landing).', ['source'], 'source stats at scrape');

  // alerts
  readonly alertsActive = this.gauge('lakeside_alerts_active', 'Open alerts, per kind (feed_gap).', ['kind'], 'alert manager');
  readonly feedGapAlerts = this.counter('lakeside_feed_gap_alerts_total', 'Feed-gap alerts raised, per dataset.', ['dataset'], 'alert manager');
  readonly alertDeliveries = this.counter('lakeside_alert_deliveries_total', 'Alert notifications sent, per channel (mqtt, webhook) and outcome (sent, failed, dropped).', ['channel', 'outcome'], 'alert notifiers');

  readonly buildInfo = this.gauge('lakeside_build_info', 'Always 1; the agent version and id as labels.', ['version', 'agent_id'], 'start');

  constructor(options: { defaultMetrics?: boolean } = {}) {
    // process_* and nodejs_* (CPU, memory, event-loop lag, GC): Prometheus' usual names.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Metrics defined but not fed by anything yet. */
  unfed(): string[] {
    return this.catalog.filter((m) => m.fedBy === null).map((m) => m.name);
  }

  private define(definition: MetricDefinition): void {
    if (!/^lakeside_[a-z0-9]+(_[a-z0-9]+)+$/.test(definition.name)) throw new Error(`metric ${definition.name} breaks the naming scheme`);
    if ((definition.type === 'counter') !== definition.name.endsWith('_total')) throw new Error(`metric ${definition.name}: counters, and only counters, end in _total`);
    this.catalog.push(definition);
  }

  private counter<L extends string>(name: string, help: string, labels: readonly L[], fedBy: string | null): Counter<L> {
    this.define({ name, type: 'counter', help, labels, fedBy });
    return new Counter({ name, help, labelNames: labels, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labels: readonly L[], fedBy: string | null): Gauge<L> {
    this.define({ name, type: 'gauge', help, labels, fedBy });
    return new Gauge({ name, help, labelNames: labels, registers: [this.registry] });
  }

  private histogram<L extends string>(name: string, help: string, labels: readonly L[], buckets: number[], fedBy: string | null): Histogram<L> {
    this.define({ name, type: 'histogram', help, labels, fedBy });
    return new Histogram({ name, help, labelNames: labels, buckets, registers: [this.registry] });
  }
}

/** The README's metrics table (markdown). */
export function metricsTable(metrics: LakesideMetrics): string {
  const rows = metrics.catalog.map(
    (m) => `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ') || '-'} | ${m.help} | ${m.fedBy ?? '**not fed yet**'} |`,
  );
  return ['| metric | type | labels | meaning | fed by |', '|---|---|---|---|---|', ...rows].join('\n');
}
