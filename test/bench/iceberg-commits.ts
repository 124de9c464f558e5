/**
 * Benchmark: seven agents committing to ONE Iceberg table of the Apache REST fixture
 * (warehouse in versitygw), the issue's "≥ 60 commits/min in total, no commit failing
 * after its retries; time and CPU per committed file".
 *
 * The commit path runs in-process: seven `Committer`s (sync/committer.ts, the daemon's
 * own class, unchanged), each over its own landing database (the tiering unit fixture:
 * hot-tier schema + tier map), its own agent id and plant, the real REST client and S3
 * table IO. A feeder per agent registers an uploaded L1 file (a real local file with its
 * hot_files row, marked uploaded in the tier map, as tiering leaves it) every
 * `--feed-ms` and hands it to the committer exactly as tiering does (`commit([record])`).
 * The data files themselves are not put in warm: the catalog never reads them, and
 * uploading is tiering's benchmark. What is measured is everything from the hand-off to
 * the catalog's answer: outbox, seq allocation, manifest + manifest list written to S3,
 * the REST commit, 409 → reload → rebuild → retry, manifest merges.
 *
 *   node test/bench/iceberg-commits.ts [--agents 7] [--seconds 60] [--feed-ms 500] [--interval 5]
 *
 * `--interval` is commit_interval_seconds: 5 s lets seven agents make at most 84 commits/min
 * between them; each commit takes every file its agent received in the interval.
 *
 * Prints one JSON line: commits/min, files, conflicts per commit, commits that gave up
 * (after max_conflict_retries, or a pass that threw; they stay pending and go on at
 * the next pass, nothing is lost), the table's files against the outboxes, hand-off →
 * committed latency p50/p95 per file, and the process CPU per committed file (the
 * feeders' own synchronous work measured apart and subtracted).
 */
import { parseArgs } from 'node:util';
import { catalogSchema } from '../../config/catalog-schema.ts';
import { storeSchema } from '../../config/tiering-schema.ts';
import { Committer } from '../../sync/committer.ts';
import { RestCatalog } from '../../sync/rest-catalog.ts';
import { locationOf, StoreTableFileIO } from '../../sync/table-io-stores.ts';
import { dataKey } from '../../tiering/layout.ts';
import { startIcebergRest } from '../services/iceberg-rest.ts';
import { pyiceberg } from '../services/pyiceberg.ts';
import { startS3Server } from '../services/s3-server.ts';
import { createTieringFixture, DATASETS, recordingLogger, type TieringFixture } from '../unit/tiering/fixture.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '60' },
    'feed-ms': { type: 'string', default: '500' },
    interval: { type: 'string', default: '5' },
  },
});
const AGENTS = Number(values.agents);
const SECONDS = Number(values.seconds);
const FEED_MS = Number(values['feed-ms']);
const DATASET = 'readings';

const s3 = await startS3Server({ buckets: ['warehouse', 'warm'] });
const rest = await startIcebergRest({ s3 });
const s3Template = { ...storeSchema.parse({ url: 's3://warm', endpoint: s3.endpoint, region: s3.region, force_path_style: true }), credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey } };
const config = catalogSchema.parse({ type: 'rest', rest: { uri: rest.uri, request_timeout_ms: 30_000 }, commit_interval_seconds: Number(values.interval) });

interface Agent {
  fx: TieringFixture;
  committer: Committer;
  catalog: RestCatalog;
  io: StoreTableFileIO;
  log: ReturnType<typeof recordingLogger>;
  /** tier id → hand-off time (ms). */
  handedAt: Map<number, number>;
}

const agents: Agent[] = [];
for (let i = 0; i < AGENTS; i++) {
  const fx = await createTieringFixture();
  fx.clock.ms = Date.now();
  const catalog = new RestCatalog({ config: config.rest! });
  const io = new StoreTableFileIO({ s3Template });
  const log = recordingLogger();
  const plant = `plant_${i}`;
  const committer = new Committer({
    dbPath: fx.dbPath,
    stateDir: fx.stateDir,
    catalog,
    io,
    config,
    datasets: DATASETS,
    plant,
    agentId: `agent_${i}`,
    warmLocation: (key) => locationOf(`s3://warm/${plant}`, key),
    coldLocation: (key) => locationOf(`s3://cold/${plant}`, key),
    logger: { ...log.logger, debug: () => {} } as never,
  });
  agents.push({ fx, committer, catalog, io, log, handedAt: new Map() });
}

/** The synchronous part of a hand-off that is the feeder's, not the committer's (an L1 file written and registered as uploaded). */
let feederCpuUs = 0;
function feedOne(agent: Agent, index: number): ReturnType<TieringFixture['map']['get']> {
  const before = process.cpuUsage();
  const { fx } = agent;
  fx.clock.ms = Date.now();
  const hot = fx.addL1(DATASET, { ageHours: 0.5, line: `l${index % 3}` });
  const stats = {
    record_count: 10,
    value_counts: { '1': 10, '2': 10, '3': 10 },
    null_value_counts: { '1': 0, '2': 0, '3': 0 },
    nan_value_counts: { '3': 0 },
    lower_bounds: { '1': hot.min_ts_us, '2': `l${index % 3}`, '3': 1.5 },
    upper_bounds: { '1': hot.max_ts_us, '2': `l${index % 3}`, '3': 9.5 },
    column_sizes: { '1': 100, '2': 20, '3': 80 },
  };
  fx.db.prepare('UPDATE hot_files SET stats_json = ? WHERE id = ?').run(JSON.stringify(stats), hot.id);
  const key = dataKey({ plant: `plant_${agents.indexOf(agent)}`, agentId: `agent_${agents.indexOf(agent)}` }, hot.path);
  fx.map.register([{ kind: 'data', dataset: DATASET, local_path: hot.path, object_key: key, size_bytes: hot.file_size_bytes, sha256: 'x'.repeat(64), event_time_us: hot.max_ts_us, min_event_time_us: hot.min_ts_us }], Date.now() * 1000);
  const record = fx.map.byPath(hot.path)!;
  fx.map.markUploaded(record.id, Date.now() * 1000);
  const spent = process.cpuUsage(before);
  feederCpuUs += spent.user + spent.system;
  return fx.map.get(record.id);
}

// The table is created by whichever agent gets there first (the others load it).
for (const a of agents) await a.committer.start();

let feeding = true;
const feeders = agents.map(async (agent) => {
  for (let n = 0; feeding; n++) {
    const record = feedOne(agent, n)!;
    agent.handedAt.set(record.id, Date.now());
    await agent.committer.commit([record]);
    await new Promise((resolve) => setTimeout(resolve, FEED_MS));
  }
});

// Warm-up: until every agent has committed once (table created, connections open).
while (agents.some((a) => a.committer.stats.commits === 0)) await new Promise((resolve) => setTimeout(resolve, 200));
const before = agents.map((a) => ({ ...a.committer.stats }));
const cpuBefore = process.cpuUsage();
const feederBefore = feederCpuUs;
const started = performance.now();
const startedUs = Date.now() * 1000;
await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
const seconds = (performance.now() - started) / 1000;
const endedUs = Date.now() * 1000;
const cpu = process.cpuUsage(cpuBefore);
const feederCpu = feederCpuUs - feederBefore;
const delta = agents.map((a, i) => ({
  commits: a.committer.stats.commits - before[i]!.commits,
  files: a.committer.stats.filesCommitted - before[i]!.filesCommitted,
  conflicts: a.committer.stats.conflicts - before[i]!.conflicts,
  errors: a.committer.stats.errors - before[i]!.errors,
}));
feeding = false;
await Promise.all(feeders);

// Hand-off → committed, per file committed inside the window.
const latencies: number[] = [];
for (const a of agents) {
  const rows = a.fx.db.prepare(`SELECT tier_id, committed_us FROM sync_files WHERE committed_us BETWEEN ? AND ?`).all(startedUs, endedUs) as { tier_id: number; committed_us: number }[];
  for (const r of rows) {
    const handed = a.handedAt.get(r.tier_id);
    if (handed !== undefined) latencies.push(r.committed_us / 1000 - handed);
  }
}
const sum = (k: keyof (typeof delta)[number]) => delta.reduce((s, d) => s + d[k], 0);
const gaveUp = agents.reduce((s, a) => s + a.log.records.filter((r) => r.msg === 'commit kept conflicting; it waits for the next pass' || r.msg === 'catalog commit did not go through; files stay in the outbox').length, 0);
for (const a of agents) await a.committer.stop();
// Every file an outbox says is committed must be in the table once, and nothing else.
const committedInOutboxes = agents.reduce((n, a) => n + (a.fx.db.prepare(`SELECT COUNT(*) FROM sync_files WHERE state = 'committed'`).pluck().get() as number), 0);

// The table as another reader sees it: snapshots and files.
const table = await pyiceberg<{ snapshots: number; files: number; distinct: number }>(rest.clientProperties, {
  script: `
t = catalog.load_table("lakeside.${DATASET}")
paths = [task.file.file_path for task in t.scan().plan_files()]
result = {"snapshots": len(t.metadata.snapshots), "files": len(paths), "distinct": len(set(paths))}
`,
});
latencies.sort((x, y) => x - y);
const pct = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
const commits = sum('commits');
const files = sum('files');
console.log(
  JSON.stringify({
    bench: 'iceberg-commits',
    mode: 'in-process Committers',
    agents: AGENTS,
    seconds: Number(seconds.toFixed(1)),
    commitIntervalSeconds: config.commit_interval_seconds,
    feedEveryMs: FEED_MS,
    commits,
    commitsPerMinute: Number(((commits / seconds) * 60).toFixed(1)),
    filesCommitted: files,
    conflicts: sum('conflicts'),
    conflictsPerCommit: Number((sum('conflicts') / commits).toFixed(2)),
    // Commits that gave up after max_conflict_retries (or a pass that threw): they stay pending and go on at the next pass.
    commitsThatGaveUp: gaveUp,
    passErrors: sum('errors'),
    handoffToCommittedMs: { p50: pct(0.5), p95: pct(0.95), max: pct(1) },
    wallMsPerFile: Number(((seconds * 1000) / files).toFixed(1)),
    cpuMsPerFile: Number(((cpu.user + cpu.system - feederCpu) / 1000 / files).toFixed(2)),
    cpuShareOfOneCore: Number(((cpu.user + cpu.system - feederCpu) / 1e6 / seconds).toFixed(3)),
    table,
    committedInOutboxes,
    tableMatchesOutboxes: table.files === committedInOutboxes && table.distinct === table.files,
  }),
);
for (const a of agents) {
  await a.catalog.close();
  await a.io.close();
  a.fx.close();
}
await rest.stop();
await s3.stop();
