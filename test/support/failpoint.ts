// Helpers for the fault tests (crash.test.ts, disk-full.test.ts): arming failpoints
// (agent/failpoint.ts) in a child daemon, waiting for conditions instead of sleeping,
// waiting for the daemon's MQTT subscriptions at the broker, and auditing a state
// directory after the daemon stopped (temp files, unregistered or missing Parquet
// files, orphan blobs).
import Database from 'better-sqlite3';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { ChildDaemon, LogLine } from './child-daemon.ts';

/** The failpoints compiled into the daemon (see agent/failpoint.ts). */
export type FailpointName =
  | 'seal.after-publish'
  | 'compact.after-publish'
  | 'compact.after-commit'
  | 'landing.before-commit'
  | 'tiering.after-put'
  | 'tiering.after-cold-put'
  | 'tiering.after-warm-delete'
  | 'kafka.after-landing'
  | 'merge.after-publish'
  | 'merge.after-commit'
  | 'catalog.before-commit'
  | 'catalog.after-commit';

/** Env for a child daemon with the given failpoints armed. */
export function failpointEnv(...names: FailpointName[]): NodeJS.ProcessEnv {
  return { LAKESIDE_FAILPOINTS: names.join(',') };
}

/** The daemon froze at `name`; resolves with the line (its `files` are the step's files). */
export async function waitForFailpoint(daemon: ChildDaemon, name: FailpointName, timeoutMs = 60_000): Promise<{ line: LogLine; files: string[] }> {
  const line = await daemon.waitForMsg(`failpoint ${name}`, timeoutMs);
  const files = (line.json?.files as string[] | undefined) ?? [];
  return { line, files };
}

/** Polls `cond` (sync or async; a throw counts as "not yet") until it holds. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string), everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const text = typeof what === 'string' ? what : what();
      const cause = lastError ? ` (last error: ${(lastError as Error).message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${text}${cause}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until the broker logged a SUBSCRIBE to `filter` by every client id. Needs
 * `log_type subscribe` in the broker config. Publishing before that would be acked by
 * the broker and dropped (no subscriber yet), which is not lakeside's loss.
 */
export async function waitForSubscriptions(logFile: string, clientIds: string[], filter: string, timeoutMs = 30_000): Promise<void> {
  await until(
    () => {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      return clientIds.every((id) => log.includes(`: ${id} 1 ${filter}`));
    },
    timeoutMs,
    `SUBSCRIBE ${filter} by ${clientIds.join(', ')} in ${logFile}`,
    50,
  );
}

/** Registered hot-tier files per level, read without disturbing the daemon (WAL reader). */
export function hotFileLevels(dbPath: string): { l0: number; l1: number } {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT level, count(*) AS n FROM hot_files GROUP BY level').all() as { level: number; n: number }[];
    return { l0: rows.find((r) => r.level === 0)?.n ?? 0, l1: rows.find((r) => r.level === 1)?.n ?? 0 };
  } finally {
    db.close();
  }
}

export function registeredPaths(dbPath: string): Set<string> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return new Set(db.prepare('SELECT path FROM hot_files').pluck().all() as string[]);
  } finally {
    db.close();
  }
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

export interface StateAudit {
  /** `.tmp-*` files anywhere, and anything left in blobs/.tmp/. */
  tempFiles: string[];
  /** *.parquet under hot/ that hot_files does not list. */
  unregisteredParquet: string[];
  /** hot_files rows whose file is not on disk. */
  missingParquet: string[];
  /** Blob files with no `blobs` row. */
  orphanBlobs: string[];
  /** `blobs` rows with no file. */
  missingBlobs: string[];
  l0: number;
  l1: number;
}

/** Audits a stopped daemon's state directory. */
export function auditStateDir(stateDir: string): StateAudit {
  const rel = (p: string): string => relative(stateDir, p).split(sep).join('/');
  const files = walk(stateDir).map(rel);
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    const registered = new Set(db.prepare('SELECT path FROM hot_files').pluck().all() as string[]);
    const blobs = new Set(db.prepare('SELECT sha256 FROM blobs').pluck().all() as string[]);
    const onDisk = new Set(files);
    const blobFiles = files.filter((f) => /^blobs\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(f));
    return {
      tempFiles: files.filter((f) => f.split('/').pop()!.startsWith('.tmp-') || f.startsWith('blobs/.tmp/')),
      unregisteredParquet: files.filter((f) => f.startsWith('hot/') && f.endsWith('.parquet') && !registered.has(f)),
      missingParquet: [...registered].filter((p) => !onDisk.has(p)),
      orphanBlobs: blobFiles.filter((f) => !blobs.has(f.split('/').pop()!)),
      missingBlobs: [...blobs].filter((sha) => !onDisk.has(`blobs/${sha.slice(0, 2)}/${sha}`)),
      ...(() => {
        const levels = db.prepare('SELECT level, count(*) AS n FROM hot_files GROUP BY level').all() as { level: number; n: number }[];
        return { l0: levels.find((r) => r.level === 0)?.n ?? 0, l1: levels.find((r) => r.level === 1)?.n ?? 0 };
      })(),
    };
  } finally {
    db.close();
  }
}

/** `PRAGMA integrity_check` of a (stopped daemon's) landing database. */
export function integrityCheck(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('PRAGMA integrity_check').pluck().all() as string[]).join('\n');
  } finally {
    db.close();
  }
}

/** Seqs in `expected` missing from `seen`, capped for readable failure messages. */
export function missingOf(expected: Iterable<number>, seen: Map<number, number> | Set<number>): number[] {
  const out: number[] = [];
  for (const s of expected) if (!seen.has(s)) out.push(s);
  return out;
}

/** Seqs present more than once. */
export function duplicatesOf(counts: Map<number, number>): number[] {
  return [...counts].filter(([, n]) => n > 1).map(([s]) => s);
}
