/**
 * Read-only access to the landing database for the query engine: which files each
 * dataset has (`hot_files`: data files L0 + L1 apart from rollup files, level 2)
 * and the newest quarantined messages. One read-only
 * better-sqlite3 connection on the main thread; every read is a short indexed WAL
 * snapshot read that never blocks the writer.
 */
import Database from 'better-sqlite3';
import { HOT_LEVEL } from '../landing/schema.ts';

export interface DatasetFiles {
  /** L0 + L1: the dataset's rows. */
  data: string[];
  /**
   * The distinct column sets of the data files: each the file's field ids (the keys of
   * `value_counts` in its stats_json, which the writer fills for every column it
   * writes), ascending, comma-joined; '' for a file whose stats do not say.
   */
  dataFieldIds: string[];
  /** Per-minute rollups (hot/rollup.ts). */
  rollups: string[];
  /** The distinct column sets of the rollup files, in the form of `dataFieldIds` (rollup field ids). */
  rollupFieldIds: string[];
  /** Per rollup file (parallel to `rollups`): the event times it summarises, [min_ts_us, max_ts_us]. */
  rollupTimes: [number, number][];
}

export interface QuarantineRow {
  id: number;
  received_at_us: number;
  source: string;
  coordinates: string;
  dataset: string | null;
  reason_code: string;
  reason: string;
  payload_bytes: number;
}

export class RegistryReader {
  private readonly db: Database.Database;

  constructor(dbPath: string) {
    this.db = new Database(dbPath, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
  }

  /** Dataset → its registered file paths (relative to the state dir), in registration order; one snapshot. */
  hotFiles(): Map<string, DatasetFiles> {
    const files = new Map<string, DatasetFiles>();
    // The field ids are read by SQLite (json_each) so no stats_json text crosses into JS.
    const rows = this.db
      .prepare(
        `SELECT dataset, level, path, min_ts_us, max_ts_us,
           coalesce((
             SELECT group_concat(key, ',') FROM (
               SELECT key FROM json_each(CASE WHEN json_valid(stats_json) THEN stats_json ELSE '{}' END, '$.value_counts')
               ORDER BY CAST(key AS INTEGER))), '') AS field_ids
         FROM hot_files ORDER BY id`,
      )
      .all() as { dataset: string; level: number; path: string; min_ts_us: number; max_ts_us: number; field_ids: string }[];
    // Per dataset and kind ('d' data, 'r' rollup): the field id sets seen so far.
    const fieldIdSets = new Map<string, Set<string>>();
    const note = (key: string, fieldIds: string, into: string[]): void => {
      let seen = fieldIdSets.get(key);
      if (!seen) fieldIdSets.set(key, (seen = new Set()));
      if (!seen.has(fieldIds)) {
        seen.add(fieldIds);
        into.push(fieldIds);
      }
    };
    for (const row of rows) {
      let entry = files.get(row.dataset);
      if (!entry) files.set(row.dataset, (entry = { data: [], dataFieldIds: [], rollups: [], rollupFieldIds: [], rollupTimes: [] }));
      if (row.level === HOT_LEVEL.ROLLUP) {
        entry.rollups.push(row.path);
        entry.rollupTimes.push([row.min_ts_us, row.max_ts_us]);
        note(`r\0${row.dataset}`, row.field_ids, entry.rollupFieldIds);
      } else if (row.level === HOT_LEVEL.L0 || row.level === HOT_LEVEL.L1) {
        entry.data.push(row.path);
        note(`d\0${row.dataset}`, row.field_ids, entry.dataFieldIds);
      }
    }
    return files;
  }

  maxQuarantineId(): number {
    return (this.db.prepare('SELECT coalesce(max(id), 0) FROM quarantine').pluck().get() as number) ?? 0;
  }

  /** Quarantined rows with id > `afterId`, the newest `limit` of them, oldest first. */
  quarantineAfter(afterId: number, limit: number): QuarantineRow[] {
    const rows = this.db
      .prepare(
        `SELECT id, received_at_us, source, coordinates, dataset, reason_code, reason, payload_bytes
         FROM quarantine WHERE id > ? ORDER BY id DESC LIMIT ?`,
      )
      .all(afterId, limit) as QuarantineRow[];
    return rows.reverse();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
