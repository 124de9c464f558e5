/**
 * What the HTTP API needs from the rest of the agent. The API owns these interfaces;
 * the composition root adapts the query engine, latest-value cache, hot-tier
 * registry, blob store and health to them. Ports signal expected failures by throwing
 * an Error with a `code` property (`PortErrorCode`); any other error is a 500.
 */

export interface QueryColumn {
  name: string;
  /** The engine's type name, e.g. DOUBLE, BIGINT, VARCHAR, BOOLEAN, TIMESTAMP WITH TIME ZONE. */
  type: string;
}

export interface QueryOptions {
  timeoutMs?: number;
  maxRows?: number;
  /**
   * Fetch the evicted data files whose events overlap [fromUs, toUs) (of `dataset`, or of
   * every dataset) from warm/cold into the read cache first, so the views include them;
   * `auto`: the range the query's own WHERE bounds put on each dataset's time column
   * (400 if it does not bound every dataset it reads); `if-bounded` (the default of
   * POST /v1/query): that range when the WHERE bounds every dataset, else local files only.
   */
  includeWarm?: WarmRange | 'auto' | 'if-bounded';
}

export interface WarmRange {
  fromUs: number;
  toUs: number;
  dataset?: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  rows: unknown[][];
  truncated: boolean;
  elapsedMs: number;
}

/**
 * A result delivered in batches. The promise of `queryStream` settles once the
 * columns are known, so refusals and SQL errors still become a status code; an error
 * thrown by `batches` after that ends the response early (see the format writers).
 */
export interface QueryStream {
  columns: QueryColumn[];
  batches: AsyncIterable<unknown[][]>;
  /** Valid once `batches` is exhausted. */
  summary(): { truncated: boolean; elapsedMs: number };
}

export interface QueryPort {
  query(sql: string, opts: QueryOptions): Promise<QueryResult>;
  queryStream?(sql: string, opts: QueryOptions): Promise<QueryStream>;
}

export interface LatestEntry {
  stream: Record<string, string>;
  time: string;
  timeUs: number;
  values: Record<string, unknown>;
}

export interface LatestPort {
  /** Latest value of every stream of `dataset` whose key matches `filter` (all given keys equal). */
  latest(dataset: string, filter?: Record<string, string>): LatestEntry[];
  /** The last `minutes` of one stream, oldest first, at most `limit` rows (the newest). */
  window(dataset: string, stream: Record<string, string>, minutes: number, limit?: number): { columns: string[]; rows: unknown[][] };
  /**
   * The same window with its rows already as JSON text (the text of `rows`, values
   * JSON-safe as jsonValue makes them); when given, /v1/window sends it without building
   * or re-serialising row arrays.
   */
  windowJson?(dataset: string, stream: Record<string, string>, minutes: number, limit?: number): { columns: string[]; rowsJson: Uint8Array };
}

export interface DatasetInfo {
  name: string;
  columns: QueryColumn[];
  rows: number;
  minTime: string | null;
  maxTime: string | null;
  streams: { stream: Record<string, string>; lastTime: string }[];
}

export interface DatasetsPort {
  datasets(): Promise<DatasetInfo[]>;
}

export interface HealthStatus {
  ok: boolean;
  reasons: string[];
}

export interface HealthPort {
  health(): HealthStatus;
  ready(): HealthStatus;
}

export interface BlobInfo {
  sizeBytes: number;
  contentType: string | null;
}

export interface BlobsPort {
  /** Local path of a blob (BlobStore.pathOf); only called with a validated sha256. */
  blobPath(sha256: string): string;
  /** The `blobs` row of a hash, or null when the agent never stored it. */
  blobInfo(sha256: string): BlobInfo | null;
  /**
   * For a blob no longer on local disk (evicted after it was committed): fetches it from
   * warm/cold into the read cache and returns that path; null when it cannot.
   */
  fetchEvicted?(sha256: string): Promise<string | null>;
}

export interface ConfigPort {
  /** The running config with secrets replaced (redactConfig). */
  redacted(): unknown;
}

/** Codes a port may throw (on `error.code`); the API maps them to responses. */
export const PortErrorCode = {
  queryNotAllowed: 'QUERY_NOT_ALLOWED',
  queryFailed: 'QUERY_FAILED',
  queryTimeout: 'QUERY_TIMEOUT',
  unknownDataset: 'UNKNOWN_DATASET',
  /** include_warm: the range's evicted files do not fit in the read cache. */
  cacheBudgetExceeded: 'CACHE_BUDGET_EXCEEDED',
  /** include_warm: an evicted file could not be fetched back. */
  warmUnavailable: 'WARM_UNAVAILABLE',
  /** A caller mistake the port detects, e.g. an incomplete stream key for a window. */
  badRequest: 'BAD_REQUEST',
} as const;

export interface MetricsPort {
  /** The Prometheus text exposition of every metric, brought up to date. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface StatusPort {
  /** The daemon's state for `lakeside status`: health, readiness, landing, disk, streams, open alerts. */
  status(): Promise<Record<string, unknown>>;
}
