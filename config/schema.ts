/**
 * The lakeside configuration schema: one YAML file, validated here.
 *
 * Invariants:
 * - Every name a user writes is snake_case; durations and sizes carry their unit in
 *   the key (`_ms`, `_seconds`, `_hours`, `_bytes`).
 * - Secrets (passwords, keys) are never inline: fields marked `secretRef` only accept
 *   `${env:NAME}` or `${file:/path}`; the loader resolves them after validation.
 * - Dataset and column names are SQL- and path-safe identifiers, so they can name
 *   SQLite tables, Parquet columns and folders without quoting tricks.
 * - Column field ids (Iceberg/Parquet) are stable: explicit `field_id`, or the time
 *   column = 1 and the columns 2, 3, … in declared order. Columns are only appended.
 */
import { z } from 'zod';
import { catalogSchema } from './catalog-schema.ts';
import { agentPolicyConfigSchema } from './policy-schema.ts';
import { tieringSchema } from './tiering-schema.ts';
import { PLANT_COLUMN, PLANT_FIELD_ID } from '../sync/iceberg/table-schema.ts';

const identifier = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, 'expected a lowercase identifier: a-z, 0-9 and _, starting with a letter, at most 63 characters');

/** `${env:NAME}` or `${file:/absolute/path}`; resolved by the loader. */
export const SECRET_REF = /^\$\{(env|file):([^}]+)\}$/;
const secretRef = z
  .string()
  .regex(SECRET_REF, 'secrets must be a reference, ${env:NAME} or ${file:/path}, never written inline');

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

export const COLUMN_TYPES = ['string', 'int', 'long', 'double', 'boolean', 'timestamp', 'blob'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

export const TIME_FORMATS = ['epoch_s', 'epoch_ms', 'epoch_us', 'iso8601'] as const;
export type TimeFormat = (typeof TIME_FORMATS)[number];

const columnSchema = z.strictObject({
  name: identifier,
  /** `blob`: a content-addressed file; the column holds its sha256 (hex). */
  type: z.enum(COLUMN_TYPES),
  nullable: z.boolean().default(true),
  field_id: positiveInt.optional(),
  doc: z.string().optional(),
});
export type ColumnConfig = z.infer<typeof columnSchema>;

export const datasetSchema = z
  .strictObject({
    name: identifier,
    /** Event time, stored as microseconds since the epoch (UTC). */
    time_column: identifier,
    time_field_id: positiveInt.optional(),
    columns: z.array(columnSchema).min(1),
    /** Columns whose values together identify a reading; redeliveries with the same key are dropped. */
    dedupe_key: z.array(identifier).min(1).optional(),
    /**
     * Columns that identify one stream of readings (e.g. line + sensor): latest values
     * and recent windows are kept per stream. Without it the whole dataset is one stream.
     */
    stream_key: z.array(identifier).min(1).optional(),
    /** Identity partition columns for L1 files (besides the compaction window). */
    partition_by: z.array(identifier).default([]),
    /** A row whose event time is further ahead of the agent's clock is quarantined. */
    max_future_skew_seconds: nonNegativeInt.default(300),
    /** A row whose event time is older than this is quarantined. */
    max_past_age_hours: positiveInt.default(24 * 7),
    doc: z.string().optional(),
  })
  .superRefine((dataset, ctx) => {
    const names = new Set<string>([dataset.time_column]);
    dataset.columns.forEach((column, index) => {
      if (names.has(column.name)) {
        ctx.addIssue({ code: 'custom', path: ['columns', index, 'name'], message: `duplicate column name "${column.name}"` });
      }
      names.add(column.name);
    });
    const blobs = dataset.columns.filter((c) => c.type === 'blob');
    if (blobs.length > 1) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: 'a dataset has at most one blob column' });
    }
    for (const key of ['dedupe_key', 'partition_by', 'stream_key'] as const) {
      (dataset[key] ?? []).forEach((name, index) => {
        if (!names.has(name)) {
          ctx.addIssue({ code: 'custom', path: [key, index], message: `unknown column "${name}"` });
        }
      });
    }
    // The Iceberg table adds a `plant` column with a reserved id (sync/iceberg/table-schema.ts).
    if (dataset.time_column === PLANT_COLUMN) {
      ctx.addIssue({ code: 'custom', path: ['time_column'], message: `dataset "${dataset.name}": the column name "${PLANT_COLUMN}" is reserved for the Iceberg table's plant column` });
    }
    if (dataset.time_field_id !== undefined && dataset.time_field_id >= PLANT_FIELD_ID) {
      ctx.addIssue({ code: 'custom', path: ['time_field_id'], message: `dataset "${dataset.name}": field ids from ${PLANT_FIELD_ID} are reserved (time column "${dataset.time_column}" has ${dataset.time_field_id})` });
    }
    dataset.columns.forEach((column, index) => {
      if (column.name === PLANT_COLUMN) {
        ctx.addIssue({ code: 'custom', path: ['columns', index, 'name'], message: `dataset "${dataset.name}": the column name "${PLANT_COLUMN}" is reserved for the Iceberg table's plant column` });
      }
      if (column.field_id !== undefined && column.field_id >= PLANT_FIELD_ID) {
        ctx.addIssue({ code: 'custom', path: ['columns', index, 'field_id'], message: `dataset "${dataset.name}", column "${column.name}": field ids from ${PLANT_FIELD_ID} are reserved (got ${column.field_id})` });
      }
    });
    const ids = new Set<number>();
    const explicit = [dataset.time_field_id, ...dataset.columns.map((c) => c.field_id)];
    explicit.forEach((id) => {
      if (id === undefined) return;
      if (ids.has(id)) ctx.addIssue({ code: 'custom', path: ['columns'], message: `duplicate field_id ${id}` });
      ids.add(id);
    });
  });
export type DatasetConfig = z.infer<typeof datasetSchema>;

/**
 * A path into a JSON payload: `a.b[0].c`; a key is any run of characters other than
 * `.`, `[` and `]`. The mapper (agent/mapping/json-path.ts) compiles the same grammar.
 */
export const JSON_PATH = /^(?:[^.[\]]+|\[\d+\])(?:\.[^.[\]]+|\[\d+\])*$/;

/** An MQTT topic filter: `+` fills a whole level, `#` only the whole last level. */
export function topicFilterProblem(filter: string): string | null {
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '#' && i !== levels.length - 1) return '# is only allowed as the last level';
    if (level !== '#' && level !== '+' && (level.includes('#') || level.includes('+'))) {
      return 'wildcards + and # must fill a whole topic level';
    }
  }
  return filter.includes('\u0000') ? 'a topic filter cannot contain NUL' : null;
}

/** `{name}` placeholders of a folder path pattern. */
export const PATH_PLACEHOLDER = /\{([^{}]*)\}/g;

/**
 * Where one column's value comes from. Exactly one of:
 * - `topic_level`: the 0-based level of the MQTT topic (or path segment for folders);
 * - `json`: a path into the JSON payload, e.g. `reading.value` or `defects[0].label`;
 * - `path_field`: a named `{placeholder}` of a folder's path pattern;
 * - `const`: a fixed value;
 * - `received_at`: the agent's clock when the message arrived;
 * - `file_mtime`: the modification time of a dropped file (folders only);
 * - `payload`: the raw payload (for a blob column);
 * - Kafka only: `kafka_key` (the record key as UTF-8 text), `kafka_header` (the named
 *   header's first value as UTF-8 text), `kafka_timestamp` (the record timestamp, for a
 *   time column), `kafka_topic`, `kafka_partition`, `kafka_offset`.
 * `format` says how a time value is written (for the time column and timestamp columns).
 */
const FIELD_SOURCE_KINDS = [
  'topic_level',
  'json',
  'path_field',
  'const',
  'received_at',
  'file_mtime',
  'payload',
  'kafka_key',
  'kafka_header',
  'kafka_timestamp',
  'kafka_topic',
  'kafka_partition',
  'kafka_offset',
] as const;
/** Field sources only a Kafka route may use. */
export const KAFKA_FIELD_KINDS = ['kafka_key', 'kafka_header', 'kafka_timestamp', 'kafka_topic', 'kafka_partition', 'kafka_offset'] as const;

const fieldSourceSchema = z
  .strictObject({
    topic_level: nonNegativeInt.optional(),
    json: z.string().regex(JSON_PATH, 'expected a JSON path like reading.value or defects[0].label').optional(),
    path_field: identifier.optional(),
    const: z.union([z.string(), z.number(), z.boolean()]).optional(),
    received_at: z.literal(true).optional(),
    file_mtime: z.literal(true).optional(),
    payload: z.literal(true).optional(),
    kafka_key: z.literal(true).optional(),
    kafka_header: z.string().min(1).optional(),
    kafka_timestamp: z.literal(true).optional(),
    kafka_topic: z.literal(true).optional(),
    kafka_partition: z.literal(true).optional(),
    kafka_offset: z.literal(true).optional(),
    format: z.enum(TIME_FORMATS).optional(),
  })
  .superRefine((source, ctx) => {
    const kinds = FIELD_SOURCE_KINDS.filter((kind) => source[kind] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one of ${FIELD_SOURCE_KINDS.join(', ')} (got ${kinds.length === 0 ? 'none' : kinds.join(', ')})`,
      });
    }
  });
export type FieldSource = z.infer<typeof fieldSourceSchema>;

const mqttRouteSchema = z.strictObject({
  /** MQTT topic filter, with + and # wildcards. */
  filter: z.string().min(1).superRefine((filter, ctx) => {
    const problem = topicFilterProblem(filter);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  dataset: identifier,
  /** Column name → where its value comes from. */
  fields: z.record(identifier, fieldSourceSchema),
  /** `json` (default) parses the payload; `binary` keeps it whole (for a blob column). */
  payload: z.enum(['json', 'binary']).default('json'),
});
export type MqttRouteConfig = z.infer<typeof mqttRouteSchema>;

const tlsSchema = z.strictObject({
  ca_file: z.string().optional(),
  cert_file: z.string().optional(),
  key_file: z.string().optional(),
  /** Verify the server certificate (default true). */
  reject_unauthorized: z.boolean().default(true),
});

const mqttUrl = z
  .string()
  .refine((value) => /^(mqtts?|wss?|tcp|ssl):\/\/[^/\s]+/.test(value), 'expected an mqtt:// or mqtts:// URL');

export const mqttSourceSchema = z.strictObject({
  name: identifier,
  url: mqttUrl,
  protocol_version: z.literal([5, 4]).default(5),
  /** Base client id; connection i of the pool uses `<client_id>-<i>`. Fixed, so sessions persist. */
  client_id: z.string().min(1).max(200),
  username: z.string().optional(),
  password: secretRef.optional(),
  tls: tlsSchema.optional(),
  /** Number of shared-subscription connections; their messages share one group commit. */
  connections: positiveInt.max(256).default(4),
  /** Shared-subscription group; set to null to subscribe without `$share/` (then connections must be 1). */
  share_group: z.string().min(1).nullable().default('lakeside'),
  clean_session: z.boolean().default(false),
  session_expiry_seconds: nonNegativeInt.default(7 * 24 * 3600),
  keepalive_seconds: positiveInt.default(30),
  reconnect_min_ms: positiveInt.default(500),
  reconnect_max_ms: positiveInt.default(30_000),
  /** How long start() waits for a first connection before going on without it (it keeps retrying). */
  connect_timeout_ms: positiveInt.default(10_000),
  /** Messages received but not yet acknowledged (waiting for their commit), per connection. */
  max_unacked_per_connection: positiveInt.max(65535).default(1000),
  max_unacked_bytes_per_connection: positiveInt.default(16 * 1024 * 1024),
  /** Larger payloads are quarantined (with their first bytes only). */
  max_payload_bytes: positiveInt.default(1024 * 1024),
  routes: z.array(mqttRouteSchema).min(1),
}).superRefine((source, ctx) => {
  if (source.share_group === null && source.connections !== 1) {
    ctx.addIssue({ code: 'custom', path: ['connections'], message: 'without a share_group only 1 connection can subscribe (otherwise every message arrives once per connection)' });
  }
  if (source.reconnect_max_ms < source.reconnect_min_ms) {
    ctx.addIssue({ code: 'custom', path: ['reconnect_max_ms'], message: 'must be at least reconnect_min_ms' });
  }
});
export type MqttSourceConfig = z.infer<typeof mqttSourceSchema>;

const kafkaRouteSchema = z.strictObject({
  /** A topic name (exact; no patterns, so the subscription is explicit). */
  topic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'expected a Kafka topic name: letters, digits, ".", "_" and "-", at most 249'),
  dataset: identifier,
  /** Column name → where its value comes from (json, kafka_*, const, received_at, payload). */
  fields: z.record(identifier, fieldSourceSchema),
  /** `json` (default) parses the record value; `binary` keeps it whole (for a blob column). */
  payload: z.enum(['json', 'binary']).default('json'),
});
export type KafkaRouteConfig = z.infer<typeof kafkaRouteSchema>;

/** SASL: SCRAM needs username and password; OAUTHBEARER a token. */
const kafkaSaslSchema = z
  .strictObject({
    mechanism: z.enum(['scram-sha-256', 'scram-sha-512', 'oauthbearer']),
    username: z.string().min(1).optional(),
    password: secretRef.optional(),
    /** The OAUTHBEARER token (a JWT), from a secret reference; a `${file:…}` token is read again at each authentication (rotate it by rewriting the file), an `${env:…}` one only at start. */
    token: secretRef.optional(),
  })
  .superRefine((sasl, ctx) => {
    if (sasl.mechanism === 'oauthbearer') {
      if (sasl.token === undefined) ctx.addIssue({ code: 'custom', path: ['token'], message: 'oauthbearer needs a token (${env:NAME} or ${file:/path})' });
      for (const key of ['username', 'password'] as const) {
        if (sasl[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'oauthbearer takes a token, not a username or password' });
      }
    } else {
      if (sasl.username === undefined) ctx.addIssue({ code: 'custom', path: ['username'], message: `${sasl.mechanism} needs a username` });
      if (sasl.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: `${sasl.mechanism} needs a password (\${env:NAME} or \${file:/path})` });
      if (sasl.token !== undefined) ctx.addIssue({ code: 'custom', path: ['token'], message: 'a token is for oauthbearer only' });
    }
  });

export const kafkaSourceSchema = z
  .strictObject({
    name: identifier,
    /** Bootstrap brokers, `host:port`. */
    brokers: z.array(z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'expected host:port')).min(1),
    client_id: z.string().min(1).max(200).default('lakeside'),
    /** Consumer group: agents with the same group split the partitions between them. */
    group_id: z.string().min(1).max(200),
    /** TLS to the brokers (an empty object uses the system CAs). */
    tls: tlsSchema.optional(),
    sasl: kafkaSaslSchema.optional(),
    /** Where a group without committed offsets starts: the oldest record (default) or new records only. */
    from_beginning: z.boolean().default(true),
    session_timeout_ms: positiveInt.default(30_000),
    heartbeat_interval_ms: positiveInt.default(3_000),
    rebalance_timeout_ms: positiveInt.default(60_000),
    /** Fetch sizes: per partition and per request. */
    max_bytes_per_partition: positiveInt.default(1024 * 1024),
    max_bytes: positiveInt.default(10 * 1024 * 1024),
    /** Partitions whose batches are landed at the same time (they share group commits). */
    partitions_consumed_concurrently: positiveInt.max(256).default(8),
    /** How long start() waits to join the group before going on without it (it keeps retrying). */
    connect_timeout_ms: positiveInt.default(10_000),
    /** Larger record values are quarantined (with their first bytes only). */
    max_payload_bytes: positiveInt.default(1024 * 1024),
    routes: z.array(kafkaRouteSchema).min(1),
  })
  .superRefine((source, ctx) => {
    if (source.heartbeat_interval_ms >= source.session_timeout_ms) {
      ctx.addIssue({ code: 'custom', path: ['heartbeat_interval_ms'], message: 'must be below session_timeout_ms' });
    }
    const topics = new Set<string>();
    source.routes.forEach((route, r) => {
      if (topics.has(route.topic)) ctx.addIssue({ code: 'custom', path: ['routes', r, 'topic'], message: `topic "${route.topic}" has two routes` });
      topics.add(route.topic);
    });
  });
export type KafkaSourceConfig = z.infer<typeof kafkaSourceSchema>;

export const folderSourceSchema = z.strictObject({
  name: identifier,
  /** The drop folder, watched recursively. */
  path: z.string().min(1),
  dataset: identifier,
  /** Pattern of the path relative to the folder, e.g. `{line}/{camera}/{file}`; `{file}` is the file name. */
  path_pattern: z.string().min(1),
  /** Column name → source (`path_field`, `const`, `received_at`, `payload` for the blob column). */
  fields: z.record(identifier, fieldSourceSchema),
  /** Only file names matching this regular expression are taken. */
  include: z.string().default('.*'),
  max_file_bytes: positiveInt.default(64 * 1024 * 1024),
  /** A file is taken once its size and mtime have not changed for this long. */
  stable_ms: positiveInt.default(500),
  /** Move ingested files here instead of deleting them. */
  done_dir: z.string().optional(),
  /** Files ingested concurrently. */
  concurrency: positiveInt.max(64).default(4),
});
export type FolderSourceConfig = z.infer<typeof folderSourceSchema>;

const landingSchema = z.strictObject({
  /** A group commit holds at most this many rows… */
  group_commit_max_rows: positiveInt.default(1000),
  /** …and waits at most this long for more rows when the writer is idle. */
  group_commit_max_delay_ms: nonNegativeInt.default(1),
  /** How long dedupe and source keys are remembered. */
  dedupe_retention_hours: positiveInt.default(72),
  /** First retry delay after a failed commit (disk full, I/O error); doubles up to 30 s. */
  retry_initial_ms: positiveInt.default(200),
});

const hotSchema = z.strictObject({
  /** Landed rows become L0 Parquet files this often. */
  seal_interval_ms: positiveInt.default(1000),
  /**
   * Event-time window compacted into one L1 file per dataset and partition. Must divide
   * a day (1, 5, 10, 15, 20, 30, 60, …): a file holds rows of one UTC day. A central
   * policy may set it per dataset (agent/hot/dataset-settings.ts).
   */
  compaction_window_minutes: positiveInt.default(10).refine((m) => 1440 % m === 0, { message: 'must divide a day (1440 minutes): a window may not span two UTC days' }),
  /**
   * A window is compacted this long after it ends (room for late rows; a row later
   * than this goes to a small extra file of its window). Part of the delay before the
   * centre sees a row: window + grace + a compaction step + a commit interval.
   */
  compaction_grace_seconds: nonNegativeInt.default(15),
  compaction_interval_ms: positiveInt.default(10_000),
  /** Rows per Parquet row group. */
  row_group_rows: positiveInt.default(128 * 1024),
  /** Rows sealed into one L0 file at most. */
  seal_max_rows: positiveInt.default(500_000),
});

function constMismatch(value: string | number | boolean, type: ColumnType): string | null {
  switch (type) {
    case 'int':
    case 'long':
    case 'double':
      return typeof value === 'number' ? null : `a ${type} column needs a numeric const`;
    case 'boolean':
      return typeof value === 'boolean' ? null : 'a boolean column needs true or false';
    case 'string':
      return typeof value === 'boolean' ? 'a string column needs a string const' : null;
    default:
      return null;
  }
}

function pathPatternProblem(pattern: string): string | null {
  const segments = pattern.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return 'segments must not be empty, "." or ".."';
  const names = new Set<string>();
  for (const match of pattern.matchAll(PATH_PLACEHOLDER)) {
    const name = match[1]!;
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) return `placeholder {${name}} is not a lowercase identifier`;
    if (names.has(name)) return `placeholder {${name}} appears twice`;
    names.add(name);
  }
  if (/[{}]/.test(pattern.replace(PATH_PLACEHOLDER, ''))) return 'unbalanced { or }';
  return null;
}

const querySchema = z.strictObject({
  /** DuckDB memory limit for on-site SQL. */
  memory_limit_bytes: positiveInt.default(1024 * 1024 * 1024),
  threads: positiveInt.max(64).default(2),
  /** A query running longer is interrupted. */
  timeout_ms: positiveInt.default(30_000),
  /** At most this many rows, and this many bytes, are returned; the result says it was cut. */
  max_rows: positiveInt.default(1_000_000),
  max_result_bytes: positiveInt.default(256 * 1024 * 1024),
});

const latestSchema = z.strictObject({
  /** Recent readings kept in memory per stream for `/v1/window`. */
  window_minutes: positiveInt.default(15),
  /** Memory bound of the latest-value cache and windows together. */
  max_bytes: positiveInt.default(128 * 1024 * 1024),
});

const apiTokenSchema = z.strictObject({
  name: identifier,
  role: z.enum(['read', 'admin']),
  token: secretRef,
});

const apiSchema = z.strictObject({
  /** Loopback by default: the API is for the plant network only when configured so. */
  listen_host: z.string().min(1).default('127.0.0.1'),
  listen_port: z.number().int().min(0).max(65535).default(7070),
  tls: z.strictObject({ cert_file: z.string(), key_file: z.string() }).optional(),
  /** Without tokens the API needs no authentication (loopback only is then enforced). */
  tokens: z.array(apiTokenSchema).default([]),
});

const metricsSchema = z.strictObject({
  /**
   * Streams exported one by one as `lakeside_stream_freshness_seconds` series; the
   * first ones seen keep their series, later ones only count in the per-dataset
   * aggregates (bounded cardinality for Prometheus).
   */
  max_stream_series: nonNegativeInt.max(100_000).default(500),
});

const feedGapSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** A stream is late when silent for k × its learned cadence… */
    k: z.number().min(1).default(5),
    /** …but never less than this… */
    floor_seconds: z.number().positive().default(30),
    /** …and never more than this. */
    ceiling_seconds: z.number().positive().default(3600),
    /** Arrivals seen before a stream's cadence is trusted (no alert before). */
    min_samples: positiveInt.default(5),
    /** How often silences are checked. */
    check_interval_ms: positiveInt.default(1000),
    /** Streams watched at most (more are counted, not watched). */
    max_streams: positiveInt.default(20_000),
  })
  .refine((f) => f.ceiling_seconds >= f.floor_seconds, { path: ['ceiling_seconds'], message: 'must be at least floor_seconds' });

const alertsSchema = z.strictObject({
  feed_gap: feedGapSchema.default(feedGapSchema.parse({})),
  /** Alerts are also published to this topic as JSON (QoS 1; `retain` keeps the last one for new subscribers). */
  mqtt: z
    .strictObject({
      url: mqttUrl,
      topic: z.string().min(1).refine((t) => !/[+#]/.test(t), 'a publish topic has no wildcards'),
      client_id: z.string().min(1).max(200).default('lakeside-alerts'),
      username: z.string().optional(),
      password: secretRef.optional(),
      tls: tlsSchema.optional(),
      retain: z.boolean().default(false),
    })
    .optional(),
  /** Alerts are also POSTed here as JSON, with a timeout and retries, off the ingest path. */
  webhook: z
    .strictObject({
      url: z.string().regex(/^https?:\/\/\S+$/, 'expected an http:// or https:// URL'),
      /** Sent as `Authorization: Bearer <token>`. */
      bearer_token: secretRef.optional(),
      timeout_ms: positiveInt.default(5000),
      retries: nonNegativeInt.max(20).default(3),
      retry_initial_ms: positiveInt.default(500),
    })
    .optional(),
});
export type AlertsConfig = z.infer<typeof alertsSchema>;

export const configSchema = z
  .strictObject({
    /** This plant's id; a column of every table in the central catalog. */
    plant: identifier,
    /** This agent's id; unique per running agent. Defaults to the plant id. */
    agent_id: identifier.optional(),
    state_dir: z.string().min(1).default('/var/lib/lakeside'),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    landing: landingSchema.default(landingSchema.parse({})),
    hot: hotSchema.default(hotSchema.parse({})),
    query: querySchema.default(querySchema.parse({})),
    latest: latestSchema.default(latestSchema.parse({})),
    api: apiSchema.default(apiSchema.parse({})),
    metrics: metricsSchema.default(metricsSchema.parse({})),
    alerts: alertsSchema.default(alertsSchema.parse({})),
    tiering: tieringSchema.default(() => tieringSchema.parse({})),
    catalog: catalogSchema.default(() => catalogSchema.parse({})),
    /** Central tiering policies (signed, fetched, applied live); unset: the config file's tiering settings rule. */
    policy: agentPolicyConfigSchema.optional(),
    datasets: z.array(datasetSchema).min(1),
    sources: z
      .strictObject({
        mqtt: z.array(mqttSourceSchema).default([]),
        kafka: z.array(kafkaSourceSchema).default([]),
        folders: z.array(folderSourceSchema).default([]),
      })
      .default({ mqtt: [], kafka: [], folders: [] }),
  })
  .superRefine((config, ctx) => {
    const datasets = new Map(config.datasets.map((d) => [d.name, d]));
    const seenDatasets = new Set<string>();
    config.datasets.forEach((dataset, index) => {
      if (seenDatasets.has(dataset.name)) {
        ctx.addIssue({ code: 'custom', path: ['datasets', index, 'name'], message: `duplicate dataset "${dataset.name}"` });
      }
      seenDatasets.add(dataset.name);
    });
    for (const name of Object.keys(config.tiering.datasets)) {
      if (!datasets.has(name)) ctx.addIssue({ code: 'custom', path: ['tiering', 'datasets', name], message: `unknown dataset "${name}"` });
    }
    const sourceNames = new Set<string>();
    const checkName = (name: string, path: (string | number)[]) => {
      if (sourceNames.has(name)) ctx.addIssue({ code: 'custom', path, message: `duplicate source name "${name}"` });
      sourceNames.add(name);
    };
    const checkFields = (datasetName: string, fields: Record<string, FieldSource>, path: (string | number)[]) => {
      const dataset = datasets.get(datasetName);
      if (!dataset) {
        ctx.addIssue({ code: 'custom', path: [...path, 'dataset'], message: `unknown dataset "${datasetName}"` });
        return;
      }
      const columns = new Map<string, ColumnType>([[dataset.time_column, 'timestamp']]);
      for (const column of dataset.columns) columns.set(column.name, column.type);
      for (const [name, source] of Object.entries(fields)) {
        const type = columns.get(name);
        if (!type) {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: `dataset "${datasetName}" has no column "${name}"` });
          continue;
        }
        if (source.payload && type !== 'blob') {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name, 'payload'], message: 'payload can only fill a blob column' });
        }
        if (type === 'blob' && !source.payload) {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: 'a blob column is filled from the payload (payload: true)' });
        }
        if (source.format && type !== 'timestamp') {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name, 'format'], message: 'format applies to time columns only' });
        }
        const textual =
          source.json !== undefined ||
          source.topic_level !== undefined ||
          source.path_field !== undefined ||
          source.const !== undefined ||
          source.kafka_key !== undefined ||
          source.kafka_header !== undefined;
        if (type === 'timestamp' && textual && !source.format) {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: 'a time column read from the message needs a format (epoch_s, epoch_ms, epoch_us or iso8601)' });
        }
        if ((source.received_at || source.file_mtime || source.kafka_timestamp) && type !== 'timestamp') {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: 'received_at, file_mtime and kafka_timestamp fill time columns only' });
        }
        if ((source.kafka_partition || source.kafka_offset) && !['int', 'long', 'string'].includes(type)) {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: 'kafka_partition and kafka_offset fill int, long or string columns' });
        }
        if (source.kafka_topic && type !== 'string') {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields', name], message: 'kafka_topic fills a string column' });
        }
        const constProblem = source.const === undefined ? null : constMismatch(source.const, type);
        if (constProblem) ctx.addIssue({ code: 'custom', path: [...path, 'fields', name, 'const'], message: constProblem });
      }
      if (!fields[dataset.time_column]) {
        ctx.addIssue({ code: 'custom', path: [...path, 'fields'], message: `the time column "${dataset.time_column}" needs a source (json, topic_level, path_field or kafka_key/kafka_header with a format, or received_at/file_mtime/kafka_timestamp: true)` });
      }
      for (const column of dataset.columns) {
        if (!column.nullable && !fields[column.name]) {
          ctx.addIssue({ code: 'custom', path: [...path, 'fields'], message: `non-nullable column "${column.name}" needs a source` });
        }
      }
    };
    config.sources.mqtt.forEach((source, i) => {
      checkName(source.name, ['sources', 'mqtt', i, 'name']);
      source.routes.forEach((route, r) => {
        checkFields(route.dataset, route.fields, ['sources', 'mqtt', i, 'routes', r]);
        const usesPayload = Object.values(route.fields).some((f) => f.payload);
        const usesJson = Object.values(route.fields).some((f) => f.json !== undefined);
        if (route.payload === 'binary' && usesJson) {
          ctx.addIssue({ code: 'custom', path: ['sources', 'mqtt', i, 'routes', r, 'payload'], message: 'a binary payload has no JSON fields' });
        }
        for (const [name, field] of Object.entries(route.fields)) {
          if (field.path_field !== undefined || field.file_mtime || KAFKA_FIELD_KINDS.some((k) => field[k] !== undefined)) {
            ctx.addIssue({ code: 'custom', path: ['sources', 'mqtt', i, 'routes', r, 'fields', name], message: 'MQTT fields come from topic_level, json, const, received_at or payload' });
          }
        }
        if (usesPayload && route.payload !== 'binary') {
          ctx.addIssue({ code: 'custom', path: ['sources', 'mqtt', i, 'routes', r, 'payload'], message: 'a route that stores the payload as a blob needs payload: binary' });
        }
      });
    });
    config.sources.kafka.forEach((source, i) => {
      checkName(source.name, ['sources', 'kafka', i, 'name']);
      source.routes.forEach((route, r) => {
        const where = ['sources', 'kafka', i, 'routes', r];
        checkFields(route.dataset, route.fields, where);
        const usesPayload = Object.values(route.fields).some((f) => f.payload);
        const usesJson = Object.values(route.fields).some((f) => f.json !== undefined);
        if (route.payload === 'binary' && usesJson) ctx.addIssue({ code: 'custom', path: [...where, 'payload'], message: 'a binary payload has no JSON fields' });
        if (usesPayload && route.payload !== 'binary') {
          ctx.addIssue({ code: 'custom', path: [...where, 'payload'], message: 'a route that stores the value as a blob needs payload: binary' });
        }
        for (const [name, field] of Object.entries(route.fields)) {
          if (field.path_field !== undefined || field.file_mtime || field.topic_level !== undefined) {
            ctx.addIssue({ code: 'custom', path: [...where, 'fields', name], message: 'Kafka fields come from json, kafka_key, kafka_header, kafka_timestamp, kafka_topic, kafka_partition, kafka_offset, const, received_at or payload' });
          }
        }
      });
    });
    config.sources.folders.forEach((source, i) => {
      checkName(source.name, ['sources', 'folders', i, 'name']);
      checkFields(source.dataset, source.fields, ['sources', 'folders', i]);
      const blobColumn = datasets.get(source.dataset)?.columns.find((c) => c.type === 'blob');
      if (datasets.has(source.dataset) && !blobColumn) {
        ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'dataset'], message: `dataset "${source.dataset}" has no blob column to hold the files` });
      } else if (blobColumn && !source.fields[blobColumn.name]?.payload) {
        ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'fields'], message: `the file goes into the blob column: add ${blobColumn.name}: { payload: true }` });
      }
      for (const [name, field] of Object.entries(source.fields)) {
        if (field.json !== undefined || field.topic_level !== undefined || KAFKA_FIELD_KINDS.some((k) => field[k] !== undefined)) {
          ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'fields', name], message: 'folder fields come from path_field, const, received_at, file_mtime or payload' });
        }
        if (field.path_field && !source.path_pattern.includes(`{${field.path_field}}`)) {
          ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'fields', name, 'path_field'], message: `path_pattern has no {${field.path_field}}` });
        }
      }
      const problem = pathPatternProblem(source.path_pattern);
      if (problem) ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'path_pattern'], message: problem });
      try {
        new RegExp(source.include);
      } catch {
        ctx.addIssue({ code: 'custom', path: ['sources', 'folders', i, 'include'], message: 'not a valid regular expression' });
      }
    });
  });

/** The config as written (after defaults), before secrets are resolved. */
export type LakesideConfig = z.infer<typeof configSchema>;
