// Three agents (three plants, three child daemons, each with its own state directory and
// warm prefix on the same S3 server) commit to the SAME table of the Apache Iceberg REST
// fixture at once, for about three minutes of continuous ingest, with
// `commit_interval_seconds: 1` (and a low `manifest_merge_threshold`, so manifest merges
// race the other agents' appends too). Camera frames are dropped into each plant's
// folder throughout, mtime 5 minutes back, so every compaction step makes late L1 files
// that are uploaded and committed at once. Then, with PyIceberg as the reader:
//   - every data file each agent committed (its outbox) is in the table exactly once,
//     and the table holds no other file; every uploaded data file is committed;
//   - the scan returns every dropped frame exactly once, per plant (the plant column
//     projected from the partition);
//   - no commit is lost: each `committed` seq of an agent's `sync_commits` appears in the
//     ancestry of main exactly once, in increasing order, and no abandoned seq appears;
//   - the agents really conflicted (409s counted by lakeside_catalog_errors_total).
// Services are started for real; a missing one fails the suite (never skips).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { framesTieringConfig } from '../support/tiering-daemon-config.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIcebergRest, type IcebergRest } from '../services/iceberg-rest.ts';
import { pyicebergBatch, type PyDataFile, type PyScan, type PySnapshot } from '../services/pyiceberg.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { startDaemon, type ChildDaemon } from '../support/child-daemon.ts';
import { until } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';

const INGEST_MS = Number(process.env.LAKESIDE_FLEET_INGEST_MS ?? 180_000);
const DROP_EVERY_MS = 700;
const LINES = ['l1', 'l2'];
const TOKEN = 'fleet-read-token';
const TABLE = 'lakeside.frames';

interface Agent {
  plant: string;
  agentId: string;
  stateDir: string;
  dropDir: string;
  apiPort: number;
  daemon?: ChildDaemon;
  /** `${line}/${file}` of every frame dropped. */
  dropped: string[];
}

function agentConfig(a: Agent, s3: S3Server, rest: IcebergRest): string {
  return `${framesTieringConfig({ plant: a.plant, agentId: a.agentId, stateDir: a.stateDir, dropDir: a.dropDir, apiPort: a.apiPort, readToken: '\${env:FLEET_READ_TOKEN}' })}  warm: { url: "s3://warm/${a.plant}", endpoint: "${s3.endpoint}", region: ${s3.region}, force_path_style: true, credentials: { access_key_id: "\${env:LAKESIDE_TEST_S3_KEY}", secret_access_key: "\${env:LAKESIDE_TEST_S3_SECRET}" } }
  wait_for_hour_merge: false
  scan_interval_ms: 200
  retry_initial_ms: 100
  retry_max_ms: 1000
catalog:
  type: rest
  rest: { uri: "${rest.uri}", request_timeout_ms: 30000 }
  commit_interval_seconds: 1
  manifest_merge_threshold: 20
`;
}

/** What is still open per agent: nothing once everything dropped is ingested, compacted, uploaded and committed. */
function openWork(a: Agent): Record<string, number> | string {
  const files = (dir: string): number => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0);
  const db = new Database(join(a.stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (sql: string): number => db.prepare(sql).pluck().get() as number;
    const open = {
      dropped: files(a.dropDir),
      l0: count(`SELECT COUNT(*) FROM hot_files WHERE dataset = 'frames' AND level = 0`),
      l1NotCommitted: count(
        `SELECT COUNT(*) FROM hot_files h WHERE h.dataset = 'frames' AND h.level = 1
           AND NOT EXISTS (SELECT 1 FROM tier_files t WHERE t.local_path = h.path AND t.state = 'committed')`,
      ),
      tierNotCommitted: count(`SELECT COUNT(*) FROM tier_files WHERE state != 'committed'`),
      outboxOpen: count(`SELECT COUNT(*) FROM sync_files WHERE state != 'committed'`),
      pendingCommits: count(`SELECT COUNT(*) FROM sync_commits WHERE state = 'pending'`),
    };
    return Object.values(open).every((v) => v === 0) ? {} : open;
  } catch (error) {
    return (error as Error).message; // tables not created yet
  } finally {
    db.close();
  }
}

const settled = (a: Agent): boolean => {
  const open = openWork(a);
  return typeof open !== 'string' && Object.keys(open).length === 0;
};

interface Outbox {
  commits: { seq: number; kind: string; state: string }[];
  files: { location: string; state: string }[];
  uploadedData: number;
}

function outboxOf(a: Agent): Outbox {
  const db = new Database(join(a.stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    return {
      commits: db.prepare(`SELECT seq, kind, state FROM sync_commits ORDER BY seq`).all() as Outbox['commits'],
      files: db.prepare(`SELECT location, state FROM sync_files ORDER BY tier_id`).all() as Outbox['files'],
      uploadedData: db.prepare(`SELECT COUNT(*) FROM tier_files WHERE kind = 'data'`).pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

async function conflictCount(a: Agent): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${a.apiPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await response.text();
  const line = body.split('\n').find((l) => l.startsWith('lakeside_catalog_errors_total{kind="conflict"}'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** The snapshots of main's ancestry, newest first. */
function ancestryOf(snapshots: PySnapshot[], current: string | null): PySnapshot[] {
  const byId = new Map(snapshots.map((s) => [s.snapshot_id, s]));
  const out: PySnapshot[] = [];
  for (let id = current; id !== null; ) {
    const s = byId.get(id);
    if (!s) break;
    out.push(s);
    id = s.parent_snapshot_id;
  }
  return out;
}

describe('three agents commit to the same Iceberg tables at once', () => {
  let dir: string;
  let s3: S3Server;
  let rest: IcebergRest;
  const agents: Agent[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-iceberg-fleet-'));
    s3 = await startS3Server({ buckets: ['warehouse', 'warm'] });
    rest = await startIcebergRest({ s3 });
  }, 240_000);
  afterAll(async () => {
    for (const a of agents) a.daemon?.kill('SIGKILL');
    await rest?.stop();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every file once, every row once, no commit lost, while the commits conflict', async () => {
    for (const name of ['a', 'b', 'c']) {
      const a: Agent = { plant: `plant_${name}`, agentId: `agent_${name}`, stateDir: join(dir, name, 'state'), dropDir: join(dir, name, 'drop'), apiPort: await freePort(), dropped: [] };
      for (const line of LINES) mkdirSync(join(a.dropDir, line), { recursive: true });
      const configPath = join(dir, name, 'lakeside.yaml');
      writeFileSync(configPath, agentConfig(a, s3, rest));
      agents.push(a);
    }
    const env = { LAKESIDE_TEST_S3_KEY: s3.accessKeyId, LAKESIDE_TEST_S3_SECRET: s3.secretAccessKey, FLEET_READ_TOKEN: TOKEN };
    await Promise.all(
      agents.map(async (a, i) => {
        a.daemon = await startDaemon({ config: join(dir, ['a', 'b', 'c'][i]!, 'lakeside.yaml'), env }, 120_000);
      }),
    );

    // Continuous ingest: each plant gets a frame per line every DROP_EVERY_MS.
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < INGEST_MS) {
      const past = (Date.now() - 5 * 60_000) / 1000;
      for (const a of agents) {
        expect(a.daemon!.exit, `${a.agentId} exited:\n${a.daemon!.tail(40)}`).toBeUndefined();
        for (const line of LINES) {
          const file = `${a.plant}-${String(n).padStart(5, '0')}.bin`;
          const path = join(a.dropDir, line, file);
          writeFileSync(path, randomBytes(512));
          utimesSync(path, past, past);
          a.dropped.push(`${line}/${file}`);
        }
      }
      n++;
      await new Promise((resolve) => setTimeout(resolve, DROP_EVERY_MS));
    }
    await until(() => agents.every(settled), 240_000, () => `every agent settled (${agents.map((a) => `${a.agentId}: ${JSON.stringify(openWork(a))}`).join('; ')})`, 1000);

    const conflicts = await Promise.all(agents.map(conflictCount));
    for (const a of agents) {
      expect(a.daemon!.lines.some((l) => l.json?.code === 'CATALOG_FENCED'), `${a.agentId} fenced`).toBe(false);
      expect((await a.daemon!.stop()).code).toBe(0);
    }

    const [metadata, snapshots, files, scan] = await pyicebergBatch<[{ current_snapshot_id: string | null }, PySnapshot[], PyDataFile[], PyScan]>(rest.clientProperties, [
      { op: 'metadata', args: { table: TABLE } },
      { op: 'snapshots', args: { table: TABLE } },
      { op: 'files', args: { table: TABLE } },
      { op: 'scan', args: { table: TABLE, selected_fields: ['plant', 'line', 'file'], with_rows: true } },
    ]);

    // Every file once; each agent's committed files all there; nothing else.
    const paths = files.map((f) => f.file_path);
    expect(new Set(paths).size).toBe(paths.length);
    const expectedPaths: string[] = [];
    const outboxes = agents.map(outboxOf);
    for (const [i, a] of agents.entries()) {
      const outbox = outboxes[i]!;
      expect(outbox.files.length, `${a.agentId}: every uploaded data file handed to the committer`).toBe(outbox.uploadedData);
      expect(outbox.files.every((f) => f.state === 'committed')).toBe(true);
      expect(outbox.files.length).toBeGreaterThan(20);
      for (const f of outbox.files) expect(f.location.startsWith(`s3://warm/${a.plant}/`)).toBe(true);
      expectedPaths.push(...outbox.files.map((f) => f.location));
    }
    expect([...paths].sort()).toEqual(expectedPaths.sort());

    // Every row once, per plant.
    const rows = scan.rows as { plant: string; line: string; file: string }[];
    expect(scan.row_count).toBe(agents.reduce((sum, a) => sum + a.dropped.length, 0));
    for (const a of agents) {
      const got = rows.filter((r) => r.plant === a.plant).map((r) => `${r.line}/${r.file}`);
      expect(got.length, `${a.plant} rows`).toBe(a.dropped.length);
      expect(got.sort()).toEqual([...a.dropped].sort());
    }

    // No commit lost: every committed seq in the ancestry exactly once, in order; no abandoned one.
    const ancestry = ancestryOf(snapshots, metadata.current_snapshot_id);
    for (const [i, a] of agents.entries()) {
      const ours = ancestry.filter((s) => s.summary['lakeside.agent-id'] === a.agentId).map((s) => Number(s.summary['lakeside.commit-seq'])).reverse();
      expect(ours.every((seq, k) => k === 0 || seq > ours[k - 1]!), `${a.agentId} seqs increase along the ancestry`).toBe(true);
      const committed = outboxes[i]!.commits.filter((c) => c.state === 'committed').map((c) => c.seq);
      const abandoned = outboxes[i]!.commits.filter((c) => c.state === 'abandoned').map((c) => c.seq);
      expect(ours).toEqual(committed);
      for (const seq of abandoned) expect(ours).not.toContain(seq);
      expect(outboxes[i]!.commits.some((c) => c.kind === 'rewrite' && c.state === 'committed'), `${a.agentId} merged its manifests at least once`).toBe(true);
    }
    // Plants interleave in the ancestry, and the agents really raced.
    expect(conflicts.reduce((sum, c) => sum + c, 0)).toBeGreaterThan(0);
    console.log(
      `iceberg-fleet: ${ancestry.length} snapshots, ${paths.length} files, ${scan.row_count} rows, conflicts ${conflicts.join('/')}, ` +
        `commits ${outboxes.map((o) => o.commits.filter((c) => c.state === 'committed').length).join('/')}, abandoned ${outboxes.map((o) => o.commits.filter((c) => c.state === 'abandoned').length).join('/')}`,
    );
  }, 900_000);
});
