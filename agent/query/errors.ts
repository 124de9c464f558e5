/**
 * The errors of on-site SQL. Each carries a stable `code` that the API, the logs and
 * the README share, and DuckDB's message without a stack. None is `retriable`: the
 * same SQL fails the same way (a timeout may pass with a narrower query).
 */

export type QueryErrorCode = 'QUERY_NOT_ALLOWED' | 'QUERY_TIMEOUT' | 'QUERY_FAILED';

abstract class QueryError extends Error {
  abstract readonly code: QueryErrorCode;
  readonly retriable = false;
}

/**
 * Refused before or instead of running: not one statement, a statement type outside
 * the allow-list, or an access the sandbox denies (DuckDB "Permission Error").
 * `statementType` names what was refused (e.g. `INSERT`, `COPY`, `MULTIPLE`, `SANDBOX`).
 */
export class QueryRejectedError extends QueryError {
  readonly code = 'QUERY_NOT_ALLOWED' as const;
  readonly statementType: string;
  constructor(statementType: string, message: string) {
    super(message);
    this.name = 'QueryRejectedError';
    this.statementType = statementType;
  }
}

/** The query ran past its timeout and was interrupted inside DuckDB. */
export class QueryTimeoutError extends QueryError {
  readonly code = 'QUERY_TIMEOUT' as const;
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`query interrupted after its timeout of ${timeoutMs} ms`);
    this.name = 'QueryTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** DuckDB refused or failed the query (syntax, binding, a runtime error, out of memory); the message is DuckDB's. */
export class QueryFailedError extends QueryError {
  readonly code = 'QUERY_FAILED' as const;
  constructor(message: string) {
    super(message);
    this.name = 'QueryFailedError';
  }
}

export type AnyQueryError = QueryRejectedError | QueryTimeoutError | QueryFailedError;

export function isQueryError(error: unknown): error is AnyQueryError {
  return error instanceof QueryRejectedError || error instanceof QueryTimeoutError || error instanceof QueryFailedError;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A hot-tier file vanished between binding and reading (compaction unlinked it). */
export function isMissingFileError(error: unknown): boolean {
  const message = messageOf(error);
  return /^IO Error: (No files found that match the pattern|Cannot open file)/.test(message) || /No such file or directory/.test(message);
}

/** DuckDB's sandbox refusal (enable_external_access=false, allowed_directories, locked configuration). */
export function isSandboxError(error: unknown): boolean {
  const message = messageOf(error);
  return message.startsWith('Permission Error') || message.includes('the configuration has been locked');
}
