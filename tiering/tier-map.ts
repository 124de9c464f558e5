/**
 * The tier map: where every file that leaves the hot tier is, in `tier_files`, a table
 * of the landing database (`<state_dir>/landing.db`, WAL, synchronous=FULL). It lives
 * there, not in a database of its own, so that evicting a data file (unregistering it
 * from `hot_files`) and recording the eviction are one transaction.
 *
 * A row per L1 data file (`kind = 'data'`) and per blob (`kind = 'blob'`):
 * - `state`, which only moves forward:
 *     local → uploaded → committed → archived → expired
 *   plus `dropped` (an uncommitted file deleted under `overflow: drop_oldest`).
 *   `uploaded`: the object is in the warm store at `object_key` with this size and
 *   sha256. `committed`: the catalog holds it (with no catalog configured, uploaded
 *   counts as committed). `archived`: the object is in the cold store and no longer
 *   in warm. `expired`: deleted from cold after the cold retention.
 * - `local_state`, independent of `state`: present → evicting → evicted. Only a file
 *   whose `state` is committed or later is evicted (or a dropped one).
 * - Upload bookkeeping: `attempts`, `next_attempt_us` (jittered backoff, durable),
 *   `last_error`, and `set_aside_us` once a file failed `max_attempts` times (or
 *   could never succeed): the queue skips it and it is reported.
 *
 * Invariants:
 * - Every transition is one UPDATE guarded by the states it may come from, so
 *   repeating it (a retry after a crash) changes nothing and reports `false`.
 * - A file is registered (sha256 and size computed from its bytes) before any
 *   upload; registering again is a no-op (unique `local_path` and `object_key`).
 * - `event_time_us` is the newest event time a data file holds (a blob: when it was
 *   first seen): the age the hot retention and "oldest first" use.
 *   `min_event_time_us` is a data file's oldest event time (NULL for blobs and for rows
 *   registered before the column existed: such a file is taken to start at 0, so a
 *   time-range look-up over evicted files may fetch it needlessly but never misses it).
 */
import type Database from 'better-sqlite3';

export const TIER_STATES = ['local', 'uploaded', 'committed', 'archived', 'expired', 'dropped'] as const;
export type TierState = (typeof TIER_STATES)[number];
export type LocalState = 'present' | 'evicting' | 'evicted';
export type TierKind = 'data' | 'blob';

/** States in which the warm (or cold) store holds the file and the catalog knows it. */
export const SAFE_ELSEWHERE: readonly TierState[] = ['committed', 'archived', 'expired'];

export interface TierRecord {
  id: number;
  kind: TierKind;
  dataset: string | null;
  local_path: string;
  object_key: string;
  size_bytes: number;
  sha256: string;
  event_time_us: number;
  min_event_time_us: number | null;
  state: TierState;
  local_state: LocalState;
  attempts: number;
  next_attempt_us: number;
  last_error: string | null;
  set_aside_us: number | null;
  registered_us: number;
  uploaded_us: number | null;
  committed_us: number | null;
  archived_us: number | null;
  expired_us: number | null;
  evicted_us: number | null;
}

export type NewTierFile = Pick<TierRecord, 'kind' | 'dataset' | 'local_path' | 'object_key' | 'size_bytes' | 'sha256' | 'event_time_us'> & {
  min_event_time_us?: number | null;
};

export function ensureTierSchema(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS tier_files (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      kind TEXT NOT NULL CHECK (kind IN ('data', 'blob')),
      dataset TEXT,
      local_path TEXT NOT NULL UNIQUE,
      object_key TEXT NOT NULL UNIQUE,
      size_bytes INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      event_time_us INTEGER NOT NULL,
      min_event_time_us INTEGER,
      state TEXT NOT NULL DEFAULT 'local',
      local_state TEXT NOT NULL DEFAULT 'present',
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_us INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      set_aside_us INTEGER,
      registered_us INTEGER NOT NULL,
      uploaded_us INTEGER, committed_us INTEGER, archived_us INTEGER, expired_us INTEGER, evicted_us INTEGER);
    CREATE INDEX IF NOT EXISTS tier_files_state ON tier_files (state, event_time_us);
    CREATE INDEX IF NOT EXISTS tier_files_local ON tier_files (local_state, state, event_time_us);
  `);
  // Databases created before the column existed.
  const columns = db.prepare(`SELECT name FROM pragma_table_info('tier_files')`).pluck().all() as string[];
  if (!columns.includes('min_event_time_us')) db.exec('ALTER TABLE tier_files ADD COLUMN min_event_time_us INTEGER');
}

export interface TierCounts {
  dataset: string;
  state: TierState;
  local_state: LocalState;
  files: number;
  bytes: number;
  oldest_event_us: number;
}

export class TierMap {
  readonly db: Database.Database;

  constructor(db: Database.Database) {
    this.db = db;
  }

  /** Inserts files not yet known; returns how many were new. */
  register(files: NewTierFile[], nowUs: number): number {
    // A data file is registered only while hot_files still lists it: a merge that
    // retired it first (agent/hot/merge.ts) wins, and its merged output is tiered instead.
    const insert = this.db.prepare(
      `INSERT INTO tier_files (kind, dataset, local_path, object_key, size_bytes, sha256, event_time_us, min_event_time_us, registered_us)
       SELECT @kind, @dataset, @local_path, @object_key, @size_bytes, @sha256, @event_time_us, @min_event_time_us, @registered_us
       WHERE @kind <> 'data' OR EXISTS (SELECT 1 FROM hot_files WHERE path = @local_path)
       ON CONFLICT DO NOTHING`,
    );
    return this.db.transaction(() => files.reduce((n, f) => n + insert.run({ min_event_time_us: null, ...f, registered_us: nowUs }).changes, 0)).immediate();
  }

  get(id: number): TierRecord | undefined {
    return this.db.prepare('SELECT * FROM tier_files WHERE id = ?').get(id) as TierRecord | undefined;
  }

  byPath(localPath: string): TierRecord | undefined {
    return this.db.prepare('SELECT * FROM tier_files WHERE local_path = ?').get(localPath) as TierRecord | undefined;
  }

  all(): TierRecord[] {
    return this.db.prepare('SELECT * FROM tier_files ORDER BY id').all() as TierRecord[];
  }

  /** local → uploaded. False if it was not local (already done: a repeat). */
  markUploaded(id: number, nowUs: number): boolean {
    return (
      this.db
        .prepare(`UPDATE tier_files SET state = 'uploaded', uploaded_us = ?, last_error = NULL WHERE id = ? AND state = 'local'`)
        .run(nowUs, id).changes === 1
    );
  }

  /** uploaded → committed, for each id; returns how many moved. */
  markCommitted(ids: number[], nowUs: number): number {
    const update = this.db.prepare(`UPDATE tier_files SET state = 'committed', committed_us = ? WHERE id = ? AND state = 'uploaded'`);
    return this.db.transaction(() => ids.reduce((n, id) => n + update.run(nowUs, id).changes, 0)).immediate();
  }

  /** committed → archived (the object is in cold and gone from warm). */
  markArchived(id: number, nowUs: number): boolean {
    return this.db.prepare(`UPDATE tier_files SET state = 'archived', archived_us = ? WHERE id = ? AND state = 'committed'`).run(nowUs, id).changes === 1;
  }

  /** archived → expired (deleted from cold). */
  markExpired(id: number, nowUs: number): boolean {
    return this.db.prepare(`UPDATE tier_files SET state = 'expired', expired_us = ? WHERE id = ? AND state = 'archived'`).run(nowUs, id).changes === 1;
  }

  /**
   * A failed upload attempt: counts it, schedules the next one at `nextAttemptUs`, or
   * sets the file aside when `setAside` (too many attempts, or a retry cannot help).
   */
  recordFailure(id: number, error: string, nextAttemptUs: number, setAside: boolean, nowUs: number): TierRecord | undefined {
    this.db
      .prepare(
        `UPDATE tier_files SET attempts = attempts + 1, last_error = ?, next_attempt_us = ?,
           set_aside_us = CASE WHEN ? THEN ? ELSE set_aside_us END
         WHERE id = ? AND state = 'local'`,
      )
      .run(error.slice(0, 2000), nextAttemptUs, setAside ? 1 : 0, nowUs, id);
    return this.get(id);
  }

  /** Puts a set-aside file back in the queue (an operator fixed the cause). */
  retrySetAside(id: number): boolean {
    return this.db.prepare(`UPDATE tier_files SET set_aside_us = NULL, attempts = 0, next_attempt_us = 0 WHERE id = ? AND set_aside_us IS NOT NULL`).run(id).changes === 1;
  }

  setAside(): TierRecord[] {
    return this.db.prepare(`SELECT * FROM tier_files WHERE set_aside_us IS NOT NULL AND state = 'local' ORDER BY id`).all() as TierRecord[];
  }

  /**
   * The next files to upload: local, not set aside, due; highest priority first, then
   * oldest first. `priorityCase` is an SQL expression over the row giving its priority;
   * `closedDatasets` (window closed) and `exclude` (in flight) are skipped.
   */
  nextToUpload(options: { nowUs: number; limit: number; priorityCase: string; closed: { datasets: string[]; blobs: boolean }; exclude: Iterable<number> }): TierRecord[] {
    const exclude = [...options.exclude];
    const closed = options.closed.datasets;
    const where = [
      `state = 'local'`,
      `local_state = 'present'`,
      `set_aside_us IS NULL`,
      `next_attempt_us <= @now`,
      closed.length ? `NOT (kind = 'data' AND dataset IN (${closed.map((_, i) => `@c${i}`).join(', ')}))` : '1',
      options.closed.blobs ? `kind <> 'blob'` : '1',
      exclude.length ? `id NOT IN (${exclude.map((_, i) => `@x${i}`).join(', ')})` : '1',
    ].join(' AND ');
    const params: Record<string, number | string> = { now: options.nowUs, limit: options.limit };
    closed.forEach((d, i) => (params[`c${i}`] = d));
    exclude.forEach((id, i) => (params[`x${i}`] = id));
    return this.db
      .prepare(`SELECT * FROM tier_files WHERE ${where} ORDER BY (${options.priorityCase}) DESC, event_time_us, id LIMIT @limit`)
      .all(params) as TierRecord[];
  }

  /** Files uploaded but not yet committed, oldest first. */
  uploadedNotCommitted(limit: number): TierRecord[] {
    return this.db.prepare(`SELECT * FROM tier_files WHERE state = 'uploaded' ORDER BY id LIMIT ?`).all(limit) as TierRecord[];
  }

  /**
   * Committed files whose data is older than `before` (warm retention over): archive
   * candidates, oldest first. `before`: event time in µs, or an SQL expression over the
   * row (per-dataset cutoffs, tiering/settings.ts).
   */
  dueForArchive(before: number | string, limit: number): TierRecord[] {
    return this.dueBefore('committed', before, limit);
  }

  /** Archived files whose data is older than `before` (cold retention over), oldest first. */
  dueForExpiry(before: number | string, limit: number): TierRecord[] {
    return this.dueBefore('archived', before, limit);
  }

  private dueBefore(state: 'committed' | 'archived', before: number | string, limit: number): TierRecord[] {
    const cutoff = typeof before === 'number' ? '@before' : `(${before})`;
    return this.db
      .prepare(`SELECT * FROM tier_files WHERE state = '${state}' AND event_time_us < ${cutoff} ORDER BY event_time_us, id LIMIT @limit`)
      .all(typeof before === 'number' ? { before, limit } : { limit }) as TierRecord[];
  }

  /**
   * Data files no longer on local disk but safe in warm (committed) or cold (archived)
   * whose events overlap [fromUs, toUs): the files a query over that range needs back.
   * Oldest first; `dataset` narrows to one dataset.
   */
  evictedDataOverlapping(fromUs: number, toUs: number, dataset?: string): TierRecord[] {
    return this.db
      .prepare(
        `SELECT * FROM tier_files
         WHERE kind = 'data' AND local_state = 'evicted' AND state IN ('committed', 'archived')
           AND event_time_us >= @from AND coalesce(min_event_time_us, 0) < @to AND (@dataset IS NULL OR dataset = @dataset)
         ORDER BY event_time_us, id`,
      )
      .all({ from: fromUs, to: toUs, dataset: dataset ?? null }) as TierRecord[];
  }

  /** Per dataset ('' = blobs), state and local state: files, bytes, oldest event time. */
  counts(): TierCounts[] {
    return this.db
      .prepare(
        `SELECT coalesce(dataset, '') AS dataset, state, local_state, count(*) AS files, sum(size_bytes) AS bytes, min(event_time_us) AS oldest_event_us
         FROM tier_files GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      )
      .all() as TierCounts[];
  }
}
