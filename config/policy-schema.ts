/**
 * The central tiering policy document (issue 7): what the central data team signs and
 * pushes to every plant. YAML or JSON; its JSON Schema is published by
 * `lakeside policy schema` (generated from this file).
 *
 * Shape:
 *   version: 42                     # an integer that only goes up (agents refuse a rollback)
 *   issued_at / expires_at: ISO-8601 # an expired policy is refused; the last good one stays
 *   plants: ["*"] | [ulm, augsburg]  # the plants it applies to
 *   allow_short_retention: false     # retention under the agent's floors needs this flag
 *   defaults:                        # fleet defaults
 *     bandwidth_bytes_per_second: …  # the plant's WAN cap for tiering (null: none)
 *     datasets: { "*": {…}, <dataset>: {…} }
 *   overrides:                       # per plant, same shape as defaults, merged over them
 *     <plant>: { bandwidth_bytes_per_second, datasets: {…} }
 * Per dataset (every field optional; resolution: built-in config < defaults."*" <
 * defaults.<dataset> < overrides.<plant>."*" < overrides.<plant>.<dataset>):
 *   hot_retention_hours, warm_retention_days (null: never moves to cold),
 *   cold_retention_days (null: kept for ever), cold_storage_class,
 *   compaction_window_minutes, target_file_bytes, priority, bandwidth_share (0..1 of the
 *   plant's cap), upload_windows (cron), overflow (keep | drop_oldest).
 *
 * Invariant: the document never names a secret; it only narrows what an agent does
 * with data it already has, and safety checks (sync/policy/validate.ts) refuse one that
 * could delete uncommitted data.
 */
import { z } from 'zod';
import { cronProblem, storeSettingsSchema } from './tiering-schema.ts';

const cron = z.string().superRefine((expression, ctx) => {
  const problem = cronProblem(expression);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const identifier = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/i, 'expected letters, digits, _ or -');

export const datasetPolicySchema = z.strictObject({
  hot_retention_hours: z.number().positive().optional(),
  warm_retention_days: z.number().min(0).nullable().optional(),
  cold_retention_days: z.number().positive().nullable().optional(),
  cold_storage_class: z.string().regex(/^[A-Z_]+$/).optional(),
  compaction_window_minutes: z.number().int().positive().max(1440).optional(),
  target_file_bytes: z.number().int().positive().optional(),
  priority: z.number().int().min(-1000).max(1000).optional(),
  bandwidth_share: z.number().gt(0).max(1).optional(),
  upload_windows: z.array(cron).optional(),
  overflow: z.enum(['keep', 'drop_oldest']).optional(),
});
export type DatasetPolicy = z.infer<typeof datasetPolicySchema>;

const scopeSchema = z.strictObject({
  bandwidth_bytes_per_second: z.number().int().positive().nullable().optional(),
  datasets: z.record(z.union([z.literal('*'), identifier]), datasetPolicySchema).default({}),
});

export const policyDocumentSchema = z.strictObject({
  version: z.number().int().positive(),
  issued_at: z.iso.datetime({ offset: true }),
  expires_at: z.iso.datetime({ offset: true }),
  plants: z.array(z.union([z.literal('*'), identifier])).min(1),
  allow_short_retention: z.boolean().default(false),
  description: z.string().optional(),
  defaults: scopeSchema.default({ datasets: {} }),
  overrides: z.record(identifier, scopeSchema).default({}),
}).superRefine((doc, ctx) => {
  if (Date.parse(doc.expires_at) <= Date.parse(doc.issued_at)) {
    ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'must be after issued_at' });
  }
});
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;

/** One dataset's settings in force at a plant after resolution (every field set). */
export interface EffectiveDatasetPolicy {
  hot_retention_hours: number;
  warm_retention_days: number | null;
  cold_retention_days: number | null;
  cold_storage_class: string | null;
  compaction_window_minutes: number;
  target_file_bytes: number | null;
  priority: number;
  bandwidth_share: number | null;
  upload_windows: string[];
  overflow: 'keep' | 'drop_oldest';
}

/** What an agent applies: the policy resolved for its plant and datasets. */
export interface EffectivePolicy {
  version: number;
  expiresAt: string;
  bandwidthBytesPerSecond: number | null;
  datasets: Record<string, EffectiveDatasetPolicy>;
  /** Clamps and other adjustments made while applying, for logs and status. */
  warnings: string[];
}

/**
 * The agent's `policy` config section: where it fetches the signed policy, which keys it
 * trusts, the safety floors, and where it reports its status.
 */
const secretRef = z.string().regex(/^\$\{(env|file):([^}]+)\}$/, 'secrets must be a reference, ${env:NAME} or ${file:/path}, never written inline');

export const agentPolicyConfigSchema = z.strictObject({
  /**
   * The policy document: `file:///…`, `https://…` or `s3://bucket/key`; its detached
   * signature is at the same location + `.sig` unless `signature_url` says otherwise.
   * S3 settings (endpoint, region, path style, credentials) come from `store`.
   */
  url: z.string().regex(/^(file:|https?:\/\/|s3:\/\/)/, 'expected file:…, https://… or s3://bucket/key'),
  signature_url: z.string().regex(/^(file:|https?:\/\/|s3:\/\/)/).optional(),
  /** S3 connection settings for s3:// policy and status locations (same keys as tiering.warm, url ignored). */
  store: storeSettingsSchema.optional(),
  poll_interval_seconds: z.number().int().positive().default(300),
  /** Public keys this agent trusts (several, for rotation): Ed25519, base64 of the raw 32 bytes or PEM (SPKI). */
  trusted_keys: z.array(z.strictObject({ id: z.string().min(1), public_key: z.string().min(1) })).min(1),
  /** An MQTT retained topic whose messages nudge an immediate fetch. */
  mqtt_nudge: z
    .strictObject({
      url: z.string().regex(/^mqtts?:\/\//),
      topic: z.string().min(1),
      username: z.string().optional(),
      password: secretRef.optional(),
      ca_file: z.string().optional(),
    })
    .optional(),
  /** Retention under these needs `allow_short_retention: true` in the document. */
  floors: z
    .strictObject({
      hot_retention_hours: z.number().positive().default(24),
      warm_retention_days: z.number().min(0).default(7),
      cold_retention_days: z.number().positive().default(365),
    })
    .default({ hot_retention_hours: 24, warm_retention_days: 7, cold_retention_days: 365 }),
  /** Where `status/<plant>.json` goes (`file:…` or `s3://bucket/prefix`) and how often. */
  status: z
    .strictObject({
      url: z.string().regex(/^(file:|s3:\/\/)/, 'expected file:… or s3://bucket[/prefix]'),
      interval_seconds: z.number().int().positive().default(300),
    })
    .optional(),
});
export type AgentPolicyConfig = z.infer<typeof agentPolicyConfigSchema>;
