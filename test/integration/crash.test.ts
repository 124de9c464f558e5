// Crash test: the kill -9 promise with real faults. A real Mosquitto, the real daemon
// as a child process, a QoS 1 publisher that never stops while the daemon is killed:
//   (a) SIGKILL at random moments of plain ingest, 5 rounds;
//   (b) SIGKILL frozen at the seal failpoint (L0 published, not registered);
//   (c) SIGKILL frozen at each compaction failpoint (L1 published, not registered;
//       committed, L0 inputs not yet unlinked);
// each time restarted against the same state directory (without failpoints). At the
// end the publisher stops, the daemon drains and is stopped with SIGTERM (exit 0), and:
//   - every seq the broker PUBACKed to the publisher is in the hot tier;
//   - exactly once in `readings` (dedupe key: seq), at least once in `events` (none)
//     and in `frames` (blob payloads, at-least-once, blob files checked);
//   - no `.tmp-` file, no unregistered Parquet file, no registered file missing,
//     no orphan blob file; L0 and L1 files both existed (compaction really ran).
// Event times lie 70 s in the past, so their 1-minute windows are already closed and
// compaction (grace 1 s) runs throughout the test. No timing assertions.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import type { ChildDaemon } from '../support/child-daemon.ts';
import {
  expectAllAcked,
  expectCleanStateDir,
  expectedSeqs,
  hotTierSeqs,
  killHard,
  resolveDatasets,
  SEQ_FIELDS,
  seqDataset,
  startFaultDaemon,
  startSeqPublisher,
  waitForAllLanded,
  writeFaultConfig,
} from '../support/fault-scenario.ts';
import { duplicatesOf, failpointEnv, hotFileLevels, registeredPaths, until, waitForFailpoint, type FailpointName } from '../support/failpoint.ts';
import type { MqttPublisher } from '../support/mqtt-publisher.ts';

const SESSIONS = { clientId: 'lakeside-crash', share: 'lakeside', connections: 4 };
/** seq % 5 picks the topic, so the dataset of a seq is known. */
const TOPICS = ['crash/readings/l1', 'crash/events/l1', 'crash/readings/l2', 'crash/events/l2', 'crash/frames/l1'];
const NAMES = ['readings', 'events', 'frames'] as const;
const datasetOfSeq = (seq: number): (typeof NAMES)[number] => (['readings', 'events', 'readings', 'events', 'frames'] as const)[seq % 5]!;

const DATASETS = [
  seqDataset('readings', { dedupe: true, partitionByLine: true }),
  // No dedupe key: at-least-once, duplicates allowed, nothing missing.
  seqDataset('events', { partitionByLine: true }),
  {
    // Raw payloads as blobs: exercises blob publish-before-commit and orphan recovery.
    name: 'frames',
    time_column: 'ts',
    columns: [
      { name: 'line', type: 'string', nullable: false },
      { name: 'image', type: 'blob', nullable: false },
    ],
  },
];
const resolved = resolveDatasets(DATASETS);
/** seq → how many rows hold it, per dataset. Frames are read back through their blob files. */
const hotTierOf = (stateDir: string) => hotTierSeqs(stateDir, resolved, NAMES);

describe('crash: kill -9 during ingest, seal and compaction loses nothing acknowledged', () => {
  let broker: Mosquitto;
  let dir: string;
  let stateDir: string;
  let configPath: string;
  let publisher: MqttPublisher | undefined;
  const daemons: ChildDaemon[] = [];
  const seenLevels = { l0: 0, l1: 0 };
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    broker = await startMosquitto({ extraConfig: ['log_type subscribe'] });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-crash-'));
    stateDir = join(dir, 'state');
    configPath = join(dir, 'lakeside.yaml');
    await writeFaultConfig(configPath, {
      plant: 'crashtest',
      stateDir,
      datasets: DATASETS,
      brokerUrl: broker.url,
      sessions: SESSIONS,
      landing: { group_commit_max_rows: 1000, group_commit_max_delay_ms: 2, retry_initial_ms: 50 },
      mqtt: { connect_timeout_ms: 10_000 },
      routes: [
        { filter: 'crash/readings/+', dataset: 'readings', fields: SEQ_FIELDS },
        { filter: 'crash/events/+', dataset: 'events', fields: SEQ_FIELDS },
        {
          filter: 'crash/frames/+',
          dataset: 'frames',
          payload: 'binary',
          fields: { ts: { received_at: true }, line: { topic_level: 2 }, image: { payload: true } },
        },
      ],
    });
  });

  afterAll(async () => {
    if (sampler) clearInterval(sampler);
    for (const d of daemons) {
      d.kill('SIGKILL');
      await d.waitExit(10_000).catch(() => undefined);
    }
    await publisher?.close(2_000).catch(() => undefined);
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function start(failpoints: FailpointName[] = []): Promise<ChildDaemon> {
    const env = failpoints.length ? failpointEnv(...failpoints) : { LAKESIDE_FAILPOINTS: '' };
    return startFaultDaemon(configPath, env, (d) => daemons.push(d));
  }

  /** Waits until the daemon has made visible progress (more rows in the hot tier), so each round does something. */
  async function progressed(): Promise<void> {
    const dbPath = join(stateDir, 'landing.db');
    const before = (() => {
      const l = hotFileLevels(dbPath);
      return l.l0 + l.l1;
    })();
    const registeredBefore = registeredPaths(dbPath);
    await until(
      () => [...registeredPaths(dbPath)].some((p) => !registeredBefore.has(p)),
      30_000,
      `a new registered hot-tier file (had ${before})`,
    );
  }

  it('keeps every acknowledged message through SIGKILLs at random moments, in a seal and in a compaction', async () => {
    // Sessions and shared subscriptions must exist before the first publish: a QoS 1
    // message with no subscriber is acked by the broker and dropped.
    let d = await start();
    publisher = await startSeqPublisher({ broker, sessions: SESSIONS, filter: 'crash/frames/+', topics: TOPICS, rate: 600 });
    const dbPath = join(stateDir, 'landing.db');
    sampler = setInterval(() => {
      try {
        const l = hotFileLevels(dbPath);
        seenLevels.l0 = Math.max(seenLevels.l0, l.l0);
        seenLevels.l1 = Math.max(seenLevels.l1, l.l1);
      } catch {
        // the database may be mid-recovery; the next sample sees it
      }
    }, 250);
    await publisher.waitForAcked(500, 30_000);

    // (a) plain ingest, killed at random moments.
    for (let round = 0; round < 5; round++) {
      await progressed();
      await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 1500)));
      await killHard(d);
      d = await start();
    }

    // (b) and (c): frozen exactly between publish and commit (or commit and unlink).
    for (const point of ['seal.after-publish', 'compact.after-publish', 'compact.after-commit'] as const) {
      await killHard(d);
      d = await start([point]);
      const { files } = await waitForFailpoint(d, point);
      expect(files.length).toBeGreaterThan(0);
      const registered = registeredPaths(dbPath);
      for (const file of files) {
        // The half-done state really is on disk when the kill lands.
        expect(existsSync(join(stateDir, file))).toBe(true);
        expect(registered.has(file)).toBe(false);
      }
      if (point === 'compact.after-commit') {
        const l1 = [...registered].filter((p) => p.includes('/L1/'));
        expect(l1.length).toBeGreaterThan(0);
      }
      await killHard(d);
      d = await start();
      await progressed();
    }

    // Let it run a little past the last crash, then stop publishing and drain.
    await progressed();
    await publisher.stop(30_000);
    const acked = publisher.ackedSeqs();
    expect(publisher.failed()).toEqual([]);
    expect(acked.length).toBeGreaterThan(1000);

    const expected = expectedSeqs(acked, NAMES, datasetOfSeq);
    await waitForAllLanded(() => hotTierOf(stateDir), expected);
    // Wait for the compaction of everything compactable, so the final seal/compaction
    // state is exercised too (the JSON datasets' windows are all closed).
    await until(() => {
      const l = hotFileLevels(dbPath);
      return l.l1 > 0;
    }, 60_000, 'L1 files');

    expect(await d.stop(60_000)).toEqual({ code: 0, signal: null });
    clearInterval(sampler);

    // Nothing acknowledged is lost; the dedupe dataset holds each seq exactly once.
    const final = hotTierOf(stateDir);
    expectAllAcked(final, expected, ['readings']);
    // Nothing that was never published shows up.
    const sent = publisher.stats().sent;
    for (const name of NAMES) {
      for (const seq of final[name].keys()) {
        expect(seq).toBeLessThan(sent);
        expect(datasetOfSeq(seq)).toBe(name);
      }
    }

    // The state directory is clean: hot_files is the truth, blobs match their table.
    const audit = expectCleanStateDir(stateDir);

    // Compaction really ran during the test: L0 and L1 files both existed.
    seenLevels.l0 = Math.max(seenLevels.l0, audit.l0);
    seenLevels.l1 = Math.max(seenLevels.l1, audit.l1);
    expect(seenLevels.l0).toBeGreaterThan(0);
    expect(seenLevels.l1).toBeGreaterThan(0);

    // Each crash was followed by a start-up that found and removed the half-done files.
    const recovered = daemons.flatMap((x) => x.logs()).filter((l) => l.msg === 'hot tier recovered: removed unregistered files');
    expect(recovered.length).toBeGreaterThan(0);
    const dupes = final.events.size > 0 ? duplicatesOf(final.events).length : 0;
    console.log(
      `crash test: ${acked.length} acked, ${daemons.length} daemon runs, ` +
        `${final.readings.size} readings (exactly once), ${dupes} duplicated events (allowed), ` +
        `${seenLevels.l0} L0 / ${seenLevels.l1} L1 files at most`,
    );
  });
});
