/**
 * Adapts the agent's parts to the API's ports (ports.ts): the query engine, the
 * latest-value cache, the hot-tier registry and the blob store. Only the composition
 * root (daemon.ts) calls this; the API itself knows none of these classes.
 */
import Database from 'better-sqlite3';
import type { Dataset } from '../../config/dataset.ts';
import type { BlobStore } from '../blobs/blob-store.ts';
import { DATA_LEVELS_SQL, landedRowsWhere, landedTable } from '../landing/schema.ts';
import type { LatestCache } from '../latest/latest-cache.ts';
import { formatTimeUs } from '../mapping/time.ts';
import type { QueryEngine } from '../query/query-engine.ts';
import { PortErrorCode, type BlobsPort, type DatasetInfo, type DatasetsPort, type LatestPort, type QueryOptions, type QueryPort, type WarmRange } from './ports.ts';

const ICEBERG_TYPE_NAMES: Record<string, string> = {
  timestamp: 'TIMESTAMP WITH TIME ZONE',
  string: 'VARCHAR',
  blob: 'VARCHAR',
  int: 'INTEGER',
  long: 'BIGINT',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
};

/**
 * `fetchWarm` brings the evicted files of a range into the read cache (the daemon's
 * tiering, on the main thread); the views are then refreshed before the query runs.
 */
export function queryPort(engine: QueryEngine, fetchWarm?: (range: WarmRange) => Promise<unknown>): QueryPort {
  const includeWarm = async (sql: string, options: QueryOptions): Promise<void> => {
    if (!options.includeWarm) return;
    if (options.includeWarm === 'if-bounded') {
      // The default: a query whose WHERE bounds its datasets' time gets the evicted files
      // of that range; any other query (unbounded, EXPLAIN, SHOW…) reads local files only.
      if (!fetchWarm) return;
      const found = await engine.timeRangeOf(sql).catch(() => null);
      if (!found) return;
      await fetchWarm({ fromUs: found.fromUs, toUs: found.toUs, ...(found.datasets.length === 1 ? { dataset: found.datasets[0]! } : {}) });
      await engine.refreshFromRegistry();
      return;
    }
    if (!fetchWarm) throw Object.assign(new Error('include_warm: tiering has no warm or cold store here'), { code: PortErrorCode.warmUnavailable });
    let range: WarmRange;
    if (options.includeWarm === 'auto') {
      const found = await engine.timeRangeOf(sql);
      if (!found) {
        throw Object.assign(
          new Error(
            'include_warm "auto": every dataset the query reads needs a literal lower bound on its time column in its WHERE (e.g. ts >= \'2026-11-01\' AND ts < \'2026-11-02\'); or give include_warm.from and .to',
          ),
          { code: PortErrorCode.badRequest },
        );
      }
      range = { fromUs: found.fromUs, toUs: found.toUs, ...(found.datasets.length === 1 ? { dataset: found.datasets[0]! } : {}) };
    } else {
      range = options.includeWarm;
    }
    await fetchWarm(range);
    await engine.refreshFromRegistry();
  };
  return {
    async query(sql, options) {
      await includeWarm(sql, options);
      return engine.query(sql, options);
    },
    async queryStream(sql, options) {
      const started = performance.now();
      await includeWarm(sql, options);
      const stream = await engine.queryStream(sql, options);
      return {
        columns: stream.columns,
        batches: stream,
        summary: () => ({ truncated: stream.truncated, elapsedMs: Math.round(performance.now() - started) }),
      };
    },
  };
}

/** A filter on a non-key column is the caller's mistake: a 400 naming it, not a 500. */
function asBadRequest<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if ((error as { code?: string }).code === 'INVALID_STREAM_FILTER') throw Object.assign(new Error((error as Error).message), { code: 'BAD_REQUEST' });
    throw error;
  }
}

export function latestPort(cache: LatestCache): LatestPort {
  return {
    latest: (dataset, filter) => asBadRequest(() => cache.latest(dataset, filter)),
    window(dataset, stream, minutes, limit) {
      const result = asBadRequest(() => cache.window(dataset, stream, minutes, limit));
      return { columns: result.columns, rows: result.rows };
    },
    windowJson(dataset, stream, minutes, limit) {
      const result = asBadRequest(() => cache.windowJson(dataset, stream, minutes, limit));
      return { columns: result.columns, rowsJson: result.rowsJson };
    },
  };
}

/** Read-only views of the landing database for the API (blob metadata, dataset sizes). */
export class LandingReader {
  private db: Database.Database | null = null;
  private readonly dbPath: string;

  constructor(dbPath: string) {
    this.dbPath = dbPath;
  }

  open(): void {
    this.db ??= new Database(this.dbPath, { readonly: true, fileMustExist: true });
  }

  close(): void {
    this.db?.close();
    this.db = null;
  }

  blobsPort(blobs: BlobStore, fetchEvicted?: (sha256: string) => Promise<string | null>): BlobsPort {
    return {
      ...(fetchEvicted ? { fetchEvicted } : {}),
      blobPath: (sha256) => blobs.pathOf(sha256),
      blobInfo: (sha256) => {
        const row = this.connection()
          .prepare('SELECT size_bytes AS sizeBytes, content_type AS contentType FROM blobs WHERE sha256 = ?')
          .get(sha256) as { sizeBytes: number; contentType: string | null } | undefined;
        return row ? { sizeBytes: row.sizeBytes, contentType: row.contentType ?? 'application/octet-stream' } : null;
      },
    };
  }

  datasetsPort(datasets: Dataset[], cache: LatestCache): DatasetsPort {
    return {
      datasets: async () => {
        const db = this.connection();
        const summaries = new Map(cache.datasetsSummary().map((s) => [s.dataset, s]));
        return datasets.map((dataset): DatasetInfo => {
          const files = db
            .prepare(`SELECT coalesce(sum(record_count), 0) AS rows, min(min_ts_us) AS minUs, max(max_ts_us) AS maxUs FROM hot_files WHERE dataset = ? AND ${DATA_LEVELS_SQL}`)
            .get(dataset.name) as { rows: number; minUs: number | null; maxUs: number | null };
          const landed = db
            .prepare(`SELECT count(*) AS rows, min("${dataset.columns[0]!.name}") AS minUs, max("${dataset.columns[0]!.name}") AS maxUs FROM "${landedTable(dataset.name)}" WHERE ${landedRowsWhere(dataset.name)}`)
            .get() as { rows: number; minUs: number | null; maxUs: number | null };
          const minUs = minOf(files.minUs, landed.minUs);
          const maxUs = maxOf(files.maxUs, landed.maxUs);
          const summary = summaries.get(dataset.name);
          return {
            name: dataset.name,
            columns: dataset.columns.map((c) => ({ name: c.name, type: ICEBERG_TYPE_NAMES[c.type] ?? 'VARCHAR' })),
            rows: files.rows + landed.rows,
            minTime: minUs === null ? null : formatTimeUs(minUs),
            maxTime: maxUs === null ? null : formatTimeUs(maxUs),
            streams: (summary?.perStream ?? []).map((s) => ({ stream: { ...s.stream }, lastTime: s.newest })),
          };
        });
      },
    };
  }

  private connection(): Database.Database {
    this.open();
    return this.db!;
  }
}

function minOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

function maxOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b);
}
