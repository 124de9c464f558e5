// Backpressure on the Kafka source, end to end: a real daemon reads a real Kafka 4
// broker while a producer keeps sending, and its state directory lives on a small
// tmpfs (test/support/small-fs.ts). The disk budget measures that filesystem (no
// max_bytes); a ballast file fills it past the critical watermark (60 %) to 65 %: a
// real fault, with room left on the disk.
//   - the daemon alerts (DISK_CRITICAL) and pauses its sources: the consumer group's
//     committed offsets and the landed watermarks stop moving while the topic grows by
//     thousands of records, though the disk still has megabytes free and nothing failed
//     to write (so the pause held the consumer back, not a full disk: with pause() a
//     no-op the daemon lands on until ENOSPC stops it, and this test fails), and the
//     agent stays in the group (heartbeats: the group is stable with its one member, so
//     no rebalance hands the partitions around);
//   - the ballast goes: the daemon resumes by itself, the group catches up with the end
//     of the topic, and every record of the topic is in the hot tier exactly once.
// No root (mount) or no Kafka: the test fails rather than skips (CI=true).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaBroker } from '../services/kafka.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import { startFaultDaemon } from '../support/fault-scenario.ts';
import { until } from '../support/failpoint.ts';
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
import { createSmallFs, type SmallFs } from '../support/small-fs.ts';

const GROUP = 'lakeside-backpressure';
const TOPIC = 'pressure-events';
const PARTITIONS = 3;
const FS_KIB = 64 * 1024; // room for the landing WAL between checkpoints below the critical watermark
/** Records the topic must grow by while the daemon is paused. */
const GROWTH_WHILE_PAUSED = 4_000;

/** Where the group stands: the sum of its committed offsets, and the topic's end. */
async function groupPosition(broker: KafkaBroker): Promise<{ committed: number; end: number; state: string; members: number }> {
  const admin = await broker.admin();
  try {
    const [ends, committed, groups] = await Promise.all([
      admin.fetchTopicOffsets(TOPIC),
      admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }),
      admin.describeGroups([GROUP]),
    ]);
    const group = groups.groups[0]!;
    return {
      committed: (committed[0]?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0),
      end: ends.reduce((n, e) => n + Number(e.high), 0),
      state: group.state,
      members: group.members.length,
    };
  } finally {
    await admin.disconnect();
  }
}

describe('kafka backpressure: a full disk pauses the consumer, and it resumes exactly once', () => {
  let broker: KafkaBroker;
  let fs: SmallFs;
  let dir: string;
  let producer: BackgroundProducer | undefined;
  const daemons: ChildDaemon[] = [];
  const track = (d: ChildDaemon): void => void daemons.push(d);

  beforeAll(async () => {
    broker = await startKafka();
    await broker.createTopic(TOPIC, PARTITIONS);
    fs = await createSmallFs({ sizeKiB: FS_KIB });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-kafka-pressure-'));
  });

  afterAll(async () => {
    await producer?.stop().catch(() => undefined);
    for (const d of daemons) d.kill('SIGKILL');
    await broker?.stop();
    await fs?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stops committing while paused at the critical watermark, then lands every record once', async () => {
    const stateDir = join(fs.dir, 'state');
    const configPath = join(dir, 'lakeside.yaml'); // off the small fs: config is not state
    await writeKafkaConfig(configPath, {
      stateDir,
      brokers: broker.brokers,
      groupId: GROUP,
      eventsTopic: TOPIC,
      kafka: { max_bytes_per_partition: 16_384 },
      tiering: { eviction_interval_ms: 200, disk_budget: { high_watermark_percent: 50, critical_watermark_percent: 60 } },
    });
    const daemon = await startFaultDaemon(configPath, {}, track);
    producer = await startBackgroundProducer(broker, { eventsTopic: TOPIC, chunk: 100, pauseMs: 30 });
    await until(() => landedProgress(stateDir) > 1_000, 90_000, 'the daemon to land records');

    // The disk fills past the critical watermark (60 %): 65 % used.
    fs.fill(Math.floor(FS_KIB * 1024 * 0.35));
    await daemon.waitForLine((l) => l.json?.code === 'DISK_CRITICAL', 30_000);

    // Batches already past the pause gate land and commit; then nothing moves.
    let held = { landed: -1, committed: -1 };
    await until(
      async () => {
        const now = { landed: landedProgress(stateDir), committed: (await groupPosition(broker)).committed };
        const settled = now.landed === held.landed && now.committed === held.committed;
        held = now;
        return settled;
      },
      60_000,
      'the paused consumer to stop landing and committing',
      1_000,
    );
    const endWhenHeld = (await groupPosition(broker)).end;
    await until(async () => (await groupPosition(broker)).end >= endWhenHeld + GROWTH_WHILE_PAUSED, 90_000, 'the topic to grow while the daemon is paused', 250);
    const paused = await groupPosition(broker);
    expect(landedProgress(stateDir), 'nothing landed while paused').toBe(held.landed);
    expect(paused.committed, 'no offset committed while paused').toBe(held.committed);
    expect(paused.end - paused.committed).toBeGreaterThanOrEqual(GROWTH_WHILE_PAUSED);
    // Room to land them all (a few MB of landing rows), and no write failed for want of it.
    expect(fs.available(), 'free bytes while paused').toBeGreaterThan(12 * 1024 * 1024);
    expect(daemon.logs().filter((l) => l.code === 'LANDING_DISK_FULL' || String(l.err ?? '').includes('ENOSPC'))).toEqual([]);
    // Still a member (its heartbeats go on): no rebalance moved anything.
    expect({ state: paused.state, members: paused.members }).toEqual({ state: 'Stable', members: 1 });
    expect(daemon.logs().some((l) => l.msg === 'disk below the critical watermark: sources resumed')).toBe(false);

    // Space returns: the daemon resumes by itself and catches up.
    await fs.free();
    await daemon.waitForMsg('disk below the critical watermark: sources resumed', 30_000);
    await until(() => landedProgress(stateDir) > held.landed, 60_000, 'landing to resume');
    await producer.stop();
    producer = undefined;
    await until(() => groupCaughtUp(broker, GROUP, TOPIC), 120_000, 'the group to commit the end of the topic', 500);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });

    const report = await compareWithLog(broker, TOPIC, hotTierRecords(stateDir, 'events'));
    expectExactlyOnce(report, 'kafka records across a pause at the critical watermark');
    expect(report.expected).toBeGreaterThanOrEqual(paused.end);
    const stopped = daemon.logs().find((l) => l.msg === 'kafka source stopped') as { staleBatchesDropped?: number; commitFailures?: number } | undefined;
    expect(stopped?.commitFailures).toBe(0);
    console.log(`kafka backpressure: ${report.expected} records, ${GROWTH_WHILE_PAUSED}+ produced while paused; stale batches dropped: ${stopped?.staleBatchesDropped}`);
  });
});
