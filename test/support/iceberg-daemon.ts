// Child daemons that commit to a real Iceberg REST catalog, for the fault tests of the
// Iceberg issue: the `frames` folder config of the tiering tests (camera frames dropped
// into a folder, one row per file) with a versitygw warm store and `catalog.type: rest`;
// reading the daemon's tier map and outbox; and the closing proof, read back with
// PyIceberg: every uploaded data file is in the table exactly once and the scan returns
// every dropped frame exactly once.
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { S3Server } from '../services/s3-server.ts';
import { pyicebergBatch, type PyDataFile, type PyScan, type PySnapshot } from '../services/pyiceberg.ts';
import { framesTieringConfig } from './tiering-daemon-config.ts';

export const AGENT_ID = 'agent_a';

export interface IcebergDaemonConfig {
  plant: string;
  stateDir: string;
  dropDir: string;
  apiPort: number;
  s3: S3Server;
  /** Key prefix of the warm store in bucket `warm`. */
  warmPrefix: string;
  catalogUri: string;
  namespace: string;
  requestTimeoutMs?: number;
}

/** The daemon config (YAML): frames into warm S3, committed to the REST catalog every second. */
export function icebergDaemonConfig(c: IcebergDaemonConfig): string {
  return `${framesTieringConfig({ plant: c.plant, stateDir: c.stateDir, dropDir: c.dropDir, apiPort: c.apiPort })}  warm: { url: "s3://warm/${c.warmPrefix}", endpoint: "${c.s3.endpoint}", region: ${c.s3.region}, force_path_style: true, credentials: { access_key_id: "\${env:LAKESIDE_TEST_S3_KEY}", secret_access_key: "\${env:LAKESIDE_TEST_S3_SECRET}" } }
  scan_interval_ms: 200
  upload_concurrency: 2
  retry_initial_ms: 100
  retry_max_ms: 1000
  max_attempts: 1000
  wait_for_hour_merge: false
catalog:
  type: rest
  rest: { uri: "${c.catalogUri}", request_timeout_ms: ${c.requestTimeoutMs ?? 10_000} }
  namespace: [${c.namespace}]
  commit_interval_seconds: 1
`;
}

/** Env of the daemon: the S3 keys its config references. */
export function s3Env(s3: S3Server): NodeJS.ProcessEnv {
  return { LAKESIDE_TEST_S3_KEY: s3.accessKeyId, LAKESIDE_TEST_S3_SECRET: s3.secretAccessKey };
}

/** Drops small frames `names` under `<dropDir>/<line>/`, 5 minutes old (their windows are closed). */
export function dropFrames(dropDir: string, line: string, names: string[]): void {
  const past = (Date.now() - 5 * 60_000) / 1000;
  mkdirSync(join(dropDir, line), { recursive: true });
  for (const name of names) {
    const path = join(dropDir, line, name);
    writeFileSync(path, randomBytes(512));
    utimesSync(path, past, past);
  }
}

export function frameNames(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}.bin`);
}

function withDb<T>(stateDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

export interface DataTierRow {
  id: number;
  object_key: string;
  state: string;
}

/** The tier map's data files (uploaded L1 files and those not yet uploaded). */
export function dataTierRows(stateDir: string): DataTierRow[] {
  return withDb(stateDir, (db) =>
    hasTable(db, 'tier_files') ? (db.prepare(`SELECT id, object_key, state FROM tier_files WHERE kind = 'data' ORDER BY id`).all() as DataTierRow[]) : [],
  );
}

/** The state directory's instance id (the fence's identity), from the outbox. */
export function instanceId(stateDir: string): string {
  return withDb(stateDir, (db) => db.prepare(`SELECT value FROM sync_state WHERE key = 'instance_id'`).pluck().get() as string);
}

export interface CommitRow {
  seq: number;
  kind: string;
  state: string;
  attempts: number;
  files: number;
}

/** The outbox's commits, with how many files each holds. */
export function outboxCommits(stateDir: string): CommitRow[] {
  return withDb(stateDir, (db) =>
    hasTable(db, 'sync_commits')
      ? (db
          .prepare(`SELECT c.seq, c.kind, c.state, c.attempts, (SELECT count(*) FROM sync_files f WHERE f.seq = c.seq) AS files FROM sync_commits c ORDER BY c.seq`)
          .all() as CommitRow[])
      : [],
  );
}

/** Outbox files per state (waiting, batched, committed …). */
export function outboxFileStates(stateDir: string): Record<string, number> {
  return withDb(stateDir, (db) => {
    if (!hasTable(db, 'sync_files')) return {};
    const rows = db.prepare(`SELECT state, count(*) AS n FROM sync_files GROUP BY state`).all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  });
}

/**
 * The local side is done: the drop folder is empty, no row is waiting in the landing
 * table (all sealed), no L0 file is left, every L1 file is in the tier map and every
 * data file of the tier map is committed.
 */
export function drained(stateDir: string, dropDir: string): boolean {
  const left = readdirSync(dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin'));
  if (left.length > 0) return false;
  return withDb(stateDir, (db) => {
    if (!hasTable(db, 'tier_files')) return false;
    const landed = hasTable(db, 'landed_frames')
      ? (db.prepare(`SELECT count(*) FROM landed_frames WHERE id > coalesce((SELECT id FROM sealed_through WHERE dataset = 'frames'), 0)`).pluck().get() as number)
      : 0;
    if (landed > 0) return false;
    const l0 = db.prepare(`SELECT count(*) FROM hot_files WHERE level = 0`).pluck().get() as number;
    const untiered = db
      .prepare(`SELECT count(*) FROM hot_files h WHERE h.level = 1 AND NOT EXISTS (SELECT 1 FROM tier_files t WHERE t.local_path = h.path)`)
      .pluck()
      .get() as number;
    const uncommitted = db.prepare(`SELECT count(*) FROM tier_files WHERE kind = 'data' AND state <> 'committed'`).pluck().get() as number;
    const data = db.prepare(`SELECT count(*) FROM tier_files WHERE kind = 'data'`).pluck().get() as number;
    return l0 === 0 && untiered === 0 && uncommitted === 0 && data > 0;
  });
}

export interface TableView {
  files: PyDataFile[];
  scan: PyScan;
  snapshots: PySnapshot[];
}

/** PyIceberg's view of `<namespace>.frames`: data files of the current snapshot, the rows (line, file), every snapshot. */
export async function readTable(properties: Record<string, string>, namespace: string): Promise<TableView> {
  const table = `${namespace}.frames`;
  const [files, scan, snapshots] = await pyicebergBatch<[PyDataFile[], PyScan, PySnapshot[]]>(properties, [
    { op: 'files', args: { table } },
    { op: 'scan', args: { table, selected_fields: ['line', 'file'], with_rows: true } },
    { op: 'snapshots', args: { table } },
  ]);
  return { files, scan, snapshots };
}

/** Values present more than once. */
export function repeated<T>(values: T[]): T[] {
  const seen = new Set<T>();
  const twice = new Set<T>();
  for (const v of values) (seen.has(v) ? twice : seen).add(v);
  return [...twice];
}

/**
 * The closing proof: in PyIceberg's view no data file is listed twice and the files are
 * exactly the tier map's data files of `stateDir` (all committed there); no commit seq
 * of the agent appears in two snapshots; the scan holds every frame of `frames`
 * (`line/file`) exactly once and nothing else.
 */
export function expectExactlyOnce(view: TableView, o: { stateDir: string; warmPrefix: string; frames: string[] }): void {
  const paths = view.files.map((f) => f.file_path);
  expect(repeated(paths)).toEqual([]);
  const rows = dataTierRows(o.stateDir);
  expect(rows.filter((r) => r.state !== 'committed')).toEqual([]);
  expect([...paths].sort()).toEqual(rows.map((r) => `s3://warm/${o.warmPrefix}/${r.object_key}`).sort());
  const seqs = view.snapshots.filter((s) => s.summary['lakeside.agent-id'] === AGENT_ID).map((s) => s.summary['lakeside.commit-seq']);
  expect(repeated(seqs)).toEqual([]);
  const got = (view.scan.rows ?? []).map((r) => `${String(r.line)}/${String(r.file)}`);
  expect(repeated(got)).toEqual([]);
  expect(got.sort()).toEqual([...o.frames].sort());
  expect(view.scan.row_count).toBe(o.frames.length);
}
