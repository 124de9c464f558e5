// Disk-full test with a real ENOSPC: the daemon's state directory lives on a small
// tmpfs (test/support/small-fs.ts) that a ballast file fills to the last byte while a
// QoS 1 publisher keeps going. The promise (DESIGN.md "Guarantees"): a clear alert,
// sources pause, nothing acknowledged is dropped, recovery is automatic.
//   - SQLite commits fail with SQLITE_FULL: the daemon logs LANDING_DISK_FULL and
//     stays alive; it acknowledges nothing it could not commit, so the broker keeps
//     what is published meanwhile;
//   - the sealer's Parquet writes fail with ENOSPC too: it logs and retries, the rows
//     stay landed;
//   - a SIGKILL while full: the daemon restarts on the full disk and alerts again (the
//     landing log's LANDING_DISK_FULL, or the disk budget's DISK_CRITICAL, which pauses
//     the sources first: tiering/evictor.ts);
//   - once the ballast goes, ingestion resumes by itself (LANDING_RECOVERED, or the
//     watermark's resume) and every
//     seq the broker acknowledged to the publisher ends up in the hot tier (the dedupe
//     dataset exactly once); the landing database passes PRAGMA integrity_check.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import type { ChildDaemon, LogLine } from '../support/child-daemon.ts';
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
import { hotFileLevels, integrityCheck, missingOf, until } from '../support/failpoint.ts';
import type { MqttPublisher } from '../support/mqtt-publisher.ts';
import { createSmallFs, type SmallFs } from '../support/small-fs.ts';

const SESSIONS = { clientId: 'lakeside-diskfull', share: 'lakeside', connections: 2 };
const TOPICS = ['full/readings/l1', 'full/events/l1', 'full/readings/l2', 'full/events/l2'];
const NAMES = ['readings', 'events'] as const;
const datasetOfSeq = (seq: number): (typeof NAMES)[number] => (seq % 2 === 0 ? 'readings' : 'events');
// The publisher's event times lie in the past (EVENT_AGE_MS): closed windows, so compaction
// also writes (and fails) while full.

const DATASETS = [seqDataset('readings', { dedupe: true, partitionByLine: true }), seqDataset('events')];
const resolved = resolveDatasets(DATASETS);
const hotTierOf = (stateDir: string) => hotTierSeqs(stateDir, resolved, NAMES);

const codeOf = (l: LogLine): unknown => l.json?.code;

describe('disk full: a clear alert, nothing acknowledged dropped, automatic recovery', () => {
  let broker: Mosquitto;
  let fs: SmallFs;
  let dir: string;
  let daemon: ChildDaemon | undefined;
  let publisher: MqttPublisher | undefined;

  beforeAll(async () => {
    broker = await startMosquitto({ extraConfig: ['log_type subscribe'] });
    // Room for the WAL (up to ~16 MB before a checkpoint), the database and Parquet.
    fs = await createSmallFs({ sizeKiB: 32 * 1024 });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-diskfull-'));
  });

  afterAll(async () => {
    daemon?.kill('SIGKILL');
    await daemon?.waitExit(10_000).catch(() => undefined);
    await publisher?.close(2_000).catch(() => undefined);
    await broker?.stop();
    await fs?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('alerts, holds back acks while full, and resumes by itself once space returns', async () => {
    const stateDir = join(fs.dir, 'state');
    const dbPath = join(stateDir, 'landing.db');
    const configPath = join(dir, 'lakeside.yaml'); // off the small fs: config is not state
    await writeFaultConfig(configPath, {
      plant: 'diskfull',
      stateDir,
      datasets: DATASETS,
      brokerUrl: broker.url,
      sessions: SESSIONS,
      landing: { group_commit_max_delay_ms: 2, retry_initial_ms: 50 },
      routes: [
        { filter: 'full/readings/+', dataset: 'readings', fields: SEQ_FIELDS },
        { filter: 'full/events/+', dataset: 'events', fields: SEQ_FIELDS },
      ],
    });

    const runs: ChildDaemon[] = [];
    const track = (d: ChildDaemon): void => {
      runs.push(d);
      daemon = d;
    };
    let d = await startFaultDaemon(configPath, { LAKESIDE_FAILPOINTS: '' }, track);
    publisher = await startSeqPublisher({ broker, sessions: SESSIONS, filter: 'full/events/+', topics: TOPICS, rate: 400 });
    // Normal operation first: rows land and are sealed.
    await until(() => hotFileLevels(dbPath).l0 + hotFileLevels(dbPath).l1 > 0, 30_000, 'a first sealed file');

    // Fill the filesystem to the last byte while publishing continues.
    const linesBeforeFull = d.lines.length;
    fs.fill();
    const full = await d.waitForLine((l) => codeOf(l) === 'LANDING_DISK_FULL', 120_000);
    expect(d.lines.indexOf(full)).toBeGreaterThanOrEqual(linesBeforeFull);
    expect(full.json?.level).toBe(50); // error
    expect(full.msg).toMatch(/disk is full/);
    expect(String(full.json?.sqlite)).toMatch(/^SQLITE_FULL/);

    // While full: the daemon stays up, and the publisher's messages keep being accepted
    // by the broker (which holds them: lakeside does not ack what it could not commit).
    const ackedAtFull = publisher.stats().acked;
    await publisher.waitForAcked(ackedAtFull + 2_500, 60_000);
    const publishedWhileFull = publisher.ackedSeqs().slice(ackedAtFull);
    expect(d.exit).toBeUndefined();
    // The sealer hits ENOSPC as well; it must log and retry, not crash or drop rows.
    await until(
      () => d.lines.slice(linesBeforeFull).some((l) => codeOf(l) === 'SEAL_FAILED' || codeOf(l) === 'COMPACTION_FAILED'),
      30_000,
      'a seal or compaction failing on the full disk',
    );
    expect(d.exit).toBeUndefined();

    // Sources paused, nothing acknowledged: unless the log says commits went through in
    // between (space freed by a failed write's cleanup can let one through), none of the
    // messages published after the alert is in the landing log or hot tier yet, i.e.
    // lakeside has not PUBACKed them and the broker still holds them.
    const resumedEarly = d.lines.slice(d.lines.indexOf(full)).some((l) => codeOf(l) === 'LANDING_RECOVERED');
    if (!resumedEarly) {
      let landedWhileFull: number[] = [];
      await until(
        () => {
          const now = hotTierOf(stateDir);
          landedWhileFull = publishedWhileFull.filter((s) => now.readings.has(s) || now.events.has(s));
          return true;
        },
        30_000,
        'a readable hot tier while the disk is full',
      );
      expect(landedWhileFull).toEqual([]);
    }

    // A crash while the disk is full: the daemon starts again on the full disk (it
    // needs no free space to start), alerts again and stays up. The alert is the landing
    // log's (a commit failed as the broker redelivers) or, when the disk budget's first
    // measurement comes before any commit (it runs before the sources start), the
    // critical watermark's, which pauses the sources before they take anything.
    await killHard(d);
    d = await startFaultDaemon(configPath, { LAKESIDE_FAILPOINTS: '' }, track);
    const fullAgain = await d.waitForLine((l) => codeOf(l) === 'LANDING_DISK_FULL' || codeOf(l) === 'DISK_CRITICAL', 60_000);
    if (codeOf(fullAgain) === 'LANDING_DISK_FULL') expect(String(fullAgain.json?.sqlite)).toMatch(/^SQLITE_FULL/);
    expect(fullAgain.json?.level).toBe(50);
    expect(d.exit).toBeUndefined();

    // Give the space back: ingestion resumes without any help (whichever paused it).
    const linesBeforeFree = d.lines.length;
    await fs.free();
    const resumedCode = codeOf(fullAgain) === 'LANDING_DISK_FULL' ? 'LANDING_RECOVERED' : null;
    const recovered = await d.waitForLine(
      (l) => d.lines.indexOf(l) >= linesBeforeFree && (resumedCode ? codeOf(l) === resumedCode : l.msg === 'disk below the critical watermark: sources resumed'),
      120_000,
    );
    expect(recovered.msg).toMatch(/resumed/);

    // Keep publishing a little after recovery, then stop and let everything drain.
    await publisher.waitForAcked(publisher.stats().acked + 500, 60_000);
    await publisher.stop(30_000);
    expect(publisher.failed()).toEqual([]);
    const acked = publisher.ackedSeqs();
    const expected = expectedSeqs(acked, NAMES, datasetOfSeq);
    await waitForAllLanded(() => hotTierOf(stateDir), expected);

    expect(await d.stop(60_000)).toEqual({ code: 0, signal: null });
    const fatal = runs.flatMap((r) => r.logs()).filter((l) => (l.level as number) >= 60);
    expect(fatal).toEqual([]);

    const final = hotTierOf(stateDir);
    expectAllAcked(final, expected, ['readings']);
    // The messages published while the disk was full are all there.
    expect(missingOf(publishedWhileFull, new Set([...final.readings.keys(), ...final.events.keys()]))).toEqual([]);
    expect(integrityCheck(dbPath)).toBe('ok');
    const audit = expectCleanStateDir(stateDir);

    const sealFailures = runs.flatMap((r) => r.logs()).filter((l) => l.code === 'SEAL_FAILED' || l.code === 'COMPACTION_FAILED').length;
    const blockedMs = recovered.json?.blocked_ms;
    console.log(
      `disk-full test: ${acked.length} acked (${publishedWhileFull.length} while full), blocked ${String(blockedMs)} ms, ` +
        `${sealFailures} seal/compaction failures logged, final ${audit.l0} L0 / ${audit.l1} L1 files`,
    );
  });
});
