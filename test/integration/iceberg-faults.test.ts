// Exactly-once commits to a real Iceberg REST catalog under real faults (issue 6):
// child daemons ingest camera frames from a drop folder, upload L1 files to versitygw
// and commit them to the Apache Iceberg REST fixture; PyIceberg is the independent
// reader that every test ends with: every uploaded data file is in the table exactly
// once (no path twice, all of the tier map's data files present) and the scan returns
// every dropped frame exactly once.
//   1. SIGKILL between upload and commit (`tiering.after-put`, `catalog.before-commit`),
//      during the commit (the POST held in the HTTP fault proxy, the daemon killed, the
//      request then reaching the catalog late after a restarted daemon already
//      committed; and the catalog's answer held while the daemon is killed), and after
//      the catalog applied it, before it is recorded (`catalog.after-commit`).
//   2. The HTTP fault proxy answers 500, 502, 504 or resets AFTER the catalog applied the
//      commit: the daemon logs the unknown outcome, finds its marker, commits nothing twice
//      (and a 502 after the catalog created the table: loaded, not created again).
//   3. The catalog down ~70 s (blackholed, then its process killed) while frames keep
//      arriving: ingestion goes on, the outbox grows, the agent catches up.
//   4. A second daemon with the same agent id (its own state dir) is fenced.
// Services are started for real; a missing one fails the suite (never skips).
import { mkdirSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startIcebergRest, type IcebergRest } from '../services/iceberg-rest.ts';
import { pyicebergClient } from '../services/pyiceberg.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { killHard, startFaultDaemon } from '../support/fault-scenario.ts';
import { failpointEnv, until, waitForFailpoint, type FailpointName } from '../support/failpoint.ts';
import { freePort } from '../support/free-port.ts';
import { isSnapshotCommit, isTableCommit, startHttpFaultProxy, type HttpExchange, type HttpFaultProxy } from '../support/http-fault-proxy.ts';
import {
  AGENT_ID,
  dataTierRows,
  drained,
  dropFrames,
  expectExactlyOnce,
  frameNames,
  icebergDaemonConfig,
  instanceId,
  outboxCommits,
  outboxFileStates,
  readTable,
  s3Env,
} from '../support/iceberg-daemon.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';

let s3: S3Server;
let rest: IcebergRest;
let root: string;
const daemons: ChildDaemon[] = [];
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lakeside-iceberg-faults-'));
  s3 = await startS3Server({ buckets: ['warehouse', 'warm'] });
  rest = await startIcebergRest({ s3 });
}, 240_000);

afterAll(async () => {
  for (const d of daemons) d.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup();
  await rest?.stop();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

// Every daemon reconciles its tier map with the catalog at start (none has a cold store).
let firstDaemonOfTest = 0;
beforeEach(() => {
  firstDaemonOfTest = daemons.length;
});
afterEach(() => {
  const failed = daemons.slice(firstDaemonOfTest).flatMap((d) => d.logs().filter((l) => String(l.msg).startsWith('reconciliation with the catalog failed')));
  expect(failed.map((l) => l.err)).toEqual([]);
});

/** One agent's files: state dir, drop folder, config. */
interface Agent {
  name: string;
  stateDir: string;
  dropDir: string;
  configPath: string;
  warmPrefix: string;
  namespace: string;
  /** Every frame dropped, as `line/file`. */
  frames: string[];
  drop(line: string, prefix: string, n: number): void;
  /** (Re)writes the config against `catalogUri`. */
  configure(catalogUri: string, requestTimeoutMs?: number): Promise<void>;
  start(failpoints?: FailpointName[]): Promise<ChildDaemon>;
}

async function agent(name: string, o: { namespace: string; warmPrefix: string; plant: string }): Promise<Agent> {
  const dir = join(root, name);
  const stateDir = join(dir, 'state');
  const dropDir = join(dir, 'drop');
  mkdirSync(dropDir, { recursive: true });
  const configPath = join(dir, 'lakeside.yaml');
  const apiPort = await freePort();
  const frames: string[] = [];
  return {
    name,
    stateDir,
    dropDir,
    configPath,
    warmPrefix: o.warmPrefix,
    namespace: o.namespace,
    frames,
    drop(line, prefix, n) {
      const names = frameNames(`${name}-${prefix}`, n);
      dropFrames(dropDir, line, names);
      frames.push(...names.map((f) => `${line}/${f}`));
    },
    async configure(catalogUri, requestTimeoutMs) {
      await writeFile(
        configPath,
        icebergDaemonConfig({ plant: o.plant, stateDir, dropDir, apiPort, s3, warmPrefix: o.warmPrefix, catalogUri, namespace: o.namespace, ...(requestTimeoutMs ? { requestTimeoutMs } : {}) }),
      );
    },
    start(failpoints = []) {
      return startFaultDaemon(configPath, { ...s3Env(s3), ...(failpoints.length > 0 ? failpointEnv(...failpoints) : {}) }, (d) => daemons.push(d));
    },
  };
}

async function waitDrained(a: Agent, timeoutMs = 90_000): Promise<void> {
  await until(() => drained(a.stateDir, a.dropDir), timeoutMs, () => `${a.name} drained; tier: ${JSON.stringify(dataTierRows(a.stateDir).map((r) => r.state))}, outbox: ${JSON.stringify(outboxFileStates(a.stateDir))}`, 250);
}

/** Every dropped frame was taken from the drop folder (ingested). */
function drained0(a: Agent): boolean {
  return readdirSync(a.dropDir, { recursive: true }).filter((p) => String(p).endsWith('.bin')).length === 0;
}

/** The closing proof, once PyIceberg sees as many rows as frames were dropped. */
async function proveExactlyOnce(a: Agent): Promise<void> {
  let view = await readTable(rest.clientProperties, a.namespace);
  const deadline = Date.now() + 30_000;
  while (view.scan.row_count < a.frames.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    view = await readTable(rest.clientProperties, a.namespace);
  }
  expectExactlyOnce(view, { stateDir: a.stateDir, warmPrefix: a.warmPrefix, frames: a.frames });
}

/** Our commit seqs in the table's snapshots (all of them, a duplicate would show twice). */
async function catalogSeqs(namespace: string): Promise<number[]> {
  const snapshots = await pyicebergClient(rest.clientProperties).snapshots(`${namespace}.frames`);
  return snapshots.filter((s) => s.summary['lakeside.agent-id'] === AGENT_ID).map((s) => Number(s.summary['lakeside.commit-seq']));
}

/** Null while the catalog is down (PyIceberg cannot reach it). */
async function catalogSeqsWhenUp(): Promise<number[] | null> {
  try {
    await fetch(`${rest.uri}/v1/config`, { signal: AbortSignal.timeout(2_000) });
  } catch {
    return null;
  }
  return catalogSeqs('outage');
}

/** The commit seq a proxied commit request carries in its snapshot summary. */
function seqOf(exchange: HttpExchange): number {
  const body = JSON.parse(exchange.body) as { updates: { action: string; snapshot?: { summary: Record<string, string> } }[] };
  const add = body.updates.find((u) => u.action === 'add-snapshot');
  return Number(add?.snapshot?.summary['lakeside.commit-seq']);
}

function pendingCommit(a: Agent) {
  const pending = outboxCommits(a.stateDir).filter((c) => c.state === 'pending');
  expect(pending).toHaveLength(1);
  return pending[0]!;
}

/** The daemon logged that commit `seq` was resolved by finding its marker in the table. */
function resolvedByMarker(d: ChildDaemon, seq: number): Promise<unknown> {
  return d.waitForLine((l) => l.msg === 'iceberg commit' && l.json?.seq === seq && l.json?.how === 'marker', 60_000);
}

async function httpProxy(): Promise<HttpFaultProxy> {
  const proxy = await startHttpFaultProxy({ upstream: rest.uri });
  cleanups.push(() => proxy.close());
  return proxy;
}

describe('Iceberg commits under real faults (REST fixture on versitygw, PyIceberg reads)', () => {
  it('SIGKILL between upload and commit, while the commit is in flight, and after it was applied but not recorded: every file once', async () => {
    const a = await agent('kills', { namespace: 'kills', warmPrefix: 'kills', plant: 'killplant' });
    const proxy = await httpProxy();
    await a.configure(proxy.url);

    // (a1) Frozen right after the first object is stored in warm, not yet recorded.
    a.drop('l1', 'a', 4);
    a.drop('l2', 'a', 4);
    const d0 = await a.start(['tiering.after-put']);
    await waitForFailpoint(d0, 'tiering.after-put');
    await killHard(d0);
    expect(outboxCommits(a.stateDir)).toEqual([]);

    // (a2) Uploaded, the commit built and its seq persisted, not sent.
    const d1 = await a.start(['catalog.before-commit']);
    await waitForFailpoint(d1, 'catalog.before-commit');
    await killHard(d1);
    const s1 = pendingCommit(a);
    expect(s1.files).toBeGreaterThan(0);
    expect(await catalogSeqs(a.namespace)).not.toContain(s1.seq);

    // (c) The catalog applied it (the same seq, resolved first after the restart); killed before it is recorded.
    a.drop('l1', 'b', 3);
    const d2 = await a.start(['catalog.after-commit']);
    await waitForFailpoint(d2, 'catalog.after-commit');
    await killHard(d2);
    expect(pendingCommit(a).seq).toBe(s1.seq);
    expect(await catalogSeqs(a.namespace)).toEqual([s1.seq]);

    // (b1) The commit POST is held in the proxy (sent, not yet at the catalog) when the daemon dies.
    proxy.script(isSnapshotCommit, [{ kind: 'hold-request' }]);
    a.drop('l2', 'c', 3);
    const d3 = await a.start();
    await resolvedByMarker(d3, s1.seq);
    const held = await proxy.waitFor((e) => e.action === 'hold-request');
    const s2 = seqOf(held);
    expect(s2).toBeGreaterThan(s1.seq);
    await killHard(d3);
    expect(pendingCommit(a).seq).toBe(s2);
    expect(await catalogSeqs(a.namespace)).toEqual([s1.seq]);

    // Restarted, the daemon finds no marker and sends seq s2 again; the dead daemon's
    // request then reaches the catalog late, built on the old head: refused (409).
    proxy.script(isSnapshotCommit, []);
    const d4 = await a.start();
    await d4.waitForLine((l) => l.msg === 'iceberg commit' && l.json?.seq === s2 && l.json?.how === 'response', 60_000);
    proxy.release();
    const late = await proxy.waitFor((e) => e.id === held.id && e.upstreamStatus !== undefined);
    expect(late.upstreamStatus).toBe(409);
    expect(late.clientGone).toBe(true);
    await waitDrained(a);

    // (b2) The catalog applied the commit; its answer is held when the daemon dies.
    proxy.script(isSnapshotCommit, [{ kind: 'hold-response' }]);
    a.drop('l1', 'd', 3);
    const answered = await proxy.waitFor((e) => e.action === 'hold-response' && e.upstreamStatus !== undefined);
    expect(answered.upstreamStatus).toBe(200);
    const s3seq = seqOf(answered);
    await killHard(d4);
    proxy.release();
    expect(pendingCommit(a).seq).toBe(s3seq);
    expect(await catalogSeqs(a.namespace)).toContain(s3seq);

    // Clean restart: the pending commit is found by its marker; everything drains.
    a.drop('l2', 'e', 3);
    const d5 = await a.start();
    await resolvedByMarker(d5, s3seq);
    await waitDrained(a);
    expect((await d5.stop()).code).toBe(0);
    expect(outboxCommits(a.stateDir).filter((c) => c.state !== 'committed')).toEqual([]);
    await proveExactlyOnce(a);
  });

  it('500, 502, 504 and a reset after the catalog applied the commit (and a 502 after it created the table): logged as unknown, found by marker, no duplicate', async () => {
    const a = await agent('http', { namespace: 'http5xx', warmPrefix: 'http5xx', plant: 'httpplant' });
    const proxy = await httpProxy();
    await a.configure(proxy.url);
    const isCreate = (method: string, path: string, body: string): boolean => isTableCommit(method, path) && body.includes('"assert-create"');
    const faults = [500, 502, 504, 'reset'] as const;
    // First the table's create transaction, then four appends: each applied upstream, the answer replaced.
    proxy.script(
      (method, path, body) => isCreate(method, path, body) || isSnapshotCommit(method, path, body),
      [{ kind: 'status', status: 502 }, ...faults.map((f) => (f === 'reset' ? { kind: 'reset' as const } : { kind: 'status' as const, status: f }))],
    );
    const d = await a.start();
    for (let round = 0; proxy.remaining() > 0; round++) {
      expect(round).toBeLessThan(8);
      a.drop(round % 2 === 0 ? 'l1' : 'l2', `r${round}`, 3);
      await waitDrained(a);
    }
    const [create, ...faulted] = proxy.exchanges.filter((e) => e.action === 'status' || e.action === 'reset');
    // The create was applied and answered 502: the table was loaded, never created twice.
    expect(isCreate(create!.method, create!.path, create!.body)).toBe(true);
    expect([create!.upstreamStatus, create!.clientGot]).toEqual([200, 502]);
    expect(proxy.exchanges.filter((e) => isCreate(e.method, e.path, e.body))).toHaveLength(1);
    expect(faulted.map((e) => [e.upstreamStatus, e.clientGot])).toEqual([
      [200, 500],
      [200, 502],
      [200, 504],
      [200, 'reset'],
    ]);
    const unknown = d.logs().filter((l) => l.msg === 'commit outcome unknown; reloading to look for our marker');
    expect(unknown.map((l) => l.seq)).toEqual(faulted.map(seqOf));
    expect(unknown.slice(0, 3).map((l) => String(l.detail).match(/HTTP (\d+)/)?.[1])).toEqual(['500', '502', '504']);
    expect(String(unknown[3]!.detail)).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed/);
    for (const e of faulted) await resolvedByMarker(d, seqOf(e));
    // No applied commit was sent again.
    const commitSeqs = proxy.exchanges.filter((e) => isSnapshotCommit(e.method, e.path, e.body)).map(seqOf);
    expect(new Set(commitSeqs).size).toBe(commitSeqs.length);
    expect((await d.stop()).code).toBe(0);
    await proveExactlyOnce(a);
  });

  it('the catalog down for over a minute while frames keep arriving: ingestion goes on, the outbox grows, the agent catches up', async () => {
    const a = await agent('outage', { namespace: 'outage', warmPrefix: 'outage', plant: 'outageplant' });
    const tcp: FaultProxy = await startFaultProxy({ target: { host: '127.0.0.1', port: rest.port } });
    cleanups.push(() => tcp.close());
    await a.configure(tcp.url('http'), 3_000);
    a.drop('l1', 'before', 4);
    const d = await a.start();
    await waitDrained(a);
    const committedBefore = dataTierRows(a.stateDir).length;
    const seqsBefore = await catalogSeqs(a.namespace);

    // Down: first a network partition (requests hang, time out: unknown outcomes), then
    // the catalog process itself is gone (connections reset).
    tcp.setFault({ kind: 'blackhole' });
    const outageStart = Date.now();
    let round = 0;
    const dropDuringOutage = async (untilMs: number): Promise<void> => {
      while (Date.now() < untilMs) {
        a.drop(round % 2 === 0 ? 'l1' : 'l2', `down${round}`, 2);
        round++;
        await new Promise((r) => setTimeout(r, 5_000));
      }
    };
    const pendingFiles = (): number => {
      const states = outboxFileStates(a.stateDir);
      return (states.waiting ?? 0) + (states.batched ?? 0);
    };
    const unknownOutcomes = (): Record<string, unknown>[] => d.logs().filter((l) => l.msg === 'commit outcome unknown; reloading to look for our marker');
    await dropDuringOutage(outageStart + 35_000);
    await until(() => pendingFiles() > 0 && unknownOutcomes().length > 0, 30_000, 'files waiting in the outbox behind a commit that timed out');
    // A commit was sent into the partition: no answer, an unknown outcome.
    expect(String(unknownOutcomes()[0]!.detail)).toMatch(/no answer within 3000 ms/);
    const pendingInPartition = pendingFiles();
    const logsBeforeKill = d.lines.length;

    await rest.kill('SIGKILL');
    tcp.setFault({ kind: 'pass' });
    await dropDuringOutage(outageStart + 65_000);
    // Everything dropped during the outage was ingested and uploaded, and waits in the
    // outbox (which grew); none of it is committed.
    await until(() => drained0(a) && pendingFiles() > pendingInPartition && dataTierRows(a.stateDir).every((r) => r.state !== 'local'), 60_000, 'frames of the outage ingested and uploaded');
    const duringOutage = dataTierRows(a.stateDir);
    expect(duringOutage.filter((r) => r.state === 'committed')).toHaveLength(committedBefore);
    expect(pendingFiles()).toBe(duringOutage.length - committedBefore);
    expect(d.lines.slice(logsBeforeKill).some((l) => l.json?.code === 'CATALOG_COMMIT_ERROR')).toBe(true);
    expect(await catalogSeqsWhenUp()).toBeNull();

    await rest.restart();
    a.drop('l1', 'after', 2);
    await waitDrained(a, 120_000);
    const seqsAfter = await catalogSeqs(a.namespace);
    expect(seqsAfter.slice(0, seqsBefore.length)).toEqual(seqsBefore);
    expect(seqsAfter.length).toBeGreaterThan(seqsBefore.length);
    expect((await d.stop()).code).toBe(0);
    await proveExactlyOnce(a);
  });

  it('a second daemon with the same agent id and its own state dir is fenced; the first keeps committing', async () => {
    const first = await agent('fence-first', { namespace: 'fence', warmPrefix: 'fence', plant: 'fenceplant' });
    const second = await agent('fence-second', { namespace: 'fence', warmPrefix: 'fence', plant: 'fenceplant' });
    await first.configure(rest.uri);
    await second.configure(rest.uri);
    first.drop('a1', 'one', 4);
    const d1 = await first.start();
    await waitDrained(first);

    // Same plant, same agent id, same warm store and table; other lines, so its object keys differ.
    second.drop('b1', 'one', 4);
    const d2 = await second.start();
    const fenced = await d2.waitForLine((l) => l.json?.code === 'CATALOG_FENCED', 90_000);
    expect(fenced.json?.agent_id).toBe(AGENT_ID);
    expect(fenced.json?.holder).toBe(instanceId(first.stateDir));
    const firstSeqsAtFence = await catalogSeqs(first.namespace);
    await until(() => dataTierRows(second.stateDir).length > 0 && dataTierRows(second.stateDir).every((r) => r.state === 'uploaded'), 60_000, 'the second daemon uploaded its files');

    first.drop('a2', 'two', 4);
    await waitDrained(first);
    second.drop('b2', 'two', 2);
    await until(() => dataTierRows(second.stateDir).length >= 2 && dataTierRows(second.stateDir).every((r) => r.state === 'uploaded'), 60_000, 'the second daemon uploaded its later files');
    expect((await d2.stop()).code).toBe(0);
    expect((await d1.stop()).code).toBe(0);

    expect(outboxCommits(second.stateDir).filter((c) => c.state === 'committed')).toEqual([]);
    expect(outboxCommits(first.stateDir).filter((c) => c.state !== 'committed')).toEqual([]);
    // The first kept committing after the second was fenced.
    expect((await catalogSeqs(first.namespace)).length).toBeGreaterThan(firstSeqsAtFence.length);
    // The table holds exactly the first daemon's files and frames: none of the second's.
    await proveExactlyOnce(first);
    const secondPaths = dataTierRows(second.stateDir).map((r) => `s3://warm/${second.warmPrefix}/${r.object_key}`);
    const inTable = new Set((await readTable(rest.clientProperties, first.namespace)).files.map((f) => f.file_path));
    expect(secondPaths.filter((p) => inTable.has(p))).toEqual([]);
    expect(dataTierRows(second.stateDir).every((r) => r.state === 'uploaded')).toBe(true);
  });
});
