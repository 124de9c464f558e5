/**
 * Kafka → hot tier, durable: a real Kafka 4 broker on this machine, N pre-produced
 * 100-byte JSON records over P partitions, then in the same run:
 *   1. a consumer group that does nothing with the records (kafkajs eachBatch, offsets
 *      auto-resolved): the client's ceiling here;
 *   2. the daemon (bin/lakeside.js as a child process, default landing settings)
 *      ingesting them, timed until the group's committed offsets reach the end of
 *      the topic: every record mapped, landed in SQLite (synchronous=FULL) and its
 *      offset committed, which happens only after the landing commit.
 * Both are timed from joining the group to the last record. Target: ≥ 50,000 msg/s,
 * and ≥ 0.6 × the no-op consumer. Prints one JSON line per phase and a summary.
 *
 *   npm run bench:kafka-ingest [-- <records, default 500000> <partitions, default 4>]
 *   BENCH_KAFKA='{"max_bytes_per_partition":4194304}'  overrides Kafka source settings
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLevel, Kafka, Partitioners } from 'kafkajs';
import { startKafka } from '../services/kafka.ts';
import { spawnDaemon } from '../support/child-daemon.ts';
import { groupCaughtUp, writeKafkaConfig } from '../support/kafka-scenario.ts';

const records = Number(process.argv[2] ?? 500_000);
const partitions = Number(process.argv[3] ?? 4);
const TOPIC = 'bench-events';

/** A 100-byte JSON reading (seq zero-padded so every record has the same size). */
function value(seq: number, ts: number): string {
  const text = JSON.stringify({ seq, ts, value: (seq % 1000) / 10, status: 'ok', line: 'l1', pad: '' });
  return text.replace('"pad":""', `"pad":"${'x'.repeat(Math.max(0, 100 - text.length))}"`);
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

const broker = await startKafka();
const dir = await mkdtemp(join(tmpdir(), 'lakeside-bench-kafka-'));
try {
  await broker.createTopic(TOPIC, partitions);
  const kafka = new Kafka({ clientId: 'bench', brokers: broker.brokers, logLevel: logLevel.NOTHING });

  // Pre-produce.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const produceStart = performance.now();
  const chunk = 2000;
  const inFlight = new Set<Promise<unknown>>();
  const ts = Date.now() - 60_000;
  for (let start = 0; start < records; start += chunk) {
    const messages = [];
    for (let i = start; i < Math.min(records, start + chunk); i++) messages.push({ value: value(i, ts), partition: i % partitions });
    const send = producer.send({ topic: TOPIC, acks: 1, messages });
    inFlight.add(send);
    void send.finally(() => inFlight.delete(send));
    if (inFlight.size >= 8) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await producer.disconnect();
  const produceS = (performance.now() - produceStart) / 1000;
  console.log(JSON.stringify({ phase: 'produce', records, partitions, valueBytes: value(1, ts).length, seconds: +produceS.toFixed(2), perSecond: Math.round(records / produceS) }));

  // 1. The no-op consumer group.
  const noop = kafka.consumer({ groupId: 'bench-noop', maxBytesPerPartition: 1024 * 1024 });
  await noop.connect();
  await noop.subscribe({ topic: TOPIC, fromBeginning: true });
  let joinedAt = 0;
  noop.on(noop.events.GROUP_JOIN, () => (joinedAt = performance.now()));
  let seen = 0;
  const noopCpu = process.cpuUsage();
  const noopSeconds = await new Promise<number>((resolve) => {
    void noop.run({
      partitionsConsumedConcurrently: 8,
      eachBatch: async ({ batch }) => {
        seen += batch.messages.length;
        if (seen === records) resolve((performance.now() - joinedAt) / 1000);
      },
    });
  });
  const noopCpuUs = process.cpuUsage(noopCpu);
  await noop.disconnect();
  const noopRate = Math.round(records / noopSeconds);
  const noopCpuPerRecord = +((noopCpuUs.user + noopCpuUs.system) / records).toFixed(1);
  console.log(JSON.stringify({ phase: 'noop-consumer', records: seen, seconds: +noopSeconds.toFixed(2), perSecond: noopRate, cpuUsPerRecord: noopCpuPerRecord }));

  // 2. The daemon, durable.
  const configPath = join(dir, 'lakeside.yaml');
  await writeKafkaConfig(configPath, {
    stateDir: join(dir, 'state'),
    brokers: broker.brokers,
    groupId: 'bench-lakeside',
    eventsTopic: TOPIC,
    // The source's and the hot tier's defaults, as a plant runs them.
    kafka: { session_timeout_ms: 30_000, heartbeat_interval_ms: 3000, rebalance_timeout_ms: 60_000, ...(process.env.BENCH_KAFKA ? JSON.parse(process.env.BENCH_KAFKA) : {}) },
    hot: {},
  });
  const daemon = spawnDaemon({ config: configPath });
  try {
    const joined = await daemon.waitForMsg('kafka group joined', 120_000);
    const start = performance.now() - (Date.now() - joined.at);
    const cpuAtJoin = cpuSecondsOf(daemon.pid!);
    for (;;) {
      if (await groupCaughtUp(broker, 'bench-lakeside', TOPIC)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - start) / 1000;
    // CPU per record over the ingest (every thread: source, landing writer, sealer): the
    // figure that decides throughput when the two cores are shared with the broker.
    const cpuPerRecord = +(((cpuSecondsOf(daemon.pid!) - cpuAtJoin) * 1e6) / records).toFixed(1);
    const rate = Math.round(records / seconds);
    const ratio = +(rate / noopRate).toFixed(2);
    console.log(JSON.stringify({ phase: 'lakeside-durable', records, seconds: +seconds.toFixed(2), perSecond: rate, ratioToNoop: ratio, cpuUsPerRecord: cpuPerRecord }));
    const stopped = await daemon.stop(60_000);
    const stats = daemon.logs().find((l) => l.msg === 'kafka source stopped');
    console.log(JSON.stringify({ phase: 'summary', target: '>= 50000 msg/s and >= 0.6 x no-op', perSecond: rate, noopPerSecond: noopRate, ratioToNoop: ratio, met: rate >= 50_000 && ratio >= 0.6, landed: stats?.landed, quarantined: stats?.quarantined, exit: stopped }));
  } finally {
    daemon.kill('SIGKILL');
  }
} finally {
  await broker.stop();
  await rm(dir, { recursive: true, force: true });
}
