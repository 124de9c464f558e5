/**
 * The settings tiering runs on, as one immutable object: the `tiering` config section
 * with a central policy (config/policy-schema.ts EffectivePolicy) laid over it, and
 * what is derived from them (compiled upload windows, the priority SQL).
 *
 * Invariants:
 * - A `TieringSettings` is built whole (cron expressions compiled, every number
 *   checked) before anyone sees it; building fails (throws) rather than yield a half
 *   policy. `SettingsCell.swap` replaces the one reference: a pass reads the cell once
 *   at its start and sees the old settings or the new ones, never a mix.
 * - Per-dataset retention, storage class and bandwidth share come from the policy;
 *   a dataset it does not name keeps the config file's values. The blobs follow the
 *   policy's `blobs` entry (BLOBS_POLICY) when it has one, else the config's.
 * - Retention `null` means "never": never moved to cold (warm), kept for ever (cold).
 */
import type { EffectivePolicy } from '../config/policy-schema.ts';
import { uploadPolicySchema, type TieringConfig } from '../config/tiering-schema.ts';
import { UploadWindows } from './upload-windows.ts';

/** The policy entry that governs blobs (their upload policy, retention, share). */
export const BLOBS_POLICY = 'blobs';

export interface DatasetTierSettings {
  hotRetentionHours: number;
  warmRetentionDays: number | null;
  coldRetentionDays: number | null;
  coldStorageClass: string | null;
  /** Fraction (0..1] of the plant's bandwidth cap this dataset's uploads may use; null: no own limit. */
  bandwidthShare: number | null;
}

export interface TieringSettings {
  /** The config with the policy's per-dataset upload policies (priority, windows, overflow) and bandwidth cap in. */
  readonly config: TieringConfig;
  /** Datasets the policy names; the others use `config`'s global values. */
  readonly datasets: ReadonlyMap<string, DatasetTierSettings>;
  /** The blobs' retention and share from the policy; null: the config's. */
  readonly blobs: DatasetTierSettings | null;
  readonly windows: UploadWindows;
  readonly priorityCase: string;
  /** The policy version in force; null: the config file's settings. */
  readonly policyVersion: number | null;
}

/** Builds the settings for `config` with `policy` over it (null: the config alone). Throws on a setting that cannot apply. */
export function buildSettings(config: TieringConfig, policy: EffectivePolicy | null): TieringSettings {
  if (!policy) {
    return { config, datasets: new Map(), blobs: null, windows: new UploadWindows(config, config.upload_window_timezone), priorityCase: priorityCase(config), policyVersion: null };
  }
  const uploadPolicies = { ...config.datasets };
  let blobUpload = config.blobs;
  let blobs: DatasetTierSettings | null = null;
  const datasets = new Map<string, DatasetTierSettings>();
  for (const [name, p] of Object.entries(policy.datasets)) {
    // The schema's cron check: an expression the uploader could not compile fails the whole policy here.
    const upload = uploadPolicySchema.parse({ priority: p.priority, upload_windows: p.upload_windows, overflow: p.overflow });
    if (!(p.hot_retention_hours > 0)) throw new Error(`dataset ${name}: hot_retention_hours must be positive`);
    if (p.bandwidth_share !== null && !(p.bandwidth_share > 0 && p.bandwidth_share <= 1)) throw new Error(`dataset ${name}: bandwidth_share must be in (0, 1]`);
    const tiers: DatasetTierSettings = {
      hotRetentionHours: p.hot_retention_hours,
      warmRetentionDays: p.warm_retention_days,
      coldRetentionDays: p.cold_retention_days,
      coldStorageClass: p.cold_storage_class,
      bandwidthShare: p.bandwidth_share,
    };
    if (name === BLOBS_POLICY) {
      blobUpload = upload;
      blobs = tiers;
      continue;
    }
    uploadPolicies[name] = upload;
    datasets.set(name, {
      hotRetentionHours: p.hot_retention_hours,
      warmRetentionDays: p.warm_retention_days,
      coldRetentionDays: p.cold_retention_days,
      coldStorageClass: p.cold_storage_class,
      bandwidthShare: p.bandwidth_share,
    });
  }
  const merged: TieringConfig = { ...config, datasets: uploadPolicies, blobs: blobUpload };
  if (policy.bandwidthBytesPerSecond !== null) merged.bandwidth_bytes_per_second = policy.bandwidthBytesPerSecond;
  else delete merged.bandwidth_bytes_per_second;
  return { config: merged, datasets, blobs, windows: new UploadWindows(merged, merged.upload_window_timezone), priorityCase: priorityCase(merged), policyVersion: policy.version };
}

/** Holds the settings in force; `swap` is the one way they change. */
export class SettingsCell {
  private settings: TieringSettings;

  constructor(initial: TieringSettings) {
    this.settings = initial;
  }

  get current(): TieringSettings {
    return this.settings;
  }

  swap(next: TieringSettings): TieringSettings {
    const previous = this.settings;
    this.settings = next;
    return previous;
  }
}

/** SQL giving a tier_files row its upload priority (config-derived, so a policy change applies at once). */
export function priorityCase(config: Pick<TieringConfig, 'datasets' | 'blobs'>): string {
  const whens = Object.entries(config.datasets).map(([name, p]) => `WHEN '${name.replaceAll("'", "''")}' THEN ${p.priority}`);
  const data = whens.length ? `CASE dataset ${whens.join(' ')} ELSE 0 END` : '0';
  return `CASE WHEN kind = 'blob' THEN ${config.blobs.priority} ELSE ${data} END`;
}

const HOUR_US = 3_600_000_000;
const DAY_US = 86_400_000_000;
const quote = (name: string): string => `'${name.replaceAll("'", "''")}'`;

/**
 * SQL giving a tier_files row the event time before which it is due, per dataset:
 * `nowUs - retention`; a `null` retention gives -1 (never due, event times are positive).
 */
function cutoffCase(settings: TieringSettings, nowUs: number, pick: (d: DatasetTierSettings) => number | null, fallback: number | null, unitUs: number): string {
  const cutoff = (retention: number | null): string => (retention === null ? '-1' : String(Math.floor(nowUs - retention * unitUs)));
  const whens = [...settings.datasets].map(([name, d]) => `WHEN ${quote(name)} THEN ${cutoff(pick(d))}`);
  const blobs = cutoff(settings.blobs ? pick(settings.blobs) : fallback);
  if (whens.length === 0 && !settings.blobs) return cutoff(fallback);
  const data = whens.length === 0 ? cutoff(fallback) : `(CASE dataset ${whens.join(' ')} ELSE ${cutoff(fallback)} END)`;
  return `(CASE WHEN kind = 'data' THEN ${data} ELSE ${blobs} END)`;
}

/** Hot retention: a committed file whose newest event is before this goes from local disk. */
export function hotCutoffSql(settings: TieringSettings, nowUs: number): string {
  return cutoffCase(settings, nowUs, (d) => d.hotRetentionHours, settings.config.hot_retention_hours, HOUR_US);
}

/** Warm retention: a committed object whose newest event is before this moves to cold. */
export function warmCutoffSql(settings: TieringSettings, nowUs: number): string {
  return cutoffCase(settings, nowUs, (d) => d.warmRetentionDays, settings.config.warm_retention_days, DAY_US);
}

/** Cold retention: an archived object whose newest event is before this is deleted. */
export function coldCutoffSql(settings: TieringSettings, nowUs: number): string {
  return cutoffCase(settings, nowUs, (d) => d.coldRetentionDays, settings.config.cold_retention_days ?? null, DAY_US);
}

/** Whether any cold retention applies (else expiry need not look). */
export function anyColdRetention(settings: TieringSettings): boolean {
  return settings.config.cold_retention_days !== undefined || [...settings.datasets.values(), ...(settings.blobs ? [settings.blobs] : [])].some((d) => d.coldRetentionDays !== null);
}

/** The cold storage class of a file of `dataset` (null: blobs or the config's). */
export function coldStorageClass(settings: TieringSettings, dataset: string | null): string | undefined {
  const own = dataset !== null ? settings.datasets.get(dataset)?.coldStorageClass : settings.blobs?.coldStorageClass;
  return own ?? settings.config.cold?.storage_class;
}
