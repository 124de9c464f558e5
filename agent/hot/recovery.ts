/**
 * Start-up recovery of the hot tier, run before any seal or compaction.
 *
 * `<state>/hot` belongs to the hot tier alone, and `hot_files` is the truth: after a
 * crash the directory may hold `.tmp-*` files (a write cut short), Parquet files
 * that were published but never registered (crash between rename and commit; L0,
 * L1 and rollup files alike: every level lives under hot/ and in hot_files), and
 * L0 files whose rows a committed L1 already holds (crash before their unlink).
 * All three are deleted: their rows are either still landed or in a registered file.
 * Sealed rows still in the landing tables (a purge cut short, purge.ts) are deleted
 * too: harmless, as readers apply the watermark, but they hold space.
 * A registered file missing on disk is reported, never silently unregistered: that
 * is data loss to be alerted on, not a state to paper over.
 */
import type Database from 'better-sqlite3';
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { HotFileRecord } from '../landing/schema.ts';
import { isTempName } from './atomic-file.ts';
import { HOT_DIR } from './paths.ts';
import { purgeSealed } from './purge.ts';

export interface RecoveryReport {
  /** Paths relative to the state directory. */
  tempFilesDeleted: string[];
  orphansDeleted: string[];
  /** Registered files not found on disk (still registered). */
  missing: HotFileRecord[];
  emptyDirsRemoved: number;
  /** Sealed rows still in the landing tables, now deleted. */
  sealedRowsPurged: number;
}

export function recoverHotTier(db: Database.Database, stateDir: string): RecoveryReport {
  const report: RecoveryReport = { tempFilesDeleted: [], orphansDeleted: [], missing: [], emptyDirsRemoved: 0, sealedRowsPurged: 0 };
  const registered = db.prepare(`SELECT * FROM hot_files ORDER BY id`).all() as HotFileRecord[];
  const known = new Set(registered.map((r) => r.path));
  const root = join(stateDir, HOT_DIR);
  const toRelative = (path: string): string => relative(stateDir, path).split(sep).join('/');

  /** Returns true when `dir` ended up empty (and was removed, unless it is the root). */
  const walk = (dir: string): boolean => {
    let empty = true;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (walk(path)) {
          rmdirSync(path);
          report.emptyDirsRemoved++;
        } else empty = false;
        continue;
      }
      const rel = toRelative(path);
      if (isTempName(entry.name)) {
        unlinkSync(path);
        report.tempFilesDeleted.push(rel);
      } else if (entry.name.endsWith('.parquet') && !known.has(rel)) {
        unlinkSync(path);
        report.orphansDeleted.push(rel);
      } else empty = false;
    }
    return empty;
  };
  if (existsSync(root)) walk(root);
  for (const record of registered) if (!existsSync(join(stateDir, record.path))) report.missing.push(record);
  for (const dataset of db.prepare('SELECT dataset FROM sealed_through').pluck().all() as string[]) report.sealedRowsPurged += purgeSealed(db, dataset);
  return report;
}
