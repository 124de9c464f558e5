// Test-side Kafka clients (kafkajs) for the Kafka service test, the Kafka fault tests
// and the ingest benchmark: an idempotent producer (a retried send never writes a
// record twice, so "every record exactly once" can be checked per offset), a consumer
// group that reads a topic to its end, and each partition's end offset.
import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';

export function testKafka(brokers: string[], clientId = 'lakeside-test'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

export async function idempotentProducer(brokers: string[]): Promise<Producer> {
  const producer = testKafka(brokers, 'lakeside-test-producer').producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return producer;
}

/** Sends `count` messages built by `make(i)` to `topic`, `chunk` per request, round-robin over partitions. */
export async function produceMessages(
  producer: Producer,
  topic: string,
  count: number,
  make: (i: number) => { value: Buffer | string | null; key?: string | null; headers?: Record<string, string>; timestamp?: string },
  opts: { partitions?: number; chunk?: number; from?: number } = {},
): Promise<void> {
  const chunk = opts.chunk ?? 1000;
  const from = opts.from ?? 0;
  for (let start = from; start < from + count; start += chunk) {
    const end = Math.min(from + count, start + chunk);
    const messages = [];
    for (let i = start; i < end; i++) {
      const m = make(i);
      messages.push({ ...m, ...(opts.partitions ? { partition: i % opts.partitions } : {}) });
    }
    await producer.send({ topic, acks: -1, messages });
  }
}

/** partition → end offset (the next offset to be written), from the leader. */
export async function endOffsets(brokers: string[], topic: string): Promise<Map<number, number>> {
  const admin = testKafka(brokers, 'lakeside-test-offsets').admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Every (partition, offset) of the topic as `p/o` strings: what a hot tier must hold exactly once. */
export async function allRecordKeys(brokers: string[], topic: string): Promise<string[]> {
  const keys: string[] = [];
  for (const [partition, end] of await endOffsets(brokers, topic)) {
    for (let offset = 0; offset < end; offset++) keys.push(`${partition}/${offset}`);
  }
  return keys;
}
