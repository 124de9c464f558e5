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
  /** Per-minute rollups (hot/rollup.ts). */
  rollups: string[];
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
    const rows = this.db.prepare('SELECT dataset, level, path FROM hot_files ORDER BY id').all() as { dataset: string; level: number; path: string }[];
    for (const row of rows) {
      let entry = files.get(row.dataset);
      if (!entry) files.set(row.dataset, (entry = { data: [], rollups: [] }));
      if (row.level === HOT_LEVEL.ROLLUP) entry.rollups.push(row.path);
      else if (row.level === HOT_LEVEL.L0 || row.level === HOT_LEVEL.L1) entry.data.push(row.path);
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
