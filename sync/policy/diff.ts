/**
 * What changes between two policy documents, per plant and dataset, as rows for a
 * human table (`lakeside policy diff`).
 *
 * Plant `*` is a plant with no override (the fleet defaults); every plant with an
 * override in either document gets its own rows. Dataset `*` is the settings of a
 * dataset no layer names. A field no layer of the document sets shows as `(config)`:
 * each plant's config file decides it.
 *
 * Invariant: compares the documents' resolved layers (resolve.ts
 * `documentDatasetPolicy`), so a change in defaults shows at every plant it reaches and
 * not at a plant whose override hides it.
 */
import type { PolicyDocument } from '../../config/policy-schema.ts';
import { documentDatasetPolicy } from './resolve.ts';

export interface PolicyChange {
  plant: string;
  dataset: string;
  field: string;
  old: string;
  new: string;
}

const UNSET = '(config)';

function show(value: unknown): string {
  if (value === undefined) return UNSET;
  if (value === null) return 'none';
  return Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
}

function bandwidth(doc: PolicyDocument, plant: string): unknown {
  const override = doc.overrides[plant]?.bandwidth_bytes_per_second;
  return override !== undefined ? override : doc.defaults.bandwidth_bytes_per_second;
}

export function diffPolicies(older: PolicyDocument, newer: PolicyDocument): PolicyChange[] {
  const changes: PolicyChange[] = [];
  const add = (plant: string, dataset: string, field: string, a: unknown, b: unknown) => {
    if (show(a) !== show(b)) changes.push({ plant, dataset, field, old: show(a), new: show(b) });
  };
  for (const field of ['version', 'expires_at', 'plants', 'allow_short_retention'] as const) add('-', '-', field, older[field], newer[field]);

  const plants = ['*', ...new Set([...Object.keys(older.overrides), ...Object.keys(newer.overrides)].sort())];
  const named = (doc: PolicyDocument) => [...Object.keys(doc.defaults.datasets), ...Object.values(doc.overrides).flatMap((o) => Object.keys(o.datasets))];
  const datasets = ['*', ...[...new Set([...named(older), ...named(newer)])].filter((d) => d !== '*').sort()];
  for (const plant of plants) {
    add(plant, '-', 'bandwidth_bytes_per_second', bandwidth(older, plant), bandwidth(newer, plant));
    for (const dataset of datasets) {
      const a = documentDatasetPolicy(older, plant, dataset) as Record<string, unknown>;
      const b = documentDatasetPolicy(newer, plant, dataset) as Record<string, unknown>;
      for (const field of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) add(plant, dataset, field, a[field], b[field]);
    }
  }
  return changes;
}
