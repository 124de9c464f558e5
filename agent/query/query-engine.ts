/**
 * On-site SQL: DuckDB in memory over the hot tier (DESIGN flow step 10).
 *
 * Invariants:
 * - One view per dataset, named as the dataset, over exactly the files `hot_files`
 *   registers (L0 + L1; views.ts) plus the evicted files fetched back into the
 *   read-through cache (`<state_dir>/cache/data/<dataset>/`, tiering/data-cache.ts;
 *   an evicted file is no longer in `hot_files`, so no file is listed twice; the cache
 *   directory is re-read at every refresh and every `quarantineRefreshMs`, so files
 *   `lakeside backfill` adds appear within ~2 s); and `<dataset>_1m`, per-minute
 *   rollups per stream, over its registered rollup files (level 2) for a dataset with numeric columns
 *   (rollup-view.ts; only compacted windows: window end + grace). A `_1m` name taken
 *   by a dataset or the quarantine table is not created (logged at start). A row is visible to SQL once it is sealed: rows
 *   still in the landing log are not (DuckDB has no SQLite reader offline). The
 *   sealer seals every `seal_interval_ms` (~2 s) and emits `files-changed`, which the
 *   daemon passes to `refresh()`: a row acknowledged is visible within the seal
 *   interval + the seal's own time + one refresh.
 * - A refresh replaces views with CREATE OR REPLACE VIEW, one dataset at a time,
 *   serialised. A running query bound its file list when it started and keeps it.
 *   A file compaction unlinks while a query still reads it fails that query with a
 *   missing-file error: the engine then re-reads the registry and runs the query
 *   once more (only if it had delivered no rows). Registered files that are missing
 *   on disk are left out of the view (and logged) rather than breaking it.
 * - `quarantine` is a DuckDB table holding the newest `quarantineRows` rows of the
 *   landing log's quarantine without payload bytes (payload_bytes gives the size),
 *   refreshed with every refresh and every `quarantineRefreshMs`.
 * - Every query runs on its own connection inside the sandbox (sandbox.ts) after the
 *   statement allow-list (statement-guard.ts), with a timeout and row/byte caps
 *   (query-run.ts). DuckDB runs on its own threads; the Node event loop only converts
 *   result chunks. At most `maxConcurrent` queries execute at once (the rest wait,
 *   within their timeout): each executing native call holds a libuv pool thread, and
 *   the pool (4 threads by default) is shared with file I/O that ingestion needs.
 * - Timestamps come back as ISO-8601 UTC strings with µs, big integers as numbers
 *   when safe else strings (json-values.ts). SQL date functions on timestamptz use
 *   DuckDB's TimeZone, the host's zone.
 *
 * Lifecycle (agent/lifecycle.ts): the constructor does no I/O; `start()` opens DuckDB,
 * locks the sandbox and builds every view; `stop()` interrupts running queries,
 * waits for them to release their connections and closes; safe to call twice.
 */
import { DuckDBInstance, timestampTZValue, type DuckDBConnection } from '@duckdb/node-api';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cachedDataByDataset, DATA_CACHE_DIR } from '../../tiering/data-cache-dir.ts';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import type { DatasetConfig, LakesideConfig } from '../../config/schema.ts';
import { HOT_DIR } from '../hot/paths.ts';
import type { FilesChanged } from '../hot/sealer.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import { QueryFailedError, isMissingFileError, messageOf } from './errors.ts';
import { RegistryReader } from './registry-reader.ts';
import { QueryRun, type QueryOptions, type QueryResult, type QueryRow, type QueryStream } from './query-run.ts';
import { sandboxStatements } from './sandbox.ts';
import { QUARANTINE_TABLE, createQuarantineSql, datasetViewSql, filesShareSchema } from './views.ts';
import { rollupSchema, type RollupSchema } from '../hot/rollup-schema.ts';
import { overlappingRollupFiles, rollupViewSql } from './rollup-view.ts';
import { timeRangeOf, type TimeLiteral, type TimeRangeOf } from './time-bounds.ts';

/** Types a time literal may be cast to in a bound `include_warm: "auto"` reads. */
const TIME_CASTS = new Set(['TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'DATE', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS', 'VARCHAR']);

export type { QueryColumn, QueryOptions, QueryResult, QueryRow, QueryStream } from './query-run.ts';
export { QueryFailedError, QueryRejectedError, QueryTimeoutError, isQueryError, type AnyQueryError } from './errors.ts';

export interface QueryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface QueryEngineOptions {
  stateDir: string;
  /** The landing database (read-only here). */
  dbPath: string;
  datasets: DatasetConfig[];
  query: LakesideConfig['query'];
  logger: QueryLogger;
  /** Queries executing at once at most (default 2); others wait within their timeout. */
  maxConcurrent?: number;
  /** Newest quarantine rows kept in the `quarantine` table (default 1000). */
  quarantineRows?: number;
  /** How often the quarantine table and the read cache's listing are refreshed besides every `refresh()` (default 2000 ms; 0 = only on refresh). */
  quarantineRefreshMs?: number;
}

/** A FIFO of waiters for a limited number of slots. */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

export class QueryEngine implements Component {
  readonly name = 'query-engine';
  private readonly options: QueryEngineOptions;
  private readonly datasets: Dataset[];
  /** Dataset name → its rollup schema, for datasets that get a `_1m` view. */
  private readonly rollups = new Map<string, RollupSchema>();
  private readonly hiddenRollups: string[] = [];
  private readonly slots: Slots;
  private instance: DuckDBInstance | null = null;
  /** Owns views and the quarantine table; operators never get it. */
  private admin: DuckDBConnection | null = null;
  private registry: RegistryReader | null = null;
  private realStateDir = '';
  private hotDir = '';
  private cacheDir = '';
  /** The cache directory's listing the views were last built from. */
  private cacheKey = '';
  private readonly viewFiles = new Map<string, string>();
  private readonly running = new Set<QueryRun>();
  private refreshTail: Promise<unknown> = Promise.resolve();
  private quarantineTimer: NodeJS.Timeout | null = null;
  private quarantineMaxId = 0;
  private quarantineEnabled = true;
  private stopping = false;

  constructor(options: QueryEngineOptions) {
    this.options = options;
    this.datasets = options.datasets.map(resolveDataset);
    const taken = new Set([...this.datasets.map((d) => d.name), QUARANTINE_TABLE]);
    for (const dataset of this.datasets) {
      const schema = rollupSchema(dataset);
      if (!schema) continue;
      if (taken.has(schema.dataset.name)) this.hiddenRollups.push(schema.dataset.name);
      else this.rollups.set(dataset.name, schema);
    }
    this.slots = new Slots(options.maxConcurrent ?? 2);
  }

  async start(): Promise<void> {
    if (this.instance) return;
    const o = this.options;
    mkdirSync(join(o.stateDir, HOT_DIR), { recursive: true });
    // DuckDB compares real paths: a state dir reached through a symlink must be resolved.
    this.realStateDir = realpathSync(o.stateDir);
    this.hotDir = join(this.realStateDir, HOT_DIR);
    this.cacheDir = join(this.realStateDir, DATA_CACHE_DIR);
    mkdirSync(this.cacheDir, { recursive: true });
    this.registry = new RegistryReader(o.dbPath);
    const instance = await DuckDBInstance.create(':memory:');
    this.instance = instance;
    const admin = await instance.connect();
    this.admin = admin;
    for (const statement of sandboxStatements(this.hotDir, o.query, [this.cacheDir])) await admin.run(statement);
    if (this.datasets.some((d) => d.name === QUARANTINE_TABLE)) {
      this.quarantineEnabled = false;
      o.logger.warn({ code: 'QUERY_QUARANTINE_HIDDEN' }, 'a dataset is named "quarantine": the quarantine table is not exposed to SQL');
    } else {
      await admin.run(createQuarantineSql);
    }
    if (this.hiddenRollups.length > 0) {
      o.logger.warn({ code: 'QUERY_ROLLUP_VIEW_HIDDEN', views: this.hiddenRollups }, 'a rollup view name is taken by a dataset or the quarantine table: not created');
    }
    await this.refreshFromRegistry();
    const every = o.quarantineRefreshMs ?? 2000;
    if (every > 0) this.scheduleQuarantine(every);
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    if (this.quarantineTimer) clearTimeout(this.quarantineTimer);
    for (const run of this.running) run.interrupt('stop');
    await Promise.all([...this.running].map((run) => run.close()));
    await this.refreshTail.catch(() => undefined);
    this.admin?.disconnectSync();
    this.admin = null;
    this.instance?.closeSync();
    this.instance = null;
    this.registry?.close();
    this.registry = null;
  });

  /**
   * Re-reads the registry and replaces the views whose file list changed, and the
   * quarantine table. `change` (the sealer's `files-changed`) is a hint only: the
   * registry is the truth, so a missed or reordered event cannot leave a view wrong.
   */
  refresh(_change?: FilesChanged): Promise<void> {
    return this.refreshFromRegistry();
  }

  refreshFromRegistry(): Promise<void> {
    const next = this.refreshTail.then(() => this.refreshNow());
    this.refreshTail = next.catch(() => undefined);
    return next;
  }

  /** Runs one read-only statement and returns its rows (capped). */
  async query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      const stream = await this.queryStream(sql, options);
      const rows: QueryRow[] = [];
      try {
        for await (const chunk of stream) for (const row of chunk) rows.push(row);
      } catch (error) {
        if (attempt === 0 && isMissingFileError(error) && !this.stopping) {
          await this.refreshFromRegistry();
          continue;
        }
        throw error;
      }
      return { columns: stream.columns, rows, truncated: stream.truncated, elapsedMs: performance.now() - started };
    }
  }

  /**
   * Runs one read-only statement and returns its result to read chunk by chunk. Resolves
   * once the first chunk is ready, so a rejected or failing query rejects here.
   */
  async queryStream(sql: string, options: QueryOptions = {}): Promise<QueryStream> {
    const limits = {
      timeoutMs: options.timeoutMs ?? this.options.query.timeout_ms,
      maxRows: Math.min(options.maxRows ?? this.options.query.max_rows, this.options.query.max_rows),
      maxBytes: Math.min(options.maxBytes ?? this.options.query.max_result_bytes, this.options.query.max_result_bytes),
    };
    for (let attempt = 0; ; attempt++) {
      const run = await this.newRun(limits);
      try {
        await run.open(sql);
        return run;
      } catch (error) {
        if (attempt === 0 && isMissingFileError(error) && !this.stopping) {
          this.options.logger.info({ err: messageOf(error) }, 'a hot-tier file vanished under a query: refreshing views and retrying once');
          await this.refreshFromRegistry();
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * The event-time range `sql` reads, from its parsed tree (time-bounds.ts), for
   * `include_warm: "auto"`; null when some dataset it reads has no literal lower bound
   * on its time column (or the SQL does not parse: the query itself will say why).
   */
  async timeRangeOf(sql: string): Promise<TimeRangeOf | null> {
    const instance = this.instance;
    if (!instance || this.stopping) throw new QueryFailedError('query engine is not running');
    const connection = await instance.connect();
    try {
      const parsed = await connection.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
      const tree = JSON.parse(String(parsed.getRows()[0]![0])) as unknown;
      const timeColumns = new Map(this.datasets.map((d) => [d.name, d.columns[0]!.name]));
      return await timeRangeOf(tree, timeColumns, (literal) => this.literalUs(connection, literal), Date.now() * 1000);
    } finally {
      connection.disconnectSync();
    }
  }

  /** A literal read as DuckDB reads it in a comparison with a timestamptz column; null if it is no time. */
  private async literalUs(connection: DuckDBConnection, literal: TimeLiteral): Promise<number | null> {
    const cast = literal.castType === null ? '' : TIME_CASTS.has(literal.castType) ? `::${literal.castType}` : null;
    if (cast === null) return null;
    try {
      const result = await connection.runAndReadAll(`SELECT epoch_us(CAST($1::VARCHAR${cast} AS TIMESTAMPTZ))`, [literal.value]);
      const value = result.getRows()[0]![0];
      return value === null || value === undefined ? null : Number(value);
    } catch {
      return null;
    }
  }

  /** The views (datasets' and `_1m`) and the paths they read now (for tests and status). */
  viewedFiles(): Map<string, string[]> {
    return new Map([...this.viewFiles].map(([name, key]) => [name, key ? key.split('\n') : []]));
  }

  private async newRun(limits: { timeoutMs: number; maxRows: number; maxBytes: number }): Promise<QueryRun> {
    const instance = this.instance;
    if (!instance || this.stopping) throw new QueryFailedError('query engine is not running');
    const started = Date.now();
    await this.slots.acquire();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.running.delete(run);
      this.slots.release();
    };
    let run: QueryRun;
    try {
      if (this.stopping) throw new QueryFailedError('query engine is not running');
      const connection = await instance.connect();
      // The time spent waiting for a slot counts against the timeout.
      run = new QueryRun(connection, { ...limits, timeoutMs: Math.max(1, limits.timeoutMs - (Date.now() - started)) }, () => release());
    } catch (error) {
      this.slots.release();
      throw error instanceof QueryFailedError ? error : new QueryFailedError(messageOf(error));
    }
    this.running.add(run);
    return run;
  }

  private async refreshNow(): Promise<void> {
    const admin = this.admin;
    const registry = this.registry;
    if (!admin || !registry || this.stopping) return;
    const files = registry.hotFiles();
    const cached = cachedDataByDataset(this.cacheDir);
    this.cacheKey = cacheListingKey(cached);
    for (const dataset of this.datasets) {
      const registered = files.get(dataset.name) ?? { data: [], dataFieldIds: [], rollups: [], rollupFieldIds: [], rollupTimes: [] };
      const fromCache = (cached.get(dataset.name) ?? []).map((p) => relative(this.realStateDir, p));
      // Cached files carry no stats here: their columns may differ, so they are read by name.
      const sameSchema = fromCache.length === 0 && filesShareSchema(dataset, registered.dataFieldIds);
      await this.replaceView(dataset.name, [...registered.data, ...fromCache], (paths) => datasetViewSql(dataset, paths, sameSchema));
      const schema = this.rollups.get(dataset.name);
      if (schema) {
        // Rollup files share the rollup schema unless the dataset's columns changed between them.
        const rollupSameSchema = filesShareSchema(schema.dataset, registered.rollupFieldIds);
        // Only files sharing a minute with another file need the merge (GROUP BY).
        const merge = new Set(overlappingRollupFiles(registered.rollupTimes).map((i) => join(this.realStateDir, registered.rollups[i]!)));
        await this.replaceView(schema.dataset.name, registered.rollups, (paths) => rollupViewSql(schema, paths, rollupSameSchema, (p) => merge.has(p)));
      }
    }
    await this.refreshQuarantine();
  }

  /** Replaces view `name` if its file list changed; registered files missing on disk are left out (and logged). */
  private async replaceView(name: string, relativePaths: string[], sql: (absolutePaths: string[]) => string): Promise<void> {
    const admin = this.admin!;
    const paths = relativePaths.map((p) => join(this.realStateDir, p));
    const key = paths.join('\n');
    if (this.viewFiles.get(name) === key && this.viewFiles.has(name)) return;
    try {
      await admin.run(sql(paths));
    } catch (error) {
      if (!isMissingFileError(error)) throw error;
      // A registered file missing on disk (recovery logs HOT_FILES_MISSING): keep the rest queryable.
      const present = paths.filter((p) => existsSync(p));
      this.options.logger.error(
        { code: 'HOT_FILES_MISSING', view: name, missing: paths.filter((p) => !present.includes(p)) },
        'registered hot-tier files are missing: the view leaves them out',
      );
      await admin.run(sql(present));
    }
    this.viewFiles.set(name, key);
  }

  private async refreshQuarantine(): Promise<void> {
    const admin = this.admin;
    const registry = this.registry;
    if (!admin || !registry || !this.quarantineEnabled || this.stopping) return;
    const keep = this.options.quarantineRows ?? 1000;
    const rows = registry.quarantineAfter(this.quarantineMaxId, keep);
    if (rows.length === 0) return;
    const appender = await admin.createAppender(QUARANTINE_TABLE);
    for (const row of rows) {
      appender.appendBigInt(BigInt(row.id));
      appender.appendTimestampTZ(timestampTZValue(BigInt(row.received_at_us)));
      appender.appendVarchar(row.source);
      appender.appendVarchar(row.coordinates);
      if (row.dataset === null) appender.appendNull();
      else appender.appendVarchar(row.dataset);
      appender.appendVarchar(row.reason_code);
      appender.appendVarchar(row.reason);
      appender.appendBigInt(BigInt(row.payload_bytes));
      appender.endRow();
    }
    appender.closeSync();
    this.quarantineMaxId = rows[rows.length - 1]!.id;
    await admin.run(`DELETE FROM ${QUARANTINE_TABLE} WHERE id NOT IN (SELECT id FROM ${QUARANTINE_TABLE} ORDER BY id DESC LIMIT ${keep})`);
  }

  private scheduleQuarantine(everyMs: number): void {
    if (this.stopping) return;
    this.quarantineTimer = setTimeout(() => {
      // Also picks up files `lakeside backfill` put in the read cache (or the cache trimmed).
      const next = this.refreshTail.then(() => (this.cacheKey !== cacheListingKey(cachedDataByDataset(this.cacheDir)) ? this.refreshNow() : this.refreshQuarantine()));
      this.refreshTail = next.catch(() => undefined);
      next
        .catch((error) => this.options.logger.error({ code: 'QUERY_REFRESH_FAILED', err: messageOf(error) }, 'quarantine or read-cache refresh failed'))
        .finally(() => this.scheduleQuarantine(everyMs));
    }, everyMs);
    this.quarantineTimer.unref?.();
  }
}

function cacheListingKey(cached: Map<string, string[]>): string {
  return [...cached.values()].flat().sort().join('\n');
}
