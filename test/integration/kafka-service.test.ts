// Self-test of the Kafka 4 test service: if it fails, the Kafka source's integration
// tests say nothing. Starts a single-node KRaft broker, creates a topic, produces and
// consumes through a consumer group with offsets committed, and stops cleanly; twice in
// a row (a second start must not trip over the first's ports, files or processes).
// A broker restart keeps every acknowledged record and the group's committed offsets.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../services/kafka.ts';
import { endOffsets, idempotentProducer, produceMessages, testKafka } from '../support/kafka-client.ts';
import { folderNamedBy, keptFolder } from '../support/kept-logs.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function portAccepts(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const s = connect({ port: Number(port), host });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Reads `count` records of `topic` in group `groupId`, committing offsets; returns their values. */
async function consumeAll(k: KafkaBroker, topic: string, groupId: string, count: number): Promise<string[]> {
  const consumer = testKafka(k.brokers, 'service-test').consumer({ groupId });
  await consumer.connect();
  const values: string[] = [];
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumed ${values.length} of ${count}`)), 60_000);
      void consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) values.push(m.value!.toString());
          await consumer.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }]);
          if (values.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

describe('Kafka 4 test service', () => {
  it('starts, answers and stops cleanly, twice in a row', async () => {
    for (let round = 0; round < 2; round++) {
      const k = await startKafka();
      cleanups.push(() => k.stop());
      const pid = k.pid!;
      expect(pidAlive(pid)).toBe(true);
      await k.createTopic('answers', 3);
      const producer = await idempotentProducer(k.brokers);
      await produceMessages(producer, 'answers', 300, (i) => ({ value: `m${i}` }), { partitions: 3, chunk: 100 });
      await producer.disconnect();
      const values = await consumeAll(k, 'answers', 'service-test', 300);
      expect(new Set(values).size).toBe(300);
      expect(values).toHaveLength(300);
      const admin = await k.admin();
      const committed = await admin.fetchOffsets({ groupId: 'service-test', topics: ['answers'] });
      await admin.disconnect();
      expect(committed[0]!.partitions.map((p) => Number(p.offset)).reduce((a, b) => a + b, 0)).toBe(300);

      // The first round keeps its logs, as a failed test would: the stop is as clean.
      await k.stop({ keepLogs: round === 0 });
      expect(pidAlive(pid)).toBe(false);
      expect(await portAccepts(k.brokers[0]!)).toBe(false);
      expect(existsSync(k.dir)).toBe(false);
      if (round === 0) {
        const folder = keptFolder(k.keptLogs, cleanups);
        expect(readdirSync(folder).sort()).toEqual(['kafka.log', 'log4j2.properties', 'server.properties']);
        expect(readFileSync(join(folder, 'kafka.log'), 'utf8')).toMatch(/Kafka Server started/);
        expect(readFileSync(join(folder, 'server.properties'), 'utf8')).toContain(`listeners=PLAINTEXT://${k.brokers[0]}`);
      } else {
        expect(k.keptLogs).toBeUndefined();
      }
    }
  });

  it('a broker that is not ready in time fails with its logs and config kept in test-logs, named by the error', async () => {
    const error: Error = await startKafka({ startTimeoutMs: 1 }).then(
      async (k) => {
        await k.stop();
        return new Error('started within 1 ms');
      },
      (e: Error) => e,
    );
    expect(error.message).toMatch(/kafka not ready within 1 ms/);
    const folder = folderNamedBy(error, 'kafka', cleanups);
    expect(readdirSync(folder)).toEqual(expect.arrayContaining(['server.properties', 'log4j2.properties', 'start-error.txt']));
    expect(readFileSync(join(folder, 'start-error.txt'), 'utf8')).toContain('kafka not ready within 1 ms');
  });

  it('a broker restart keeps every acknowledged record and the committed offsets, on the same port', async () => {
    const k = await startKafka();
    cleanups.push(() => k.stop());
    await k.createTopic('kept', 2);
    const producer = await idempotentProducer(k.brokers);
    await produceMessages(producer, 'kept', 200, (i) => ({ value: `k${i}` }), { partitions: 2 });
    await producer.disconnect();
    await consumeAll(k, 'kept', 'restart-group', 200);
    const before = k.pid;
    await k.restart();
    expect(k.pid).not.toBe(before);
    expect([...(await endOffsets(k.brokers, 'kept')).values()]).toEqual([100, 100]);
    const admin = await k.admin();
    const committed = await admin.fetchOffsets({ groupId: 'restart-group', topics: ['kept'] });
    await admin.disconnect();
    expect(committed[0]!.partitions.map((p) => Number(p.offset)).sort()).toEqual([100, 100]);
  });
});
