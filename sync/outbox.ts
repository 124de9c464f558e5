/**
 * The commit outbox and this agent's commit sequence, in landing.db beside the tier map.
 *
 * Tables:
 * - `sync_files`: one row per uploaded data file handed to the catalog layer (keyed by
 *   its tier-map id), with what its manifest entry needs (the hot-file stats, taken
 *   while the file is still local) and its state: `waiting` → `batched` (in the
 *   pending commit `seq`) → `committed` (with that seq), later `replaced` (re-pointed
 *   to cold) and `deleted` (expired).
 * - `sync_commits`: every commit this agent ever attempted, by `seq`: the table, the
 *   kind (append, replace, delete, rewrite, schema), `pending` until its outcome is
 *   known, then `committed` or `abandoned` (known not applied and its files released).
 * - `sync_state`: `instance_id` (this state directory's identity, for the fence).
 *
 * Invariants (exactly-once rests on them):
 * - A seq is allocated and its files bound to it in ONE transaction, before anything
 *   is sent. Seqs only go up: the next one is above every seq in `sync_commits` and
 *   above the floor the caller passes (the highest seq of this agent in the catalog),
 *   so a lost state directory never reuses a seq.
 * - A table has at most one pending commit; it is resolved (found in the catalog's
 *   ancestry, or known absent) before another seq is allocated for that table. So in
 *   one table our seqs appear in increasing order, and "our newest seq in the
 *   ancestry is >= S" means S was applied.
 * - A file is handed in at most once (tier id is the key), and is in at most one
 *   commit that can be applied.
 * - Marking committed updates `sync_files`, `sync_commits` and the tier map
 *   (`tier_files.state = committed`) in one transaction.
 */
import type Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';

export type SyncFileState = 'waiting' | 'batched' | 'committed' | 'replaced' | 'deleted';
export type CommitKind = 'append' | 'replace' | 'delete' | 'rewrite' | 'schema';

export interface SyncFile {
  tier_id: number;
  dataset: string;
  /** Absolute location of the object the table points at (warm, later cold). */
  location: string;
  /** JSON of the inputs of the manifest entry (DataFileInput without the path). */
  entry_json: string;
  state: SyncFileState;
  seq: number | null;
  created_us: number;
  committed_us: number | null;
}

export interface SyncCommit {
  seq: number;
  dataset: string;
  kind: CommitKind;
  state: 'pending' | 'committed' | 'abandoned';
  /** JSON: the kind's own plan (e.g. the locations a replace swaps). */
  plan_json: string;
  snapshot_id: string | null;
  attempts: number;
  last_error: string | null;
  created_us: number;
  resolved_us: number | null;
}

export function ensureSyncSchema(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS sync_files (
      tier_id INTEGER PRIMARY KEY, dataset TEXT NOT NULL, location TEXT NOT NULL,
      entry_json TEXT NOT NULL, state TEXT NOT NULL, seq INTEGER,
      created_us INTEGER NOT NULL, committed_us INTEGER);
    CREATE INDEX IF NOT EXISTS sync_files_state ON sync_files (dataset, state, tier_id);
    CREATE INDEX IF NOT EXISTS sync_files_seq ON sync_files (seq);
    CREATE TABLE IF NOT EXISTS sync_commits (
      seq INTEGER PRIMARY KEY, dataset TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
      plan_json TEXT NOT NULL DEFAULT '{}', snapshot_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
      last_error TEXT, created_us INTEGER NOT NULL, resolved_us INTEGER);
    CREATE INDEX IF NOT EXISTS sync_commits_pending ON sync_commits (dataset, state);
    CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  `);
}

export class Outbox {
  private readonly db: Database.Database;

  constructor(db: Database.Database) {
    this.db = db;
    ensureSyncSchema(db);
  }

  /** This state directory's identity, created once and kept for ever. */
  instanceId(): string {
    const row = this.db.prepare(`SELECT value FROM sync_state WHERE key = 'instance_id'`).get() as { value: string } | undefined;
    if (row) return row.value;
    const id = randomUUID();
    this.db.prepare(`INSERT OR IGNORE INTO sync_state (key, value) VALUES ('instance_id', ?)`).run(id);
    return (this.db.prepare(`SELECT value FROM sync_state WHERE key = 'instance_id'`).get() as { value: string }).value;
  }

  /** Hands files in (idempotent by tier id). */
  enqueue(files: { tierId: number; dataset: string; location: string; entryJson: string }[], nowUs: number): void {
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO sync_files (tier_id, dataset, location, entry_json, state, created_us) VALUES (?, ?, ?, ?, 'waiting', ?)`,
    );
    this.db.transaction(() => {
      for (const f of files) insert.run(f.tierId, f.dataset, f.location, f.entryJson, nowUs);
    }).immediate();
  }

  /** Which of these tier ids are committed (or later re-pointed) in the catalog. */
  committedAmong(tierIds: number[]): number[] {
    if (tierIds.length === 0) return [];
    const query = this.db.prepare(`SELECT tier_id FROM sync_files WHERE tier_id = ? AND state IN ('committed', 'replaced', 'deleted')`);
    return tierIds.filter((id) => query.get(id) !== undefined);
  }

  knownTierIds(tierIds: number[]): Set<number> {
    const query = this.db.prepare(`SELECT 1 FROM sync_files WHERE tier_id = ?`);
    return new Set(tierIds.filter((id) => query.get(id) !== undefined));
  }

  /** Datasets with files waiting or a commit pending. */
  datasetsWithWork(): string[] {
    return (
      this.db
        .prepare(
          `SELECT dataset FROM sync_files WHERE state = 'waiting'
           UNION SELECT dataset FROM sync_commits WHERE state = 'pending' ORDER BY 1`,
        )
        .all() as { dataset: string }[]
    ).map((r) => r.dataset);
  }

  pendingCommit(dataset: string): SyncCommit | undefined {
    return this.db.prepare(`SELECT * FROM sync_commits WHERE dataset = ? AND state = 'pending' ORDER BY seq LIMIT 1`).get(dataset) as SyncCommit | undefined;
  }

  waitingFiles(dataset: string, limit: number): SyncFile[] {
    return this.db.prepare(`SELECT * FROM sync_files WHERE dataset = ? AND state = 'waiting' ORDER BY tier_id LIMIT ?`).all(dataset, limit) as SyncFile[];
  }

  filesOf(seq: number): SyncFile[] {
    return this.db.prepare(`SELECT * FROM sync_files WHERE seq = ? ORDER BY tier_id`).all(seq) as SyncFile[];
  }

  fileByTierId(tierId: number): SyncFile | undefined {
    return this.db.prepare(`SELECT * FROM sync_files WHERE tier_id = ?`).get(tierId) as SyncFile | undefined;
  }

  highestSeq(): number {
    return (this.db.prepare(`SELECT COALESCE(MAX(seq), 0) AS seq FROM sync_commits`).get() as { seq: number }).seq;
  }

  /**
   * Allocates the next seq (above `floor` and every seq used here) for a commit of
   * `dataset`, binding `tierIds` (waiting files) to it: one transaction, before sending.
   */
  allocate(dataset: string, kind: CommitKind, floor: number, tierIds: number[], plan: unknown, nowUs: number): SyncCommit {
    return this.db
      .transaction(() => {
        if (this.pendingCommit(dataset)) throw new Error(`outbox: ${dataset} already has a pending commit`);
        const seq = Math.max(this.highestSeq(), floor) + 1;
        this.db
          .prepare(`INSERT INTO sync_commits (seq, dataset, kind, state, plan_json, created_us) VALUES (?, ?, ?, 'pending', ?, ?)`)
          .run(seq, dataset, kind, JSON.stringify(plan ?? {}), nowUs);
        const bind = this.db.prepare(`UPDATE sync_files SET state = 'batched', seq = ? WHERE tier_id = ? AND state = 'waiting'`);
        for (const id of tierIds) {
          if (bind.run(seq, id).changes !== 1) throw new Error(`outbox: file ${id} is not waiting`);
        }
        return this.db.prepare(`SELECT * FROM sync_commits WHERE seq = ?`).get(seq) as SyncCommit;
      })
      .immediate();
  }

  noteAttempt(seq: number, error: string | null, snapshotId: bigint | null): void {
    this.db
      .prepare(`UPDATE sync_commits SET attempts = attempts + 1, last_error = ?, snapshot_id = COALESCE(?, snapshot_id) WHERE seq = ?`)
      .run(error, snapshotId === null ? null : snapshotId.toString(), seq);
  }

  /**
   * The commit is in the catalog: its files (appends) become committed here and in the
   * tier map, in one transaction. `apply` runs inside it for kind-specific rows
   * (re-pointed locations, deleted files).
   */
  markCommitted(seq: number, snapshotId: bigint | null, nowUs: number, apply?: () => void): number[] {
    return this.db
      .transaction(() => {
        const commit = this.db.prepare(`SELECT * FROM sync_commits WHERE seq = ?`).get(seq) as SyncCommit | undefined;
        if (!commit || commit.state !== 'pending') return [];
        this.db
          .prepare(`UPDATE sync_commits SET state = 'committed', resolved_us = ?, snapshot_id = COALESCE(?, snapshot_id) WHERE seq = ?`)
          .run(nowUs, snapshotId === null ? null : snapshotId.toString(), seq);
        const ids = (this.db.prepare(`SELECT tier_id FROM sync_files WHERE seq = ? AND state = 'batched'`).all(seq) as { tier_id: number }[]).map((r) => r.tier_id);
        this.db.prepare(`UPDATE sync_files SET state = 'committed', committed_us = ? WHERE seq = ? AND state = 'batched'`).run(nowUs, seq);
        const tier = this.db.prepare(`UPDATE tier_files SET state = 'committed', committed_us = ? WHERE id = ? AND state = 'uploaded'`);
        for (const id of ids) tier.run(nowUs, id);
        apply?.();
        return ids;
      })
      .immediate();
  }

  /** Known NOT applied (e.g. its plan no longer makes sense): files go back to waiting. */
  abandon(seq: number, reason: string, nowUs: number): void {
    this.db
      .transaction(() => {
        this.db.prepare(`UPDATE sync_commits SET state = 'abandoned', last_error = ?, resolved_us = ? WHERE seq = ? AND state = 'pending'`).run(reason, nowUs, seq);
        this.db.prepare(`UPDATE sync_files SET state = 'waiting', seq = NULL WHERE seq = ? AND state = 'batched'`).run(seq);
      })
      .immediate();
  }

  /** After a replace commit: the file's table entry now points at `location`. */
  setLocation(tierId: number, location: string, state: SyncFileState): void {
    this.db.prepare(`UPDATE sync_files SET location = ?, state = ? WHERE tier_id = ?`).run(location, state, tierId);
  }

  counts(): Record<SyncFileState, number> & { pendingCommits: number; oldestWaitingUs: number | null } {
    const out = { waiting: 0, batched: 0, committed: 0, replaced: 0, deleted: 0, pendingCommits: 0, oldestWaitingUs: null as number | null };
    for (const row of this.db.prepare(`SELECT state, COUNT(*) AS n FROM sync_files GROUP BY state`).all() as { state: SyncFileState; n: number }[]) out[row.state] = row.n;
    out.pendingCommits = (this.db.prepare(`SELECT COUNT(*) AS n FROM sync_commits WHERE state = 'pending'`).get() as { n: number }).n;
    out.oldestWaitingUs = (this.db.prepare(`SELECT MIN(created_us) AS t FROM sync_files WHERE state IN ('waiting', 'batched')`).get() as { t: number | null }).t;
    return out;
  }
}
