/**
 * Resolves a policy document for one plant and its datasets into the settings in force.
 *
 * Order, later wins, field by field (a field a layer does not name falls through):
 *   the agent's config file < defaults."*" < defaults.<dataset>
 *     < overrides.<plant>."*" < overrides.<plant>.<dataset>
 * The plant's bandwidth cap: config file < defaults < overrides.<plant> (a `null` in
 * the document means "no cap" and does override).
 *
 * Invariant: pure; resolution never checks safety (validate.ts does, on the document's
 * own values from `documentDatasetPolicy`).
 */
import type { DatasetPolicy, EffectiveDatasetPolicy, EffectivePolicy, PolicyDocument } from '../../config/policy-schema.ts';
import type { TieringConfig, UploadPolicy } from '../../config/tiering-schema.ts';

/**
 * What the agent's config file says, the bottom layer: pass `{ tiering: config.tiering,
 * hot: config.hot }` of a loaded config.
 */
export interface PolicyBase {
  tiering: Pick<TieringConfig, 'hot_retention_hours' | 'warm_retention_days' | 'bandwidth_bytes_per_second' | 'datasets' | 'blobs' | 'disk_budget'> & {
    cold_retention_days?: number | undefined;
    cold?: { storage_class?: string | undefined } | undefined;
  };
  hot: { compaction_window_minutes: number };
}

const DEFAULT_UPLOAD: UploadPolicy = { priority: 0, upload_windows: [], overflow: 'keep' };

/** The config file's settings for one dataset (`blobs` for the blob pseudo-dataset). */
export function baseDatasetPolicy(base: PolicyBase, dataset: string): EffectiveDatasetPolicy {
  const upload = dataset === 'blobs' ? base.tiering.blobs : (base.tiering.datasets[dataset] ?? DEFAULT_UPLOAD);
  return {
    hot_retention_hours: base.tiering.hot_retention_hours,
    warm_retention_days: base.tiering.warm_retention_days,
    cold_retention_days: base.tiering.cold_retention_days ?? null,
    cold_storage_class: base.tiering.cold?.storage_class ?? null,
    compaction_window_minutes: base.hot.compaction_window_minutes,
    target_file_bytes: null,
    priority: upload.priority,
    bandwidth_share: null,
    upload_windows: [...upload.upload_windows],
    overflow: upload.overflow,
  };
}

/** The document's own layers for one dataset at one plant, merged (only the fields it names). */
export function documentDatasetPolicy(doc: PolicyDocument, plant: string, dataset: string): DatasetPolicy {
  const override = doc.overrides[plant];
  const layers = [doc.defaults.datasets['*'], doc.defaults.datasets[dataset], override?.datasets['*'], override?.datasets[dataset]];
  const merged: DatasetPolicy = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
    }
  }
  return merged;
}

export function resolvePolicy(doc: PolicyDocument, plant: string, datasets: string[], base: PolicyBase): EffectivePolicy {
  const effective: Record<string, EffectiveDatasetPolicy> = {};
  for (const dataset of datasets) {
    effective[dataset] = { ...baseDatasetPolicy(base, dataset), ...documentDatasetPolicy(doc, plant, dataset) } as EffectiveDatasetPolicy;
  }
  let bandwidth: number | null = base.tiering.bandwidth_bytes_per_second ?? null;
  if (doc.defaults.bandwidth_bytes_per_second !== undefined) bandwidth = doc.defaults.bandwidth_bytes_per_second;
  const override = doc.overrides[plant];
  if (override?.bandwidth_bytes_per_second !== undefined) bandwidth = override.bandwidth_bytes_per_second;

  const named = new Set([...Object.keys(doc.defaults.datasets), ...Object.keys(override?.datasets ?? {})]);
  named.delete('*');
  const unknown = [...named].filter((d) => !datasets.includes(d)).sort();
  const warnings = unknown.length > 0 ? [`the policy names datasets this plant does not have (ignored): ${unknown.join(', ')}`] : [];
  return { version: doc.version, expiresAt: doc.expires_at, bandwidthBytesPerSecond: bandwidth, datasets: effective, warnings };
}
