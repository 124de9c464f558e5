/**
 * Benchmark: acknowledgement → visible in PyIceberg (issue: p95 ≤ compaction window + 60 s).
 *
 * The daemon runs in this process (agent/daemon.ts, as bench-daemon.ts runs it) with an
 * MQTT source on a real Mosquitto, S3 warm tier on versitygw, the Apache Iceberg REST
 * fixture as catalog: `hot.compaction_window_minutes: W` (`--window`, default 1),
 * `tiering.wait_for_hour_merge: false` (the default: each L1 file is uploaded once
 * compacted), `hot.compaction_grace_seconds` (`--grace`, default: the config default)
 * and `catalog.commit_interval_seconds` (`--interval`, default: the config default). A
 * row waits for its window to end, then the grace, the compaction step, the upload scan
 * and the commit interval; with a 60 s grace the p95 cannot be under W + 60 s (the
 * earliest rows of a window alone wait W + 60 s).
 *
 * - Acknowledgement of a message = the moment lakeside sends its PUBACK to the broker
 *   (QoS 1, `ack_mode: after_commit`: after the row is durably committed to
 *   landing.db); taken with Date.now() in the MQTT source's `onAck` hook.
 * - Visible = the first PyIceberg poll whose `catalog.load_table` returned a table whose
 *   scan holds the row; the time is taken in Python right after `load_table`. Polls
 *   run back to back (each one a Python process: about 1-3 s), so a row may have become
 *   visible up to one poll period earlier: the figures are upper bounds by that much
 *   (the poll period is printed).
 * Messages are published at `--rate` msg/s for `--seconds`, event time = now; then
 * polling continues until every acknowledged row is visible (or W + 5 min pass).
 *
 *   node test/bench/iceberg-latency.ts [--window 1] [--seconds 180] [--rate 20] [--interval S] [--grace S]
 *
 * Prints one JSON line: p50/p95/max of (visible − acknowledged) in seconds, the target
 * W + 60 s, rows, poll period.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectAsync } from 'mqtt';
import { Daemon } from '../../agent/daemon.ts';
import { createLogger } from '../../agent/log.ts';
import { loadConfigFile } from '../../config/loader.ts';
import { catalogSchema } from '../../config/catalog-schema.ts';
import { configSchema } from '../../config/schema.ts';
import { startIcebergRest } from '../services/iceberg-rest.ts';
import { startMosquitto } from '../services/mosquitto.ts';
import { pyiceberg } from '../services/pyiceberg.ts';
import { startS3Server } from '../services/s3-server.ts';

const { values } = parseArgs({
  options: {
    window: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '180' },
    rate: { type: 'string', default: '20' },
    interval: { type: 'string', default: String(catalogSchema.parse({}).commit_interval_seconds) },
    grace: { type: 'string', default: String(configSchema.shape.hot.parse(undefined).compaction_grace_seconds) },
  },
});
const WINDOW_MIN = Number(values.window);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);

const dir = mkdtempSync(join(tmpdir(), 'lakeside-bench-iceberg-latency-'));
const s3 = await startS3Server({ buckets: ['warehouse', 'warm'] });
const rest = await startIcebergRest({ s3 });
const broker = await startMosquitto();
process.env.LAKESIDE_BENCH_S3_KEY = s3.accessKeyId;
process.env.LAKESIDE_BENCH_S3_SECRET = s3.secretAccessKey;
const configPath = join(dir, 'lakeside.yaml');
writeFileSync(
  configPath,
  `plant: bench
agent_id: bench_1
state_dir: ${join(dir, 'state')}
log_level: warn
api: { listen_port: 0 }
hot:
  compaction_window_minutes: ${WINDOW_MIN}
  compaction_grace_seconds: ${Number(values.grace)}
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: seq, type: long, nullable: false }
      - { name: value, type: double }
    partition_by: [line]
sources:
  mqtt:
    - name: bench_broker
      url: ${broker.url}
      client_id: lakeside-bench-latency
      share_group: bench
      routes:
        - filter: plant/bench/line/+
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 3 }
            seq: { json: seq }
            value: { json: value }
tiering:
  warm: { url: "s3://warm/bench", endpoint: "${s3.endpoint}", region: ${s3.region}, force_path_style: true, credentials: { access_key_id: "\${env:LAKESIDE_BENCH_S3_KEY}", secret_access_key: "\${env:LAKESIDE_BENCH_S3_SECRET}" } }
  wait_for_hour_merge: false
catalog:
  type: rest
  rest: { uri: "${rest.uri}" }
  commit_interval_seconds: ${Number(values.interval)}
`,
);

const ackedAt = new Map<number, number>();
const seqPattern = /"seq":(\d+)/;
const daemon = new Daemon(await loadConfigFile(configPath), createLogger('warn'), {
  onMqttAck: (packet) => {
    const match = seqPattern.exec(packet.payload.toString());
    if (match) ackedAt.set(Number(match[1]), Date.now());
  },
});
await daemon.start();

const publisher = await connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-latency-pub', clean: true });
// Wait until the daemon's subscription is in place (a message before it would be dropped by the broker).
await new Promise((resolve) => setTimeout(resolve, 2000));

const POLL = `
import time
from pyiceberg.exceptions import NoSuchTableError
try:
    t = catalog.load_table("lakeside.readings")
    loaded = time.time() * 1000
    seqs = t.scan(selected_fields=("seq",)).to_arrow().column("seq").to_pylist() if t.current_snapshot() else []
except NoSuchTableError:
    loaded = time.time() * 1000
    seqs = []
result = {"loaded_ms": loaded, "seqs": seqs}
`;
const visibleAt = new Map<number, number>();
let polls = 0;
let pollMsTotal = 0;
let publishing = true;
let publishEnd = 0;
const poller = (async () => {
  const deadline = () => (publishing ? Infinity : publishEnd + (WINDOW_MIN * 60 + 300) * 1000);
  while (Date.now() < deadline()) {
    const began = Date.now();
    const r = await pyiceberg<{ loaded_ms: number; seqs: number[] }>(rest.clientProperties, { script: POLL });
    polls++;
    pollMsTotal += Date.now() - began;
    for (const seq of r.seqs) if (!visibleAt.has(seq)) visibleAt.set(seq, r.loaded_ms);
    if (!publishing && ackedAt.size > 0 && [...ackedAt.keys()].every((s) => visibleAt.has(s))) return;
  }
})();

let seq = 0;
const started = Date.now();
while (Date.now() - started < SECONDS * 1000) {
  const due = Math.floor(((Date.now() - started) / 1000) * RATE);
  while (seq < due) {
    const payload = JSON.stringify({ seq, ts: Date.now(), value: seq % 100 });
    await publisher.publishAsync(`plant/bench/line/l${seq % 3}`, payload, { qos: 1 });
    seq++;
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
}
publishing = false;
publishEnd = Date.now();
await publisher.endAsync();
await poller;

const latencies: number[] = [];
let missing = 0;
for (const [s, acked] of ackedAt) {
  const visible = visibleAt.get(s);
  if (visible === undefined) missing++;
  else latencies.push((visible - acked) / 1000);
}
latencies.sort((a, b) => a - b);
const pct = (q: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN).toFixed(1));
const duplicates = visibleAt.size; // distinct seqs seen; duplicates would not show here, the test suite checks them
console.log(
  JSON.stringify({
    bench: 'iceberg-latency',
    compactionWindowMinutes: WINDOW_MIN,
    commitIntervalSeconds: Number(values.interval),
    compactionGraceSeconds: Number(values.grace),
    published: seq,
    acknowledged: ackedAt.size,
    visible: latencies.length,
    notVisible: missing,
    distinctVisible: duplicates,
    ackToVisibleSeconds: { p50: pct(0.5), p95: pct(0.95), max: pct(1) },
    targetP95Seconds: WINDOW_MIN * 60 + 60,
    meetsTarget: pct(0.95) <= WINDOW_MIN * 60 + 60,
    polls,
    meanPollSeconds: Number((pollMsTotal / Math.max(1, polls) / 1000).toFixed(1)),
  }),
);
await daemon.stop();
await broker.stop();
await rest.stop();
await s3.stop();
rmSync(dir, { recursive: true, force: true });
