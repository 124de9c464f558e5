// Shared scaffolding of the Kafka fault tests (kafka-crash, kafka-group, kafka-source):
// two datasets whose rows carry their record's partition and offset (JSON `events`,
// raw-binary `frames` stored as blobs), the daemon config that reads them from a real
// broker, a producer that keeps sending while daemons are killed, and the check that
// matters: every record in the topic log is in the hot tier exactly once, counted per
// (topic, partition, offset) rather than by payload, so nothing can hide a duplicate.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Producer } from 'kafkajs';
import { expect } from 'vitest';
import type { KafkaBroker } from '../services/kafka.ts';
import { resolveDatasets } from './fault-scenario.ts';
import { readHotTier } from './hot-tier-reader.ts';
import { allRecordKeys, idempotentProducer } from './kafka-client.ts';

/** Event times lie this far back, so their 1-minute windows are closed and compaction runs. */
export const KAFKA_EVENT_AGE_MS = 70_000;

export const KAFKA_DATASETS = [
  {
    name: 'events',
    time_column: 'ts',
    columns: [
      { name: 'kafka_partition', type: 'int', nullable: false },
      { name: 'kafka_offset', type: 'long', nullable: false },
      { name: 'seq', type: 'long', nullable: false },
      { name: 'machine', type: 'string' },
      { name: 'line', type: 'string' },
      { name: 'value', type: 'double' },
      { name: 'produced_at', type: 'timestamp' },
    ],
  },
  {
    name: 'frames',
    time_column: 'ts',
    columns: [
      { name: 'kafka_partition', type: 'int', nullable: false },
      { name: 'kafka_offset', type: 'long', nullable: false },
      { name: 'image', type: 'blob', nullable: false },
    ],
  },
];
export const kafkaDatasets = resolveDatasets(KAFKA_DATASETS);

export const EVENTS_ROUTE_FIELDS = {
  ts: { json: 'ts', format: 'epoch_ms' },
  kafka_partition: { kafka_partition: true },
  kafka_offset: { kafka_offset: true },
  seq: { json: 'seq' },
  machine: { kafka_key: true },
  line: { kafka_header: 'line' },
  value: { json: 'value' },
  produced_at: { kafka_timestamp: true },
};

export const FRAMES_ROUTE_FIELDS = {
  ts: { received_at: true },
  kafka_partition: { kafka_partition: true },
  kafka_offset: { kafka_offset: true },
  image: { payload: true },
};

export interface KafkaDaemonConfig {
  stateDir: string;
  brokers: string[];
  groupId: string;
  eventsTopic: string;
  framesTopic?: string;
  /** More settings of the Kafka source (tls, sasl, timeouts). */
  kafka?: Record<string, unknown>;
  landing?: Record<string, unknown>;
  /** The `hot` section; default: fast seals and 1-minute compaction windows (tests). */
  hot?: Record<string, unknown>;
  /** The `tiering` section (disk budget, eviction interval); default: none. */
  tiering?: Record<string, unknown>;
}

/** Writes a daemon config (JSON is YAML) reading the topics; fast seals and 1-minute compaction. */
export async function writeKafkaConfig(path: string, c: KafkaDaemonConfig): Promise<void> {
  const routes: Record<string, unknown>[] = [{ topic: c.eventsTopic, dataset: 'events', fields: EVENTS_ROUTE_FIELDS }];
  if (c.framesTopic) routes.push({ topic: c.framesTopic, dataset: 'frames', payload: 'binary', fields: FRAMES_ROUTE_FIELDS });
  const config = {
    plant: 'kafkatest',
    state_dir: c.stateDir,
    log_level: 'info',
    landing: c.landing ?? {},
    hot: c.hot ?? { seal_interval_ms: 300, compaction_window_minutes: 1, compaction_grace_seconds: 1, compaction_interval_ms: 700 },
    ...(c.tiering ? { tiering: c.tiering } : {}),
    datasets: KAFKA_DATASETS,
    api: { listen_port: 0 },
    sources: {
      kafka: [
        {
          name: 'plant_kafka',
          brokers: c.brokers,
          group_id: c.groupId,
          client_id: 'lakeside-test',
          // Short timeouts: a killed member's partitions move within seconds.
          session_timeout_ms: 6000,
          heartbeat_interval_ms: 500,
          rebalance_timeout_ms: 20_000,
          ...c.kafka,
          routes,
        },
      ],
    },
  };
  await writeFile(path, JSON.stringify(config, null, 2));
}

/** The JSON value of event `seq`: 100 bytes or so, as the benchmark sends. */
export function eventValue(seq: number): string {
  return JSON.stringify({ seq, ts: Date.now() - KAFKA_EVENT_AGE_MS, value: (seq % 1000) / 10, status: 'running', pad: 'x'.repeat(24) });
}

/** A small PNG-signed binary value for frame `seq`. */
export function frameValue(seq: number): Buffer {
  const body = Buffer.alloc(64, seq % 251);
  body.writeUInt32BE(seq, 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), body]);
}

export interface BackgroundProducer {
  readonly sent: number;
  stop(): Promise<void>;
}

/**
 * Keeps producing (idempotent, acks=all) `chunk` events per request, plus one frame
 * every `framesEvery` events when a frames topic is given, until stopped.
 */
export async function startBackgroundProducer(
  broker: KafkaBroker,
  opts: { eventsTopic: string; framesTopic?: string; chunk?: number; pauseMs?: number; framesEvery?: number },
): Promise<BackgroundProducer> {
  const producer: Producer = await idempotentProducer(broker.brokers);
  let sent = 0;
  let running = true;
  const chunk = opts.chunk ?? 200;
  const loop = (async () => {
    while (running) {
      const events = [];
      for (let i = 0; i < chunk; i++) {
        const seq = sent + i;
        events.push({ key: `m${seq % 7}`, value: eventValue(seq), headers: { line: `l${seq % 3}` } });
      }
      const topicMessages = [{ topic: opts.eventsTopic, messages: events }];
      if (opts.framesTopic) {
        const every = opts.framesEvery ?? 20;
        const frames = [];
        for (let seq = sent; seq < sent + chunk; seq += every) frames.push({ key: `cam${seq % 2}`, value: frameValue(seq) });
        topicMessages.push({ topic: opts.framesTopic, messages: frames as never });
      }
      try {
        await producer.sendBatch({ acks: -1, topicMessages });
        sent += chunk;
      } catch {
        // A broker restart: the idempotent producer retries; a failed send is simply sent again.
      }
      await new Promise((r) => setTimeout(r, opts.pauseMs ?? 20));
    }
  })();
  return {
    get sent() {
      return sent;
    },
    async stop() {
      running = false;
      await loop;
      await producer.disconnect();
    },
  };
}

/** `partition/offset` → how many rows of `dataset` in the hot tier carry it. */
export function hotTierRecords(stateDir: string, dataset: string): Map<string, number> {
  const contents = readHotTier(stateDir, dataset, { dataset: kafkaDatasets.get(dataset)! });
  const p = contents.columns.indexOf('kafka_partition');
  const o = contents.columns.indexOf('kafka_offset');
  const counts = new Map<string, number>();
  for (const row of contents.rows) {
    const key = `${row[p]}/${row[o]}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Adds the counts of several hot tiers (agents of one group). */
export function mergeCounts(...maps: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of maps) for (const [k, n] of m) out.set(k, (out.get(k) ?? 0) + n);
  return out;
}

export interface ExactlyOnceReport {
  expected: number;
  missing: string[];
  duplicated: string[];
  unexpected: string[];
}

/** Compares hot-tier counts with every record of the topic's log. */
export async function compareWithLog(broker: KafkaBroker, topic: string, counts: Map<string, number>): Promise<ExactlyOnceReport> {
  const keys = await allRecordKeys(broker.brokers, topic);
  const expected = new Set(keys);
  return {
    expected: keys.length,
    missing: keys.filter((k) => !counts.has(k)),
    duplicated: [...counts].filter(([, n]) => n > 1).map(([k]) => k),
    unexpected: [...counts.keys()].filter((k) => !expected.has(k)),
  };
}

export function expectExactlyOnce(report: ExactlyOnceReport, what: string): void {
  expect(report.expected, `${what}: records produced`).toBeGreaterThan(0);
  expect(report.missing.slice(0, 20), `${what}: missing`).toEqual([]);
  expect(report.duplicated.slice(0, 20), `${what}: duplicated`).toEqual([]);
  expect(report.unexpected.slice(0, 20), `${what}: unexpected`).toEqual([]);
}

/**
 * The report of a running daemon's hot tier, read again (up to 30 s) until it is clean:
 * a read can race a seal (rows leave the landing table for a file between its queries),
 * which shows as records missing for one read only. A real loss stays missing.
 */
export async function settledReport(broker: KafkaBroker, topic: string, read: () => Map<string, number>): Promise<ExactlyOnceReport> {
  let last = await compareWithLog(broker, topic, read());
  const deadline = Date.now() + 30_000;
  while ((last.missing.length > 0 || last.duplicated.length > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    last = await compareWithLog(broker, topic, read());
  }
  return last;
}

/** Waits until the group's committed offsets reach the topic's end offsets (everything landed and committed). */
export async function groupCaughtUp(broker: KafkaBroker, groupId: string, topic: string): Promise<boolean> {
  const admin = await broker.admin();
  try {
    const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
    const byPartition = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset)]) ?? []);
    return ends.every((e) => Number(e.high) === 0 || byPartition.get(e.partition) === Number(e.high));
  } finally {
    await admin.disconnect();
  }
}

/** Sum of the landed watermarks of a state dir's streams: goes up whenever the agent lands records. */
export function landedProgress(stateDir: string): number {
  const path = join(stateDir, 'landing.db');
  if (!existsSync(path)) return 0;
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT coalesce(sum(next_offset), 0) FROM source_offsets').pluck().get() as number;
  } catch {
    return 0; // the table is created at the daemon's first start
  } finally {
    db.close();
  }
}
