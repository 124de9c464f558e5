/**
 * The `tiering` section: where bytes go after the hot tier (warm and cold object
 * stores), how long they stay in each tier, the disk budget, and per-dataset upload
 * policies (priority, upload windows, overflow).
 *
 * Invariants:
 * - A store is `file:///absolute/dir` (or `file:relative/dir`, resolved against the
 *   config file's directory) or `s3://bucket[/prefix]`. S3 credentials are the SDK's
 *   default chain unless `credentials` names a shared credentials file (and profile)
 *   or secret references; keys are never written inline.
 * - An upload window is a cron expression (5 fields, in `upload_window_timezone`, UTC by default): the window is open
 *   during every minute the expression matches, e.g. frames only at night:
 *   `"* 22-23,0-5 * * *"`. A dataset with no windows uploads at any time.
 * - The watermarks are percentages of the disk budget with high < critical.
 */
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

const positiveInt = z.number().int().positive();
const secretRef = z
  .string()
  .regex(/^\$\{(env|file):([^}]+)\}$/, 'secrets must be a reference, ${env:NAME} or ${file:/path}, never written inline');

export const STORE_URL = /^(file:(\/\/)?.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/;

const credentialsSchema = z
  .strictObject({
    /** A shared credentials file (INI, as the AWS CLI writes it) and the profile to read from it. */
    file: z.string().min(1).optional(),
    profile: z.string().min(1).optional(),
    access_key_id: secretRef.optional(),
    secret_access_key: secretRef.optional(),
    session_token: secretRef.optional(),
  })
  .superRefine((c, ctx) => {
    const keys = c.access_key_id !== undefined || c.secret_access_key !== undefined;
    if (keys && (c.access_key_id === undefined || c.secret_access_key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.access_key_id === undefined ? 'access_key_id' : 'secret_access_key'], message: 'access_key_id and secret_access_key go together' });
    }
    if (keys && c.file !== undefined) ctx.addIssue({ code: 'custom', path: ['file'], message: 'either a credentials file or access keys, not both' });
    if (c.profile !== undefined && c.file === undefined) ctx.addIssue({ code: 'custom', path: ['profile'], message: 'profile applies to a credentials file (set file)' });
  });

const storeObject = z.strictObject({
    /** `file:///dir`, `file:relative/dir` or `s3://bucket/prefix`. */
    url: z.string().regex(STORE_URL, 'expected file:///absolute/dir, file:relative/dir or s3://bucket[/prefix]'),
    /** S3 only: a custom endpoint (an S3-compatible server), e.g. http://127.0.0.1:9000. */
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
    region: z.string().min(1).default('us-east-1'),
    force_path_style: z.boolean().default(false),
    /** S3 storage class of new objects (e.g. STANDARD, GLACIER_IR, DEEP_ARCHIVE). */
    storage_class: z.string().regex(/^[A-Z_]+$/, 'expected an S3 storage class such as STANDARD or GLACIER_IR').optional(),
    /** Send a SHA-256 checksum the server verifies (single puts) and keep it as object metadata. */
    checksums: z.boolean().default(true),
    credentials: credentialsSchema.optional(),
    /** Objects at least this large go up in parts (lib-storage). */
    multipart_threshold_bytes: positiveInt.min(5 * 1024 * 1024).default(16 * 1024 * 1024),
    part_size_bytes: positiveInt.min(5 * 1024 * 1024).default(8 * 1024 * 1024),
    /** Concurrent part uploads of one multipart object. */
    part_concurrency: positiveInt.max(16).default(2),
    /** A request with no bytes moving either way for this long fails (and is retried). */
    request_timeout_ms: positiveInt.default(60_000),
});

/** A store's connection settings without its url (the policy section's S3 settings). */
export const storeSettingsSchema = storeObject.omit({ url: true });

export const storeSchema = storeObject
  .superRefine((store, ctx) => {
    const s3Only = ['endpoint', 'storage_class', 'credentials'] as const;
    if (store.url.startsWith('file:')) {
      for (const key of s3Only) {
        if (store[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'applies to s3:// stores only' });
      }
    }
  });
export type StoreConfig = z.infer<typeof storeSchema>;

export function cronProblem(expression: string): string | null {
  if (expression.trim().split(/\s+/).length !== 5) return 'expected a 5-field cron expression (minute hour day month weekday)';
  try {
    CronExpressionParser.parse(expression, { strict: false });
    return null;
  } catch (error) {
    return `not a valid cron expression: ${(error as Error).message}`;
  }
}

export const uploadPolicySchema = z.strictObject({
  /** Higher goes first (inspection results before bulk frames). */
  priority: z.number().int().min(-1000).max(1000).default(0),
  /** Cron expressions; the upload window is open in every minute one of them matches. Empty: always. */
  upload_windows: z
    .array(
      z.string().superRefine((expression, ctx) => {
        const problem = cronProblem(expression);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    )
    .default([]),
  /** `keep`: never delete uncommitted data (sources pause instead). `drop_oldest`: at the critical watermark, its oldest uncommitted files may go. */
  overflow: z.enum(['keep', 'drop_oldest']).default('keep'),
});
export type UploadPolicy = z.infer<typeof uploadPolicySchema>;

const diskBudgetSchema = z
  .strictObject({
    /** Bytes lakeside may use under state_dir; unset: the whole filesystem of state_dir. */
    max_bytes: positiveInt.optional(),
    /** Above this, committed hot files go oldest first (the hot window shrinks). */
    high_watermark_percent: z.number().gt(0).lt(100).default(85),
    /** At this, sources pause until usage is below it again. */
    critical_watermark_percent: z.number().gt(0).max(100).default(95),
  })
  .superRefine((budget, ctx) => {
    if (budget.high_watermark_percent >= budget.critical_watermark_percent) {
      ctx.addIssue({ code: 'custom', path: ['high_watermark_percent'], message: 'must be below critical_watermark_percent' });
    }
  });

export const tieringSchema = z.strictObject({
  /** The warm store (regional bucket). Unset: nothing is uploaded, nothing becomes committed. */
  warm: storeSchema.optional(),
  /** The cold (archival) store. Unset: nothing is archived. */
  cold: storeSchema.optional(),
  /** A hot file is evicted once older than this (by its newest event time) and committed. */
  hot_retention_hours: positiveInt.default(72),
  /** A warm object moves to cold after this (by its newest event time); 0: as soon as it is committed. */
  warm_retention_days: z.number().int().min(0).default(90),
  /** Cold objects are deleted after this; unset: kept. */
  cold_retention_days: positiveInt.optional(),
  disk_budget: diskBudgetSchema.default(diskBudgetSchema.parse({})),
  /** Upload rate cap across all concurrent uploads; unset: no cap. */
  bandwidth_bytes_per_second: positiveInt.optional(),
  upload_concurrency: positiveInt.max(64).default(4),
  /** A file failing this many times is set aside (with its reason) and the queue moves on. */
  max_attempts: positiveInt.default(8),
  retry_initial_ms: positiveInt.default(1000),
  retry_max_ms: positiveInt.default(5 * 60_000),
  /**
   * Upload an hour's L1 files only once that hour is closed and merged into one file per
   * partition (agent/hot/merge.ts), so warm and the catalog get fewer, larger files, an
   * hour later. false (default): upload each L1 file as soon as it is compacted (it is
   * then never merged), so the centre sees the data within the compaction window plus
   * a commit interval.
   */
  wait_for_hour_merge: z.boolean().default(false),
  /** How often new L1 files and blobs are looked for and the queue is re-read. */
  scan_interval_ms: positiveInt.default(5000),
  /**
   * Blobs evicted from local disk (`/v1/blobs`) and evicted data files (`include_warm`,
   * `lakeside backfill`) are fetched back from warm/cold into caches of at most this size each.
   */
  read_cache_max_bytes: positiveInt.default(1024 * 1024 * 1024),
  /** How often due files are archived to cold and expired (the first pass after min(this, 60 s)). */
  archive_interval_ms: positiveInt.default(3_600_000),
  /** How often the disk budget is measured and eviction runs. */
  eviction_interval_ms: positiveInt.default(10_000),
  /** IANA time zone the upload windows' cron expressions are read in. */
  upload_window_timezone: z
    .string()
    .default('UTC')
    .refine((zone) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: zone });
        return true;
      } catch {
        return false;
      }
    }, 'expected an IANA time zone such as UTC or Europe/Berlin'),
  /** Upload policy per dataset (by name); datasets not listed get the defaults. */
  datasets: z.record(z.string(), uploadPolicySchema).default({}),
  /** Upload policy of blobs (camera frames, binary payloads). */
  blobs: uploadPolicySchema.default(uploadPolicySchema.parse({})),
});
export type TieringConfig = z.infer<typeof tieringSchema>;

export const DEFAULT_TIERING: TieringConfig = tieringSchema.parse({});

/** `file:` URL → absolute directory, resolving a relative one against `baseDir`. */
export function fileStoreDir(url: string, baseDir: string, resolvePath: (base: string, p: string) => string): string {
  const rest = url.slice('file:'.length);
  if (rest.startsWith('//')) return decodeURIComponent(new URL(url).pathname);
  return resolvePath(baseDir, rest);
}
