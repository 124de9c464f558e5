// Disk-full test with a real ENOSPC: the daemon's state directory lives on a small
// tmpfs (test/support/small-fs.ts) that a ballast file fills to the last byte while a
// QoS 1 publisher keeps going. The promise (DESIGN.md "Guarantees"): a clear alert,
// sources pause, nothing acknowledged is dropped, recovery is automatic.
//   - SQLite commits fail with SQLITE_FULL: the daemon logs LANDING_DISK_FULL and
//     stays alive; it acknowledges nothing it could not commit, so the broker keeps
//     what is published meanwhile;
//   - the sealer's Parquet writes fail with ENOSPC too: it logs and retries, the rows
//     stay landed;
//   - a SIGKILL while full: the daemon restarts on the full disk and alerts again;
//   - once the ballast goes, ingestion resumes by itself (LANDING_RECOVERED) and every
//     seq the broker acknowledged to the publisher ends up in the hot tier (the dedupe
//     dataset exactly once); the landing database passes PRAGMA integrity_check.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import { datasetSchema } from '../../config/schema.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { spawnDaemon, type ChildDaemon, type LogLine } from '../support/child-daemon.ts';
import {
  auditStateDir,
  duplicatesOf,
  hotFileLevels,
  integrityCheck,
  missingOf,
  until,
  waitForSubscriptions,
} from '../support/failpoint.ts';
import { readHotTier } from '../support/hot-tier-reader.ts';
import { createPublisher, type MqttPublisher } from '../support/mqtt-publisher.ts';
import { createSmallFs, type SmallFs } from '../support/small-fs.ts';

const CLIENT_ID = 'lakeside-diskfull';
const CONNECTIONS = 2;
const SHARE = 'lakeside';
const TOPICS = ['full/readings/l1', 'full/events/l1', 'full/readings/l2', 'full/events/l2'];
const datasetOfSeq = (seq: number): 'readings' | 'events' => (seq % 2 === 0 ? 'readings' : 'events');
/** Past event times: closed windows, so compaction also writes (and fails) while full. */
const EVENT_AGE_MS = 70_000;

const DATASETS = [
  {
    name: 'readings',
    time_column: 'ts',
    columns: [
      { name: 'seq', type: 'long', nullable: false },
      { name: 'line', type: 'string', nullable: false },
      { name: 'value', type: 'double' },
    ],
    dedupe_key: ['seq'],
    partition_by: ['line'],
  },
  {
    name: 'events',
    time_column: 'ts',
    columns: [
      { name: 'seq', type: 'long', nullable: false },
      { name: 'line', type: 'string', nullable: false },
      { name: 'value', type: 'double' },
    ],
  },
];
const resolved = new Map<string, Dataset>(DATASETS.map((d) => [d.name, resolveDataset(datasetSchema.parse(d))]));

function configFor(stateDir: string, brokerUrl: string): object {
  const fields = {
    ts: { json: 'ts', format: 'epoch_ms' },
    seq: { json: 'seq' },
    line: { topic_level: 2 },
    value: { json: 'value' },
  };
  return {
    plant: 'diskfull',
    state_dir: stateDir,
    log_level: 'info',
    landing: { group_commit_max_delay_ms: 2, retry_initial_ms: 50 },
    hot: { seal_interval_ms: 300, compaction_window_minutes: 1, compaction_grace_seconds: 1, compaction_interval_ms: 700 },
    datasets: DATASETS,
    sources: {
      mqtt: [
        {
          name: 'broker',
          url: brokerUrl,
          client_id: CLIENT_ID,
          clean_session: false,
          share_group: SHARE,
          connections: CONNECTIONS,
          reconnect_min_ms: 100,
          reconnect_max_ms: 1000,
          routes: [
            { filter: 'full/readings/+', dataset: 'readings', fields },
            { filter: 'full/events/+', dataset: 'events', fields },
          ],
        },
      ],
    },
  };
}

function hotTierSeqs(stateDir: string): Record<'readings' | 'events', Map<number, number>> {
  const out = { readings: new Map<number, number>(), events: new Map<number, number>() };
  for (const name of ['readings', 'events'] as const) {
    const contents = readHotTier(stateDir, name, { dataset: resolved.get(name)! });
    const col = contents.columns.indexOf('seq');
    for (const row of contents.rows) {
      const seq = Number(row[col]);
      out[name].set(seq, (out[name].get(seq) ?? 0) + 1);
    }
  }
  return out;
}

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
    await writeFile(configPath, JSON.stringify(configFor(stateDir, broker.url), null, 2));

    let d = spawnDaemon({ config: configPath, env: { LAKESIDE_FAILPOINTS: '' } });
    const runs = [d];
    daemon = d;
    await d.waitReady(60_000);
    await waitForSubscriptions(
      broker.logFile,
      Array.from({ length: CONNECTIONS }, (_, i) => `${CLIENT_ID}-${i}`),
      `$share/${SHARE}/full/events/+`,
    );

    publisher = await createPublisher({
      url: broker.url,
      topics: TOPICS,
      rate: 400,
      window: 100,
      payload: (seq, ts) => JSON.stringify({ seq, ts: ts - EVENT_AGE_MS, value: (seq % 1000) / 10 }),
    });
    publisher.start();
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
          const now = hotTierSeqs(stateDir);
          landedWhileFull = publishedWhileFull.filter((s) => now.readings.has(s) || now.events.has(s));
          return true;
        },
        30_000,
        'a readable hot tier while the disk is full',
      );
      expect(landedWhileFull).toEqual([]);
    }

    // A crash while the disk is full: the daemon starts again on the full disk (it
    // needs no free space to start), alerts again as the broker redelivers, and stays up.
    d.kill('SIGKILL');
    expect(await d.waitExit(15_000)).toEqual({ code: null, signal: 'SIGKILL' });
    d = spawnDaemon({ config: configPath, env: { LAKESIDE_FAILPOINTS: '' } });
    runs.push(d);
    daemon = d;
    await d.waitReady(60_000);
    const fullAgain = await d.waitForLine((l) => codeOf(l) === 'LANDING_DISK_FULL', 60_000);
    expect(String(fullAgain.json?.sqlite)).toMatch(/^SQLITE_FULL/);
    expect(d.exit).toBeUndefined();

    // Give the space back: ingestion resumes without any help.
    const linesBeforeFree = d.lines.length;
    await fs.free();
    const recovered = await d.waitForLine((l) => codeOf(l) === 'LANDING_RECOVERED' && d.lines.indexOf(l) >= linesBeforeFree, 120_000);
    expect(recovered.msg).toMatch(/resumed/);

    // Keep publishing a little after recovery, then stop and let everything drain.
    await publisher.waitForAcked(publisher.stats().acked + 500, 60_000);
    await publisher.stop(30_000);
    expect(publisher.failed()).toEqual([]);
    const acked = publisher.ackedSeqs();
    const expected = { readings: [] as number[], events: [] as number[] };
    for (const seq of acked) expected[datasetOfSeq(seq)].push(seq);

    let last: ReturnType<typeof hotTierSeqs> | undefined;
    await until(
      () => {
        last = hotTierSeqs(stateDir);
        return missingOf(expected.readings, last.readings).length === 0 && missingOf(expected.events, last.events).length === 0;
      },
      120_000,
      () =>
        `every acked seq in the hot tier; missing readings ${JSON.stringify(last ? missingOf(expected.readings, last.readings).slice(0, 20) : '?')}, ` +
        `events ${JSON.stringify(last ? missingOf(expected.events, last.events).slice(0, 20) : '?')}`,
      1_000,
    );

    expect(await d.stop(60_000)).toEqual({ code: 0, signal: null });
    const fatal = runs.flatMap((r) => r.logs()).filter((l) => (l.level as number) >= 60);
    expect(fatal).toEqual([]);

    const final = hotTierSeqs(stateDir);
    expect(missingOf(expected.readings, final.readings)).toEqual([]);
    expect(missingOf(expected.events, final.events)).toEqual([]);
    expect(duplicatesOf(final.readings)).toEqual([]);
    // The messages published while the disk was full are all there.
    expect(missingOf(publishedWhileFull, new Set([...final.readings.keys(), ...final.events.keys()]))).toEqual([]);
    expect(integrityCheck(dbPath)).toBe('ok');
    const audit = auditStateDir(stateDir);
    expect(audit.tempFiles).toEqual([]);
    expect(audit.unregisteredParquet).toEqual([]);
    expect(audit.missingParquet).toEqual([]);

    const sealFailures = runs.flatMap((r) => r.logs()).filter((l) => l.code === 'SEAL_FAILED' || l.code === 'COMPACTION_FAILED').length;
    const blockedMs = recovered.json?.blocked_ms;
    console.log(
      `disk-full test: ${acked.length} acked (${publishedWhileFull.length} while full), blocked ${String(blockedMs)} ms, ` +
        `${sealFailures} seal/compaction failures logged, final ${audit.l0} L0 / ${audit.l1} L1 files`,
    );
  });
});
