// Crash test of the Kafka source against a real Kafka 4 broker: a producer keeps
// sending JSON events (4 partitions) and raw binary frames (2 partitions, stored as
// blobs) while the daemon is SIGKILLed again and again at random moments of ingest,
// with batches in flight, and restarted against the same state directory. At the end
// the producer stops, the daemon catches up (group offsets at the log end), stops with
// SIGTERM, and:
//   - every record of both topics is in the hot tier exactly once, counted by its
//     (partition, offset) columns (a batch landed but not yet committed to Kafka when
//     the daemon died is held; the restarted daemon finds it uncommitted in the
//     partition's commit history, drops it and lands it again);
//   - such batches really happened (the restarted daemon logged dropped held batches):
//     a last kill lands exactly between a batch's landing commit and its offset commit
//     (the `kafka.after-landing` failpoint), so this is proven, not left to timing;
//   - the state directory holds no temp, unregistered, missing or orphan files.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../services/kafka.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { expectCleanStateDir, killHard, startFaultDaemon } from '../support/fault-scenario.ts';
import { failpointEnv, until, waitForFailpoint } from '../support/failpoint.ts';
import {
  compareWithLog,
  expectExactlyOnce,
  groupCaughtUp,
  hotTierRecords,
  landedProgress,
  startBackgroundProducer,
  writeKafkaConfig,
  type BackgroundProducer,
} from '../support/kafka-scenario.ts';

const GROUP = 'lakeside-crash';
const EVENTS = 'crash-events';
const FRAMES = 'crash-frames';
const ROUNDS = 6;

describe('kafka crash: kill -9 mid-batch, every record lands exactly once', () => {
  let broker: KafkaBroker;
  let dir: string;
  let stateDir: string;
  let configPath: string;
  let producer: BackgroundProducer | undefined;
  const daemons: ChildDaemon[] = [];

  beforeAll(async () => {
    broker = await startKafka();
    await broker.createTopic(EVENTS, 4);
    await broker.createTopic(FRAMES, 2);
    dir = await mkdtemp(join(tmpdir(), 'lakeside-kafka-crash-'));
    stateDir = join(dir, 'state');
    configPath = join(dir, 'lakeside.yaml');
    // Small fetches: many batches per second, so a kill nearly always lands mid-batch.
    await writeKafkaConfig(configPath, {
      stateDir,
      brokers: broker.brokers,
      groupId: GROUP,
      eventsTopic: EVENTS,
      framesTopic: FRAMES,
      kafka: { max_bytes_per_partition: 16_384 },
    });
  });

  afterAll(async () => {
    await producer?.stop().catch(() => undefined);
    for (const d of daemons) d.kill('SIGKILL');
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('SIGKILL again and again under load; all records exactly once', async () => {
    const track = (d: ChildDaemon): void => void daemons.push(d);
    let daemon = await startFaultDaemon(configPath, {}, track);
    producer = await startBackgroundProducer(broker, { eventsTopic: EVENTS, framesTopic: FRAMES, chunk: 200, pauseMs: 10 });
    const landedRows = (): number => landedProgress(stateDir);
    for (let round = 0; round < ROUNDS; round++) {
      // Wait for fresh landings since the (re)start, then kill at a random moment.
      const before = landedRows();
      await until(() => landedRows() > before + 500, 60_000, `round ${round}: the daemon lands records`);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 700)));
      await killHard(daemon);
      daemon = await startFaultDaemon(configPath, {}, track);
    }
    // And once exactly between the landing commit and the offset commit: that batch
    // is certainly redelivered to the restarted daemon, which must skip it.
    await killHard(daemon);
    daemon = await startFaultDaemon(configPath, failpointEnv('kafka.after-landing'), track);
    await waitForFailpoint(daemon, 'kafka.after-landing');
    await killHard(daemon);
    daemon = await startFaultDaemon(configPath, {}, track);
    await producer.stop();
    producer = undefined;
    await until(async () => (await groupCaughtUp(broker, GROUP, EVENTS)) && (await groupCaughtUp(broker, GROUP, FRAMES)), 120_000, 'the group to commit the end of both topics', 500);
    const exit = await daemon.stop();
    expect(exit).toEqual({ code: 0, signal: null });

    const events = await compareWithLog(broker, EVENTS, hotTierRecords(stateDir, 'events'));
    const frames = await compareWithLog(broker, FRAMES, hotTierRecords(stateDir, 'frames'));
    expectExactlyOnce(events, 'events');
    expectExactlyOnce(frames, 'frames');
    expect(events.expected).toBeGreaterThan(ROUNDS * 500);
    // Held batches were met and dropped: the kills hit landed-but-uncommitted batches.
    const settles = daemons.flatMap((d) => d.logs()).filter((l) => l.msg === 'held batches settled against the group’s commit history');
    const dropped = settles.reduce((n, l) => n + Number(l.dropped ?? 0), 0);
    console.log(`kafka crash: ${events.expected} events, ${frames.expected} frames, ${dropped} held batches dropped and landed again over ${ROUNDS + 1} kills`);
    expect(dropped).toBeGreaterThan(0);
    expect(settles.reduce((n, l) => n + Number(l.unproven ?? 0), 0)).toBe(0);
    expectCleanStateDir(stateDir);
  });
});
