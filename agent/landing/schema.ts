/**
 * The landing database: one SQLite file (`<state_dir>/landing.db`), WAL mode,
 * `synchronous=FULL`, so a committed transaction survives power loss.
 *
 * Tables:
 * - `landed_<dataset>`: rows acknowledged to their source, one `"<name>"` column per
 *   dataset column (time as INTEGER µs, booleans as 0/1). `id` only goes up
 *   (AUTOINCREMENT: never reused, even after deletes), so a seal can take "every row ≤ id".
 *   A row is LANDED iff its id is above the dataset's `sealed_through` watermark:
 *   rows at or below it are sealed (in a registered file) and only wait for their
 *   physical delete (hot/purge.ts). Every reader must apply the watermark
 *   (`landedRowsWhere`), never count the table's raw rows.
 * - `sealed_through`: (dataset, id), the watermark above; raised only by the seal, in
 *   the same transaction that registers the files holding the rows up to it.
 * - `dedupe_keys`: (dataset, key) of rows with a dedupe key, kept for the dedupe
 *   retention; a row whose key is present is a redelivery and is not inserted.
 * - `source_keys`: (source, key) of source units already landed (a dropped file, a
 *   Kafka offset), written in the same transaction as their rows: exactly-once intake.
 * - `source_offsets`: (source, stream) → next_offset, the watermark of an ordered
 *   stream (a Kafka topic/partition): every offset below it has landed. Raised in the
 *   same transaction as the rows of the offsets it covers; a redelivered offset below
 *   it is skipped. Lowered only for a recreated stream: an item read when its stream
 *   ended (`SourceOffset.logEnd`, a Kafka high watermark) below the watermark lowers it
 *   to the item's offset, in the item's transaction (landing/writer-worker.ts). Kept
 *   forever (one row per partition).
 * - `source_holds`: Kafka batches landed but not yet known to be committed to Kafka
 *   (landing/source-holds.ts): one row per (hold, part), part = a dataset name (its
 *   rows, ids first_id..last_id), `#quarantine` (quarantine ids) or `` (offsets only).
 *   Written in the batch's own transaction. The seal never takes a held row (seal.ts
 *   stops below the lowest held id), so a held batch can still be taken back; held
 *   rows are not part of the hot tier (`landedRowsWhere` leaves them out).
 * - `blobs`: content-addressed files referenced by rows; a blob file on disk that is
 *   not in this table after a crash is an orphan and is removed at start-up.
 * - `quarantine`: messages that did not fit, with raw bytes (capped) and the reason,
 *   written in the same transaction as the good rows of the same commit.
 * - `hot_files`: every published Parquet file of the hot tier. A file on disk that is
 *   not registered here is an orphan; a file is registered in the same transaction
 *   that retires its inputs (raises `sealed_through` over the landed rows it holds, or
 *   deletes the L0 files it compacted, or the L1/rollup files a merge replaced: hot/merge.ts). `level` (HOT_LEVEL): 0 = L0 (sealed), 1 = L1
 *   (compacted), 2 = per-minute rollup (hot/rollup.ts): a summary, NOT rows of the
 *   dataset. Whatever reads the dataset's rows (views, row counts, uploads) must take
 *   `DATA_LEVELS_SQL` only; lifecycle code (recovery, purge) treats every level alike.
 */
import type Database from 'better-sqlite3';
import type { Dataset, DatasetColumn } from '../../config/dataset.ts';

/** 2: `sealed_through` (rows at or below it are no longer landed, whatever the table holds). */
export const LANDING_SCHEMA_VERSION = 2;

export function landedTable(dataset: string): string {
  return `landed_${dataset}`;
}

/**
 * The SQL condition selecting a dataset's landed rows (see `sealed_through`) that are
 * part of the hot tier: not held (`source_holds`: a Kafka batch whose commit is not
 * known yet may still be dropped, so it is counted nowhere until settled).
 */
export function landedRowsWhere(dataset: string): string {
  const name = dataset.replaceAll("'", "''");
  return (
    `id > coalesce((SELECT id FROM sealed_through WHERE dataset = '${name}'), 0)` +
    ` AND NOT EXISTS (SELECT 1 FROM source_holds h WHERE h.part = '${name}' AND id BETWEEN h.first_id AND h.last_id)`
  );
}

/**
 * The lowest row id of the dataset held by an unsettled Kafka batch (`source_holds`),
 * or null: the seal takes no row at or above it.
 */
export function heldFloor(db: Database.Database, dataset: string): number | null {
  return (db.prepare('SELECT min(first_id) FROM source_holds WHERE part = ?').pluck().get(dataset) as number | null) ?? null;
}

/** The dataset's watermark: rows with id ≤ it are sealed, whether or not still in the table. */
export function sealedThrough(db: Database.Database, dataset: string): number {
  return (db.prepare('SELECT id FROM sealed_through WHERE dataset = ?').pluck().get(dataset) as number | undefined) ?? 0;
}

export function sqliteAffinity(column: DatasetColumn): string {
  switch (column.type) {
    case 'double':
      return 'REAL';
    case 'int':
    case 'long':
    case 'timestamp':
    case 'boolean':
      return 'INTEGER';
    default:
      return 'TEXT';
  }
}

/** Applies the pragmas every connection to the landing database needs. */
export function applyPragmas(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = OFF');
  // Keep the WAL from growing without bound between checkpoints.
  db.pragma('wal_autocheckpoint = 4000');
  db.pragma('journal_size_limit = 268435456');
}

/** Creates missing tables and appends columns a dataset gained. Idempotent. */
export function ensureSchema(db: Database.Database, datasets: Dataset[]): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS dedupe_keys (
      dataset TEXT NOT NULL, key TEXT NOT NULL, ts_us INTEGER NOT NULL,
      PRIMARY KEY (dataset, key)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS dedupe_keys_age ON dedupe_keys (ts_us);
    CREATE TABLE IF NOT EXISTS source_keys (
      source TEXT NOT NULL, key TEXT NOT NULL, at_us INTEGER NOT NULL,
      PRIMARY KEY (source, key)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS source_keys_age ON source_keys (at_us);
    CREATE TABLE IF NOT EXISTS source_offsets (
      source TEXT NOT NULL, stream TEXT NOT NULL, next_offset INTEGER NOT NULL,
      PRIMARY KEY (source, stream)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS blobs (
      sha256 TEXT PRIMARY KEY, size_bytes INTEGER NOT NULL, content_type TEXT,
      first_seen_us INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS quarantine (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      received_at_us INTEGER NOT NULL, source TEXT NOT NULL, coordinates TEXT NOT NULL,
      dataset TEXT, reason_code TEXT NOT NULL, reason TEXT NOT NULL,
      payload BLOB NOT NULL, payload_bytes INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS hot_files (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      dataset TEXT NOT NULL, level INTEGER NOT NULL, path TEXT NOT NULL UNIQUE,
      window_start_us INTEGER NOT NULL, partition_json TEXT NOT NULL,
      min_ts_us INTEGER NOT NULL, max_ts_us INTEGER NOT NULL,
      record_count INTEGER NOT NULL, file_size_bytes INTEGER NOT NULL,
      stats_json TEXT NOT NULL, created_at_us INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS hot_files_window ON hot_files (dataset, level, window_start_us);
    CREATE TABLE IF NOT EXISTS sealed_through (dataset TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS source_holds (
      hold TEXT NOT NULL, part TEXT NOT NULL, source TEXT NOT NULL, stream TEXT NOT NULL, tenure TEXT NOT NULL,
      first_offset INTEGER NOT NULL, next_offset INTEGER NOT NULL, first_id INTEGER, last_id INTEGER,
      PRIMARY KEY (hold, part)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS source_holds_part ON source_holds (part, first_id);
  `);
  // The version only goes up: it records that this database needs watermark-aware readers.
  db.prepare(
    `INSERT INTO meta (key, value) VALUES ('schema_version', @v)
     ON CONFLICT (key) DO UPDATE SET value = @v WHERE CAST(value AS INTEGER) < CAST(@v AS INTEGER)`,
  ).run({ v: String(LANDING_SCHEMA_VERSION) });
  for (const dataset of datasets) {
    const table = landedTable(dataset.name);
    const columns = dataset.columns.map((c) => `"${c.name}" ${sqliteAffinity(c)}`).join(', ');
    db.exec(`CREATE TABLE IF NOT EXISTS "${table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, ${columns})`);
    const existing = new Set((db.prepare(`PRAGMA table_info("${table}")`).all() as { name: string }[]).map((r) => r.name));
    for (const column of dataset.columns) {
      if (!existing.has(column.name)) db.exec(`ALTER TABLE "${table}" ADD COLUMN "${column.name}" ${sqliteAffinity(column)}`);
    }
  }
}

/** `hot_files.level` values. */
export const HOT_LEVEL = { L0: 0, L1: 1, ROLLUP: 2 } as const;
export type HotLevel = (typeof HOT_LEVEL)[keyof typeof HOT_LEVEL];
/** The SQL condition selecting files that hold dataset rows (L0 + L1), not rollups. */
export const DATA_LEVELS_SQL = 'level IN (0, 1)';

/** A row of `hot_files`. */
export interface HotFileRecord {
  id: number;
  dataset: string;
  level: HotLevel;
  /** Relative to the state directory. */
  path: string;
  window_start_us: number;
  partition_json: string;
  min_ts_us: number;
  max_ts_us: number;
  record_count: number;
  file_size_bytes: number;
  stats_json: string;
  created_at_us: number;
}
