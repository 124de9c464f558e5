/**
 * One running query on its own DuckDB connection: the statement check, the timeout,
 * the row and byte caps, and the release of the connection.
 *
 * Invariants:
 * - the connection is used by this query only, so `interrupt()` stops this query and
 *   no other; it is disconnected exactly once, after any DuckDB call in flight has
 *   settled (never under a running native call);
 * - the timeout runs from `open()` to the end of reading (a slow reader of a stream
 *   counts): when it fires, the query is interrupted inside DuckDB and the reader
 *   gets QueryTimeoutError;
 * - at most `maxRows` rows and `maxBytes` bytes (the UTF-8 size of each row's JSON
 *   text) are delivered; reading stops there and `truncated` is true only if rows
 *   were left unread;
 * - rows arrive in DuckDB's chunks (≤ 2048 rows), converted by json-values.ts;
 * - a query that fails after its first chunk never looks complete: DuckDB's streaming
 *   fetch (@duckdb/node-api 1.5) returns the same empty chunk for "done" and for an
 *   error or an interrupt, and does not expose the error. So the query runs in a
 *   transaction of its own, and when the chunks run out a probe statement on the same
 *   connection fails if that transaction was aborted (a timeout or a stop says so
 *   itself); the reader then gets an error instead of the end of the rows.
 */
import type { DuckDBConnection, DuckDBDataChunk, DuckDBResult, Json } from '@duckdb/node-api';
import { QueryFailedError, QueryRejectedError, QueryTimeoutError, isQueryError, isSandboxError, messageOf, type AnyQueryError } from './errors.ts';
import { jsonSafeConverter } from './json-values.ts';
import { prepareAllowed } from './statement-guard.ts';

export interface QueryOptions {
  timeoutMs?: number;
  maxRows?: number;
  maxBytes?: number;
}

export interface QueryLimits {
  timeoutMs: number;
  maxRows: number;
  maxBytes: number;
}

export interface QueryColumn {
  name: string;
  /** DuckDB's type name, e.g. `TIMESTAMP WITH TIME ZONE`, `DOUBLE`, `VARCHAR`. */
  type: string;
}

export type QueryRow = Json[];

export interface QueryResult {
  columns: QueryColumn[];
  rows: QueryRow[];
  truncated: boolean;
  elapsedMs: number;
}

/** A result read chunk by chunk. Iterate once; `close()` (idempotent) releases it early. */
export interface QueryStream extends AsyncIterable<QueryRow[]> {
  readonly columns: QueryColumn[];
  /** True once a cap stopped the reading with rows left. Final after iteration ends. */
  readonly truncated: boolean;
  /** Rows delivered so far. */
  readonly rowCount: number;
  close(): Promise<void>;
}

export class QueryRun implements QueryStream {
  columns: QueryColumn[] = [];
  truncated = false;
  rowCount = 0;
  private readonly connection: DuckDBConnection;
  private readonly limits: QueryLimits;
  private readonly onClosed: () => void;
  private result: DuckDBResult | null = null;
  private pending: DuckDBDataChunk | null = null;
  private inflight: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private timedOut = false;
  private stopped = false;
  private closing: Promise<void> | null = null;
  private iterated = false;

  constructor(connection: DuckDBConnection, limits: QueryLimits, onClosed: () => void) {
    this.connection = connection;
    this.limits = limits;
    this.onClosed = onClosed;
  }

  /** Starts the timeout clock (call before waiting for anything on the query's behalf). */
  startClock(): void {
    this.timer ??= setTimeout(() => this.interrupt('timeout'), this.limits.timeoutMs);
    this.timer.unref?.();
  }

  /** Checks and starts `sql`, and reads its first chunk, so that failures surface here rather than mid-stream. */
  async open(sql: string): Promise<void> {
    this.startClock();
    try {
      await this.call(this.connection.run('BEGIN TRANSACTION')); // see the header: errors after the first chunk
      const prepared = await this.call(prepareAllowed(this.connection, sql));
      const result = await this.call(prepared.stream());
      this.result = result;
      const types = result.columnTypes();
      this.columns = result.columnNames().map((name, i) => ({ name, type: types[i]!.toString() }));
      this.pending = await this.fetch();
    } catch (error) {
      await this.close();
      throw this.mapError(error);
    }
  }

  /** `timeout`: the query's own clock; `stop`: the engine is stopping. */
  interrupt(reason: 'timeout' | 'stop'): void {
    if (this.closing) return;
    if (reason === 'timeout') this.timedOut = true;
    else this.stopped = true;
    this.connection.interrupt();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<QueryRow[]> {
    if (this.iterated) throw new QueryFailedError('a query stream can be read only once');
    this.iterated = true;
    let bytes = 0;
    try {
      let chunk = this.pending;
      this.pending = null;
      while (chunk && chunk.rowCount > 0) {
        const rows = chunk.convertRows(jsonSafeConverter);
        const out: QueryRow[] = [];
        for (const row of rows) {
          bytes += Buffer.byteLength(JSON.stringify(row)) + 1;
          if (this.rowCount >= this.limits.maxRows || bytes > this.limits.maxBytes) {
            this.truncated = true;
            break;
          }
          out.push(row);
          this.rowCount++;
        }
        if (out.length > 0) yield out;
        if (this.truncated) return;
        chunk = await this.fetch();
      }
      await this.confirmComplete();
    } catch (error) {
      throw this.mapError(error);
    } finally {
      await this.close();
    }
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      // A result still being produced: stop it before letting go of the connection.
      this.connection.interrupt();
      await this.inflight.catch(() => undefined);
      try {
        this.connection.disconnectSync();
      } finally {
        this.onClosed();
      }
    })());
  }

  /** After the last chunk: throws if the query did not really finish (see the header). */
  private async confirmComplete(): Promise<void> {
    if (this.timedOut) throw new QueryTimeoutError(this.limits.timeoutMs);
    if (this.stopped) throw new QueryFailedError('query engine stopped');
    try {
      await this.call(this.connection.run('SELECT 1'));
    } catch {
      throw new QueryFailedError(
        `the query failed after ${this.rowCount} row(s) had been sent (DuckDB does not report the error of a streamed result; run it again with LIMIT, or check the casts and functions it applies to later rows)`,
      );
    }
  }

  private async fetch(): Promise<DuckDBDataChunk | null> {
    if (this.timedOut) throw new QueryTimeoutError(this.limits.timeoutMs);
    if (this.stopped) throw new QueryFailedError('query engine stopped');
    if (!this.result) return null;
    return this.call(this.result.fetchChunk());
  }

  /** Tracks a native call so `close()` can wait for it. */
  private call<T>(promise: Promise<T>): Promise<T> {
    this.inflight = promise;
    return promise;
  }

  mapError(error: unknown): AnyQueryError {
    if (this.timedOut) return error instanceof QueryTimeoutError ? error : new QueryTimeoutError(this.limits.timeoutMs);
    if (this.stopped) return new QueryFailedError('query engine stopped');
    if (isQueryError(error)) return error;
    if (isSandboxError(error)) return new QueryRejectedError('SANDBOX', messageOf(error));
    return new QueryFailedError(messageOf(error));
  }
}
