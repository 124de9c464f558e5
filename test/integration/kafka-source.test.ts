// The Kafka source on a real Kafka 4 broker, through the real daemon:
//   - poison records (bad JSON, a wrong type, tombstones) are quarantined with their
//     reason and (topic, partition, offset), in the same commits as their neighbours,
//     and the partition keeps flowing: every good record lands exactly once, with its
//     key, header and timestamp in their columns;
//   - a broker restart in the middle of a stream loses nothing and doubles nothing;
//   - TLS with SASL SCRAM-SHA-256 (password from ${env:}) and with OAUTHBEARER (token
//     from ${file:}) against the broker's SASL_SSL listener; a wrong password never
//     gets in, is logged as KAFKA_CONNECT_ERROR, and the daemon still starts;
//   - a topic deleted and recreated under its name while the daemon is down (offsets
//     restart at 0, below the landed watermark): every record of the new topic lands
//     once beside the old topic's, and KAFKA_TOPIC_RESET names each partition.
import { chmodSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../config/loader.ts';
import { BlobStore } from '../../agent/blobs/blob-store.ts';
import { LandingLog } from '../../agent/landing/landing-log.ts';
import { silentLogger } from '../../agent/log.ts';
import { compileKafkaRoutes } from '../../agent/mapping/kafka-mapper.ts';
import { KafkaSource } from '../../agent/sources/kafka-source.ts';
import { startKafka, type KafkaBroker } from '../services/kafka.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { startFaultDaemon } from '../support/fault-scenario.ts';
import { until } from '../support/failpoint.ts';
import { readHotTier } from '../support/hot-tier-reader.ts';
import { idempotentProducer, produceMessages } from '../support/kafka-client.ts';
import {
  compareWithLog,
  eventValue,
  expectExactlyOnce,
  groupCaughtUp,
  hotTierRecords,
  kafkaDatasets,
  mergeCounts,
  settledReport,
  startBackgroundProducer,
  KAFKA_DATASETS,
  EVENTS_ROUTE_FIELDS,
  writeKafkaConfig,
} from '../support/kafka-scenario.ts';

const daemons: ChildDaemon[] = [];
const track = (d: ChildDaemon): void => void daemons.push(d);
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop(20_000);
});

function quarantineRows(stateDir: string): { reason_code: string; coordinates: string; reason: string }[] {
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true });
  try {
    return db.prepare('SELECT reason_code, coordinates, reason FROM quarantine ORDER BY id').all() as never;
  } finally {
    db.close();
  }
}

describe('kafka source on a real broker', () => {
  let broker: KafkaBroker;
  let dir: string;

  beforeAll(async () => {
    broker = await startKafka({ secure: { users: [{ name: 'lakeside', password: 'scram-Secret-1' }] } });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-kafka-source-'));
  });
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('quarantines poison records and keeps the partition flowing; a broker restart loses nothing', async () => {
    const topic = 'mixed';
    await broker.createTopic(topic, 2);
    const producer = await idempotentProducer(broker.brokers);
    // Every 10th value is not JSON, every 15th has a text value, every 25th is a tombstone.
    const poison = (i: number): string | null => (i % 25 === 0 ? 'no_value' : i % 10 === 0 ? 'malformed_json' : i % 15 === 0 ? 'wrong_type' : null);
    await produceMessages(
      producer,
      topic,
      300,
      (i) => {
        const kind = poison(i);
        const value = kind === 'no_value' ? null : kind === 'malformed_json' ? `{"seq": ${i}, "ts": ` : kind === 'wrong_type' ? eventValue(i).replace(/"value":[\d.]+/, '"value":"high"') : eventValue(i);
        return { key: `press-${i % 4}`, value, headers: { line: `l${i % 3}` } };
      },
      { partitions: 2, chunk: 50 },
    );
    const stateDir = join(dir, 'poison');
    const config = join(dir, 'poison.yaml');
    await writeKafkaConfig(config, { stateDir, brokers: broker.brokers, groupId: 'poison', eventsTopic: topic });
    const daemon = await startFaultDaemon(config, {}, track);
    await until(() => groupCaughtUp(broker, 'poison', topic), 120_000, 'the group to commit the end of the topic', 500);

    const expectedPoison = Array.from({ length: 300 }, (_, i) => poison(i)).filter((k) => k !== null);
    const quarantined = quarantineRows(stateDir);
    expect(quarantined.map((q) => q.reason_code).sort()).toEqual([...expectedPoison].sort());
    for (const q of quarantined) expect(Object.keys(JSON.parse(q.coordinates))).toEqual(['topic', 'partition', 'offset']);
    expect(quarantined.find((q) => q.reason_code === 'wrong_type')!.reason).toContain('column "value" (json value)');
    // Good records exactly once, poison ones as quarantine rows: every offset accounted for once.
    const poisonKeys = new Map(quarantined.map((q) => {
      const c = JSON.parse(q.coordinates) as { partition: number; offset: number };
      return [`${c.partition}/${c.offset}`, 1];
    }));
    expectExactlyOnce(await settledReport(broker, topic, () => mergeCounts(hotTierRecords(stateDir, 'events'), poisonKeys)), 'rows + quarantine');
    // A broker restart mid-stream.
    const background = await startBackgroundProducer(broker, { eventsTopic: topic, chunk: 50, pauseMs: 20 });
    await until(() => background.sent > 500, 60_000, 'the producer to send');
    await broker.restart();
    const sentAtRestart = background.sent;
    await until(() => background.sent > sentAtRestart + 500, 120_000, 'the producer to send after the restart');
    await background.stop();
    await until(() => groupCaughtUp(broker, 'poison', topic), 120_000, 'the group to catch up after the broker restart', 500);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    const after = mergeCounts(hotTierRecords(stateDir, 'events'), poisonKeys);
    expectExactlyOnce(await compareWithLog(broker, topic, after), 'across a broker restart');
    // Key, header and record timestamp land in their columns.
    const contents = readHotTier(stateDir, 'events', { dataset: kafkaDatasets.get('events')! });
    const col = (name: string): number => contents.columns.indexOf(name);
    // Record 7 of the first batch: key press-3, header line l1 (the background producer's seq 7 has key m0).
    const row = contents.rows.find((r) => r[col('seq')] === 7 && r[col('machine')] === 'press-3');
    expect(row, 'record 7 with its key').toBeDefined();
    expect(row![col('line')]).toBe('l1');
    const producedAt = row![col('produced_at')] as number;
    expect(Math.abs(producedAt / 1000 - Date.now())).toBeLessThan(10 * 60_000);
  });

  it('reads over TLS with SCRAM-SHA-256 and with OAUTHBEARER; a wrong password never gets in', async () => {
    const topic = 'secure';
    await broker.createTopic(topic, 1);
    const producer = await idempotentProducer(broker.brokers);
    await produceMessages(producer, topic, 100, (i) => ({ key: 'k', value: eventValue(i) }));
    await producer.disconnect();
    const secure = broker.secure!;
    const tokenFile = join(dir, 'token');
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    writeFileSync(tokenFile, `${b64({ alg: 'none' })}.${b64({ sub: 'lakeside', iat: now, exp: now + 3600 })}.`);
    chmodSync(tokenFile, 0o600);
    const variants = [
      { name: 'scram', sasl: { mechanism: 'scram-sha-256', username: 'lakeside', password: '${env:KAFKA_PW}' }, env: { KAFKA_PW: 'scram-Secret-1' } },
      { name: 'oauth', sasl: { mechanism: 'oauthbearer', token: `\${file:${tokenFile}}` }, env: {} },
    ];
    for (const v of variants) {
      const stateDir = join(dir, v.name);
      const config = join(dir, `${v.name}.yaml`);
      await writeKafkaConfig(config, { stateDir, brokers: [secure.broker], groupId: v.name, eventsTopic: topic, kafka: { tls: { ca_file: secure.caFile }, sasl: v.sasl } });
      const d = await startFaultDaemon(config, v.env, track);
      await until(() => groupCaughtUp(broker, v.name, topic), 60_000, `${v.name}: the group to commit the topic`, 500);
      expect(await d.stop()).toEqual({ code: 0, signal: null });
      expectExactlyOnce(await compareWithLog(broker, topic, hotTierRecords(stateDir, 'events')), v.name);
    }

    const stateDir = join(dir, 'wrong');
    const config = join(dir, 'wrong.yaml');
    await writeKafkaConfig(config, {
      stateDir,
      brokers: [secure.broker],
      groupId: 'wrong',
      eventsTopic: topic,
      kafka: { tls: { ca_file: secure.caFile }, sasl: { mechanism: 'scram-sha-256', username: 'lakeside', password: '${env:KAFKA_PW}' }, connect_timeout_ms: 3000 },
    });
    const d = await startFaultDaemon(config, { KAFKA_PW: 'not-the-password' }, track);
    await d.waitForLine((l) => l.json?.code === 'KAFKA_CONNECT_ERROR', 30_000);
    expect(d.output()).not.toContain('not-the-password');
    expect(hotTierRecords(stateDir, 'events').size).toBe(0);
  });

  it('a topic deleted and recreated under its name lands whole after a restart, with KAFKA_TOPIC_RESET', async () => {
    const topic = 'recreated';
    const OLD = 200; // 100 a partition landed from the first topic
    const NEW = 60; // 30 a partition in the new one: its log ends below the landed watermark
    const produce = async (count: number, line: string): Promise<void> => {
      const producer = await idempotentProducer(broker.brokers);
      try {
        await produceMessages(producer, topic, count, (i) => ({ key: 'press', value: eventValue(i), headers: { line } }), { partitions: 2, chunk: 50 });
      } finally {
        await producer.disconnect();
      }
    };
    await broker.createTopic(topic, 2);
    await produce(OLD, 'old');
    const stateDir = join(dir, 'recreated');
    const config = join(dir, 'recreated.yaml');
    await writeKafkaConfig(config, { stateDir, brokers: broker.brokers, groupId: 'recreated', eventsTopic: topic, kafka: { from_beginning: true } });
    const first = await startFaultDaemon(config, {}, track);
    await until(() => groupCaughtUp(broker, 'recreated', topic), 60_000, 'the group to commit the first topic', 500);
    expect(await first.stop()).toEqual({ code: 0, signal: null });

    const admin = await broker.admin();
    try {
      await admin.deleteTopics({ topics: [topic] });
      await until(async () => !(await admin.listTopics()).includes(topic), 60_000, 'the topic to be deleted', 200);
      // Until the deletion has gone through everywhere, creating the name again is refused.
      await until(
        () => admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: false }).catch(() => false),
        60_000,
        'the topic to be created again',
        300,
      );
      // Served by its leaders (an answer can be NOT_LEADER for a moment), and empty.
      await until(
        async () => {
          const meta = await admin.fetchTopicMetadata({ topics: [topic] });
          const parts = meta.topics[0]?.partitions ?? [];
          if (parts.length !== 2 || parts.some((p) => p.leader < 0)) return false;
          const ends = await admin.fetchTopicOffsets(topic);
          return ends.length === 2 && ends.every((e) => Number(e.high) === 0);
        },
        60_000,
        'the new, empty topic to be served by its leaders',
        200,
      );
    } finally {
      await admin.disconnect();
    }
    await produce(NEW, 'new');

    // The consumer starts from the new log's beginning either way: Kafka 4.3 drops the
    // group's committed offsets with the topic (none: from_beginning), and an offset that
    // outlived it would be out of range, which kafkajs resets by the same from_beginning.
    const second = await startFaultDaemon(config, {}, track);
    await until(() => groupCaughtUp(broker, 'recreated', topic), 60_000, 'the group to commit the new topic', 500);
    expect(await second.stop()).toEqual({ code: 0, signal: null });
    // Every record of both incarnations once, with its own payload and coordinates:
    // (line, seq, partition, offset), which the offsets alone could not tell apart.
    const contents = readHotTier(stateDir, 'events', { dataset: kafkaDatasets.get('events')! });
    const col = (name: string): number => contents.columns.indexOf(name);
    const landed = contents.rows.map((r) => `${r[col('line')]}:${r[col('seq')]}:${r[col('kafka_partition')]}/${r[col('kafka_offset')]}`).sort();
    const expected = [
      ...Array.from({ length: OLD }, (_, i) => `old:${i}:${i % 2}/${i >> 1}`),
      ...Array.from({ length: NEW }, (_, i) => `new:${i}:${i % 2}/${i >> 1}`),
    ].sort();
    expect(landed).toEqual(expected);
    const resets = second.logs().filter((l) => l.code === 'KAFKA_TOPIC_RESET');
    expect(resets.map((l) => l.partition).sort()).toEqual([0, 1]);
    for (const line of resets) {
      expect(line).toMatchObject({ level: 40, source: 'kafka:plant_kafka', topic, old_watermark: OLD / 2, log_end: NEW / 2, first_offset: 0 });
    }
  });

  it('pause() stops consumption (backpressure) until resume(); nothing is lost', async () => {
    const topic = 'paused';
    await broker.createTopic(topic, 2);
    const stateDir = join(dir, 'paused');
    const { config, datasets } = parseConfigText(
      JSON.stringify({
        plant: 'p',
        state_dir: stateDir,
        datasets: KAFKA_DATASETS,
        sources: { kafka: [{ name: 'k', brokers: broker.brokers, group_id: 'paused', heartbeat_interval_ms: 500, session_timeout_ms: 6000, routes: [{ topic, dataset: 'events', fields: EVENTS_ROUTE_FIELDS }] }] },
      }),
      join(dir, 'paused.yaml'),
    );
    const landing = new LandingLog({ dbPath: join(dir, 'paused.db'), datasets: config.datasets, maxRows: 1000, maxDelayMs: 1, retryInitialMs: 10, dedupeRetentionHours: 1, logger: silentLogger() });
    await landing.start();
    const blobs = new BlobStore(join(dir, 'paused-blobs'));
    await blobs.start();
    const source = new KafkaSource({ config: config.sources.kafka[0]!, mapper: compileKafkaRoutes(config.sources.kafka[0]!, datasets), landing, blobs, logger: silentLogger() });
    try {
      await source.start();
      const producer = await idempotentProducer(broker.brokers);
      await produceMessages(producer, topic, 200, (i) => ({ value: eventValue(i) }), { partitions: 2 });
      await until(() => source.stats.landed === 200, 60_000, 'the first 200 records to land');
      source.pause();
      await produceMessages(producer, topic, 200, (i) => ({ value: eventValue(i) }), { partitions: 2, from: 200 });
      // Paused: the records wait in Kafka, uncommitted.
      await new Promise((r) => setTimeout(r, 3000));
      expect(source.stats.received).toBe(200);
      expect(await groupCaughtUp(broker, 'paused', topic)).toBe(false);
      source.resume();
      await until(() => source.stats.landed === 400, 60_000, 'the paused records to land after resume');
      await until(() => groupCaughtUp(broker, 'paused', topic), 30_000, 'offsets committed after resume', 300);
      await producer.disconnect();
    } finally {
      await source.stop();
      await landing.stop();
    }
  });
});
