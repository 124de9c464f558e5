/**
 * `lakeside verify`: checks the local state against itself, and with `repair` fixes
 * what can be fixed without losing or inventing data.
 *
 * Checks: SQLite `PRAGMA integrity_check` of landing.db; the hot-tier register
 * (`hot_files`) against the files under `hot/` (registered files missing on disk,
 * Parquet files nobody registered, `.tmp-` files left by a cut-short write); the
 * `blobs` table against `blobs/` (missing blob files, unreferenced blob files, temp
 * files); the tier map (`tier_files`) against the files on disk: a file marked
 * `present` that is missing, a file marked `evicted` that is still there (a leftover:
 * harmless, reported as info). Files the tier map knows are checked there only (an
 * evicted data file is neither a missing hot file nor an unregistered one, an evicted
 * blob is not a missing blob).
 *
 * Repair rules (the same ones start-up recovery applies, plus two):
 * - temp files, unregistered Parquet files and unreferenced blobs are deleted: their
 *   rows are either still landed or in a registered file (hot/recovery.ts);
 * - a missing registered file is unregistered only when that is safe: it held no
 *   rows, or it is the dataset's newest L0 file and every row it held is still in the
 *   landing table (sealed but not yet purged), so lowering the seal watermark lands
 *   them again and the next seal rewrites the same rows; otherwise its rows exist
 *   nowhere on this machine and verify says so (never hides the loss);
 * - a tier-map file marked present but missing whose object the warm (or cold) store
 *   holds (uploaded or later) is marked evicted and, a data file, unregistered from
 *   `hot_files`, in one transaction: what eviction does (tiering/evictor.ts); one never
 *   uploaded (`local`) is lost on this machine and verify says so; a leftover of an
 *   evicted file that a store holds is deleted, one of a `dropped` file is kept (the
 *   only copy of rows the disk budget dropped);
 * - a corrupt landing.db is never touched: verify says how to recover it.
 * Repair needs the state directory's lock (the daemon stopped): a running daemon
 * writes temp files and registers files while we look.
 */
import { existsSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import Database from 'better-sqlite3';
import { isTempName } from '../hot/atomic-file.ts';
import { HOT_DIR } from '../hot/paths.ts';
import { HOT_LEVEL, landedTable, sealedThrough, type HotFileRecord } from '../landing/schema.ts';
import { acquireStateLock } from '../state-lock.ts';
import type { TierRecord } from '../../tiering/tier-map.ts';

export type FindingKind =
  | 'sqlite_corrupt'
  | 'sqlite_unreadable'
  | 'hot_file_missing'
  | 'hot_file_unregistered'
  | 'temp_file'
  | 'blob_missing'
  | 'blob_unreferenced'
  | 'tier_file_missing'
  | 'tier_file_leftover';

export interface Finding {
  kind: FindingKind;
  /** Relative to the state directory, when about a file. */
  path?: string;
  detail: string;
  /** What --repair did, or null when it did nothing (yet). */
  repaired: string | null;
  /** Why it cannot be repaired automatically, and what to do instead. */
  cannotRepair?: string;
  /** Harmless (nothing is lost or wrong): reported, not counted as a problem. */
  info?: true;
}

export interface VerifyReport {
  stateDir: string;
  findings: Finding[];
  /** False when the daemon holds the state directory (then repair was refused). */
  daemonStopped: boolean;
  checked: { hotFiles: number; blobs: number; tierFiles: number };
}

export interface VerifyOptions {
  repair?: boolean;
}

const toRelative = (stateDir: string, path: string): string => relative(stateDir, path).split(sep).join('/');

/** Every file below `dir` (absolute paths), or nothing when it does not exist. */
function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

export async function verifyState(stateDir: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  if (!existsSync(stateDir)) {
    return { stateDir, daemonStopped: true, checked: { hotFiles: 0, blobs: 0, tierFiles: 0 }, findings: [{ kind: 'sqlite_unreadable', detail: `${stateDir} does not exist`, repaired: null, cannotRepair: 'check state_dir in the config' }] };
  }
  let release: (() => Promise<void>) | null = null;
  try {
    release = await acquireStateLock(stateDir);
  } catch (error) {
    if ((error as { code?: string }).code !== 'STATE_DIR_LOCKED') throw error;
  }
  const report: VerifyReport = { stateDir, findings: [], daemonStopped: release !== null, checked: { hotFiles: 0, blobs: 0, tierFiles: 0 } };
  const repair = options.repair === true && release !== null;
  try {
    const dbPath = join(stateDir, 'landing.db');
    if (!existsSync(dbPath)) {
      report.findings.push({ kind: 'sqlite_unreadable', path: 'landing.db', detail: 'landing.db does not exist (a state directory the agent never ran in?)', repaired: null, cannotRepair: 'nothing to verify' });
      return report;
    }
    const db = new Database(dbPath, { readonly: !repair, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 10000');
      const healthy = checkIntegrity(db, report);
      if (healthy) {
        const tiered = checkTierMap(db, stateDir, report, repair);
        checkHotTier(db, stateDir, report, repair, tiered);
        checkBlobs(db, stateDir, report, repair, tiered);
      }
    } finally {
      db.close();
    }
    for (const path of filesBelow(stateDir).filter((p) => isTempName(p.split(sep).pop()!))) fixTemp(stateDir, path, report, repair);
    return report;
  } finally {
    await release?.();
  }
}

function checkIntegrity(db: Database.Database, report: VerifyReport): boolean {
  const advice =
    'stop the daemon, keep a copy of landing.db, then rebuild it with `sqlite3 landing.db ".recover" | sqlite3 recovered.db` and check what was lost; verify never rewrites a corrupt database';
  try {
    const problems = db.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
    const messages = problems.map((p) => p.integrity_check).filter((m) => m !== 'ok');
    if (messages.length === 0) return true;
    report.findings.push({
      kind: 'sqlite_corrupt',
      path: 'landing.db',
      detail: `PRAGMA integrity_check: ${messages.slice(0, 5).join('; ')}${messages.length > 5 ? ` (+${messages.length - 5} more)` : ''}`,
      repaired: null,
      cannotRepair: advice,
    });
  } catch (error) {
    report.findings.push({ kind: 'sqlite_corrupt', path: 'landing.db', detail: `integrity_check failed: ${(error as Error).message}`, repaired: null, cannotRepair: advice });
  }
  return false;
}

function checkHotTier(db: Database.Database, stateDir: string, report: VerifyReport, repair: boolean, tiered: ReadonlySet<string>): void {
  const registered = db.prepare('SELECT * FROM hot_files ORDER BY id').all() as HotFileRecord[];
  report.checked.hotFiles = registered.length;
  const known = new Set(registered.map((r) => r.path));
  for (const path of filesBelow(join(stateDir, HOT_DIR))) {
    const rel = toRelative(stateDir, path);
    if (path.endsWith('.parquet') && !isTempName(path.split(sep).pop()!) && !known.has(rel) && !tiered.has(rel)) {
      if (repair) unlinkSync(path);
      report.findings.push({
        kind: 'hot_file_unregistered',
        path: rel,
        detail: 'a Parquet file no hot_files row registers (a crash between publish and commit); its rows are still landed or in a registered file',
        repaired: repair ? 'deleted' : null,
      });
    }
  }
  for (const record of registered) {
    if (tiered.has(record.path) || existsSync(join(stateDir, record.path))) continue;
    const finding: Finding = { kind: 'hot_file_missing', path: record.path, detail: `registered (${record.record_count} rows, level ${record.level}) but not on disk`, repaired: null };
    const safe = safeToUnregister(db, record, registered);
    if (safe.ok) {
      if (repair) {
        db.transaction(() => {
          db.prepare('DELETE FROM hot_files WHERE id = ?').run(record.id);
          if (safe.lowerWatermarkTo !== undefined) db.prepare('UPDATE sealed_through SET id = ? WHERE dataset = ?').run(safe.lowerWatermarkTo, record.dataset);
        })();
        finding.repaired = safe.how;
      }
    } else finding.cannotRepair = safe.why;
    report.findings.push(finding);
  }
}

type Safety = { ok: true; how: string; lowerWatermarkTo?: number } | { ok: false; why: string };

/** See the header: a missing file may go from the register only if no row is lost by it. */
function safeToUnregister(db: Database.Database, record: HotFileRecord, registered: HotFileRecord[]): Safety {
  if (record.record_count === 0) return { ok: true, how: 'unregistered (it held no rows)' };
  const lost = `its ${record.record_count} rows are nowhere else on this machine: restore the file from a backup, or accept the loss and unregister it by hand (DELETE FROM hot_files WHERE id = ${record.id})`;
  if (record.level !== HOT_LEVEL.L0) return { ok: false, why: lost };
  const ids = /^(\d+)-(\d+)\.parquet$/.exec(record.path.split('/').pop()!);
  if (!ids) return { ok: false, why: lost };
  const [first, last] = [Number(ids[1]), Number(ids[2])];
  const newest = registered.filter((r) => r.dataset === record.dataset && r.level === HOT_LEVEL.L0 && r.id > record.id);
  if (newest.length > 0 || sealedThrough(db, record.dataset) !== last) return { ok: false, why: lost };
  const table = landedTable(record.dataset);
  const present = db.prepare(`SELECT count(*) FROM "${table}" WHERE id BETWEEN ? AND ?`).pluck().get(first, last) as number;
  if (present !== record.record_count) return { ok: false, why: lost };
  return { ok: true, how: `unregistered; its ${present} rows are still in the landing table and land again (watermark lowered to ${first - 1}), the next seal rewrites them`, lowerWatermarkTo: first - 1 };
}

function checkBlobs(db: Database.Database, stateDir: string, report: VerifyReport, repair: boolean, tiered: ReadonlySet<string>): void {
  const root = join(stateDir, 'blobs');
  const known = new Set(db.prepare('SELECT sha256 FROM blobs').pluck().all() as string[]);
  report.checked.blobs = known.size;
  const onDisk = new Set<string>();
  for (const path of filesBelow(root)) {
    const rel = toRelative(stateDir, path);
    const [shard, name] = rel.split('/').slice(1);
    if (shard === '.tmp') {
      fixTemp(stateDir, path, report, repair);
      continue;
    }
    if (!shard || !name || !/^[0-9a-f]{2}$/.test(shard)) continue;
    onDisk.add(name);
    if (!known.has(name)) {
      if (repair) unlinkSync(path);
      report.findings.push({ kind: 'blob_unreferenced', path: rel, detail: 'a blob file no committed row references (a crash before its commit)', repaired: repair ? 'deleted' : null });
    }
  }
  for (const sha of known) {
    if (onDisk.has(sha) || tiered.has(`blobs/${sha.slice(0, 2)}/${sha}`)) continue;
    report.findings.push({
      kind: 'blob_missing',
      path: `blobs/${sha.slice(0, 2)}/${sha}`,
      detail: 'a blob rows reference is not on disk',
      repaired: null,
      cannotRepair: 'the image is lost on this machine: restore it from a backup or from the warm bucket once tiering holds it',
    });
  }
}

/** States in which the warm or cold store holds the object (or held it until its retention ended). */
const STORED = ['uploaded', 'committed', 'archived', 'expired'];

/** The tier map against the disk (see the header); returns the paths it knows. */
function checkTierMap(db: Database.Database, stateDir: string, report: VerifyReport, repair: boolean): Set<string> {
  if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tier_files'`).get()) return new Set();
  const rows = db.prepare('SELECT id, kind, dataset, local_path, object_key, state, local_state FROM tier_files ORDER BY id').all() as Pick<
    TierRecord,
    'id' | 'kind' | 'dataset' | 'local_path' | 'object_key' | 'state' | 'local_state'
  >[];
  report.checked.tierFiles = rows.length;
  const nowUs = Date.now() * 1000;
  for (const row of rows) {
    // `evicting`: an eviction a crash cut short; tiering finishes it at start-up.
    if (row.local_state === 'evicting') continue;
    const onDisk = existsSync(join(stateDir, row.local_path));
    const what = row.kind === 'data' ? `data file of ${row.dataset}` : 'blob';
    const where = row.state === 'archived' ? 'cold' : row.state === 'expired' ? 'no' : 'warm';
    if (row.local_state === 'present' && !onDisk) {
      const finding: Finding = { kind: 'tier_file_missing', path: row.local_path, detail: `${what}, ${row.state} in the tier map and marked present, not on disk`, repaired: null };
      if (STORED.includes(row.state)) {
        if (repair) {
          db.transaction(() => {
            db.prepare(`UPDATE tier_files SET local_state = 'evicted', evicted_us = ? WHERE id = ? AND local_state = 'present'`).run(nowUs, row.id);
            if (row.kind === 'data') db.prepare('DELETE FROM hot_files WHERE path = ?').run(row.local_path);
          })();
          finding.repaired =
            where === 'no'
              ? 'marked evicted (expired: its retention is over everywhere)'
              : `marked evicted${row.kind === 'data' ? ' and unregistered from the hot tier' : ''}: the ${where} store holds it at ${row.object_key}`;
        }
      } else {
        finding.cannotRepair =
          `${row.kind === 'data' ? 'its rows are' : 'the image is'} lost on this machine and not uploaded: restore the file from a backup; ` +
          `or accept the loss: DELETE FROM hot_files WHERE path = '${row.local_path}'; UPDATE tier_files SET state = 'dropped', local_state = 'evicted' WHERE id = ${row.id}`;
      }
      report.findings.push(finding);
    } else if (row.local_state === 'evicted' && onDisk) {
      const finding: Finding = { kind: 'tier_file_leftover', path: row.local_path, detail: `${what}, evicted in the tier map (${row.state}) but still on disk`, repaired: null, info: true };
      const registered = row.kind === 'data' && db.prepare('SELECT 1 FROM hot_files WHERE path = ?').get(row.local_path) !== undefined;
      if (!STORED.includes(row.state) || registered) {
        finding.cannotRepair = registered
          ? 'the hot tier still registers it: leave it'
          : 'it is the only copy of rows the disk budget dropped (never uploaded): lakeside ignores it; delete it by hand once it is not needed';
      } else if (repair) {
        unlinkSync(join(stateDir, row.local_path));
        finding.repaired = `deleted (the ${where === 'no' ? 'retention is over; nothing' : `${where} store`} keeps it)`;
      }
      report.findings.push(finding);
    }
  }
  return new Set(rows.map((r) => r.local_path));
}

function fixTemp(stateDir: string, path: string, report: VerifyReport, repair: boolean): void {
  if (repair) unlinkSync(path);
  const bytes = repair ? null : statSync(path, { throwIfNoEntry: false })?.size;
  report.findings.push({
    kind: 'temp_file',
    path: toRelative(stateDir, path),
    detail: `a temp file left by a write that was cut short${bytes !== null && bytes !== undefined ? ` (${bytes} bytes)` : ''}`,
    repaired: repair ? 'deleted' : null,
  });
}
