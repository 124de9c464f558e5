/**
 * The HTTP API's stable error codes: one place, shared by responses, logs and the
 * README. Every error response is `{ error: { code, message } }` with one of these
 * codes and the status given here; a code never changes meaning once released.
 */

export const ApiErrorCode = {
  badRequest: 'BAD_REQUEST',
  unauthenticated: 'UNAUTHENTICATED',
  forbidden: 'FORBIDDEN',
  notFound: 'NOT_FOUND',
  payloadTooLarge: 'PAYLOAD_TOO_LARGE',
  unsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  queryNotAllowed: 'QUERY_NOT_ALLOWED',
  queryFailed: 'QUERY_FAILED',
  queryTimeout: 'QUERY_TIMEOUT',
  unknownDataset: 'UNKNOWN_DATASET',
  cacheBudgetExceeded: 'CACHE_BUDGET_EXCEEDED',
  warmUnavailable: 'WARM_UNAVAILABLE',
  badBlobId: 'BAD_BLOB_ID',
  blobNotFound: 'BLOB_NOT_FOUND',
  rangeNotSatisfiable: 'RANGE_NOT_SATISFIABLE',
  unhealthy: 'UNHEALTHY',
  notReady: 'NOT_READY',
  internal: 'INTERNAL',
  /** Not a response: startApiServer refuses a non-loopback listen address without tokens. */
  exposedWithoutTokens: 'API_EXPOSED_WITHOUT_TOKENS',
} as const;

export type ApiErrorCodeValue = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

/** HTTP status of each response code (a query timeout is the server giving up: 504, not 408, which clients retry). */
export const statusOf: Record<ApiErrorCodeValue, number> = {
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  QUERY_NOT_ALLOWED: 400,
  QUERY_FAILED: 422,
  QUERY_TIMEOUT: 504,
  UNKNOWN_DATASET: 404,
  CACHE_BUDGET_EXCEEDED: 507,
  WARM_UNAVAILABLE: 503,
  BAD_BLOB_ID: 400,
  BLOB_NOT_FOUND: 404,
  RANGE_NOT_SATISFIABLE: 416,
  UNHEALTHY: 503,
  NOT_READY: 503,
  INTERNAL: 500,
  API_EXPOSED_WITHOUT_TOKENS: 500,
};

/** One line per code, for the README's error table. */
export const describeCode: Record<ApiErrorCodeValue, string> = {
  BAD_REQUEST: 'the request body or a parameter is invalid; the message names the field',
  UNAUTHENTICATED: 'no bearer token, or one that matches no configured token',
  FORBIDDEN: 'the token is valid but its role may not use this route (admin routes)',
  NOT_FOUND: 'no such route',
  PAYLOAD_TOO_LARGE: 'the request body is larger than the server accepts',
  UNSUPPORTED_MEDIA_TYPE: 'the request body is not application/json',
  QUERY_NOT_ALLOWED: 'the SQL is refused by the sandbox (only SELECT, WITH, EXPLAIN, DESCRIBE, SHOW over the hot tier)',
  QUERY_FAILED: 'the SQL could not be executed (syntax, unknown column, type error)',
  QUERY_TIMEOUT: 'the query ran past its timeout and was interrupted',
  UNKNOWN_DATASET: 'no dataset of that name',
  CACHE_BUDGET_EXCEEDED: 'include_warm: the evicted files of that range are larger than the read cache (tiering.read_cache_max_bytes)',
  WARM_UNAVAILABLE: 'include_warm: an evicted file of that range could not be fetched (no warm/cold store configured, the object is missing, or the store failed)',
  BAD_BLOB_ID: 'a blob id is 64 lowercase hex characters (its sha256)',
  BLOB_NOT_FOUND: 'no blob with that sha256 on this agent',
  RANGE_NOT_SATISFIABLE: 'the Range header lies outside the blob',
  UNHEALTHY: 'liveness failed (/healthz); the reasons say why',
  NOT_READY: 'not ready to serve (/readyz); the reasons say why',
  INTERNAL: 'an unexpected server error; the log holds the details',
  API_EXPOSED_WITHOUT_TOKENS: 'start-up refused: api.listen_host is not loopback and api.tokens is empty',
};
