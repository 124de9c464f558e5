// Shared scaffolding of the fault tests (crash.test.ts, disk-full.test.ts): the
// seq-keyed JSON datasets and the daemon config they run with (written as a file), a
// child daemon start, the QoS 1 publisher once the daemon's subscriptions are in place,
// reading back which seqs the hot tier holds, and the closing checks: every acked seq
// is in the hot tier (exactly once where deduped) and the stopped daemon's state
// directory holds no temp, unregistered, missing or orphan files.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import { datasetSchema } from '../../config/schema.ts';
import type { Mosquitto } from '../services/mosquitto.ts';
import { spawnDaemon, type ChildDaemon } from './child-daemon.ts';
import { auditStateDir, duplicatesOf, missingOf, until, waitForSubscriptions, type StateAudit } from './failpoint.ts';
import { readHotTier } from './hot-tier-reader.ts';
import { createPublisher, payloadSeq, type MqttPublisher } from './mqtt-publisher.ts';

/** Event time of the JSON messages: far enough back that their 1-minute window is closed. */
export const EVENT_AGE_MS = 70_000;

/** A JSON dataset of `{ seq, ts, value }` messages, `line` from the topic. */
export function seqDataset(name: string, opts: { dedupe?: boolean; partitionByLine?: boolean } = {}): Record<string, unknown> {
  return {
    name,
    time_column: 'ts',
    columns: [
      { name: 'seq', type: 'long', nullable: false },
      { name: 'line', type: 'string', nullable: false },
      { name: 'value', type: 'double' },
    ],
    ...(opts.dedupe ? { dedupe_key: ['seq'] } : {}),
    ...(opts.partitionByLine ? { partition_by: ['line'] } : {}),
  };
}

/** Route fields of a seqDataset: JSON body, `line` = topic level 2. */
export const SEQ_FIELDS = {
  ts: { json: 'ts', format: 'epoch_ms' },
  seq: { json: 'seq' },
  line: { topic_level: 2 },
  value: { json: 'value' },
};

/** The daemon's MQTT sessions: client ids `clientId-0` …, in shared-subscription group `share`. */
export interface MqttSessions {
  clientId: string;
  share: string;
  connections: number;
}

export interface FaultConfig {
  plant: string;
  stateDir: string;
  datasets: Record<string, unknown>[];
  brokerUrl: string;
  sessions: MqttSessions;
  routes: Record<string, unknown>[];
  /** The `landing` section. */
  landing: Record<string, unknown>;
  /** More settings of the MQTT source. */
  mqtt?: Record<string, unknown>;
}

/** Writes the daemon config (JSON is YAML): fast seals, compaction of 1-minute windows after 1 s. */
export async function writeFaultConfig(path: string, c: FaultConfig): Promise<void> {
  const config = {
    plant: c.plant,
    state_dir: c.stateDir,
    log_level: 'info',
    landing: c.landing,
    hot: { seal_interval_ms: 300, compaction_window_minutes: 1, compaction_grace_seconds: 1, compaction_interval_ms: 700 },
    datasets: c.datasets,
    // Any free port: several daemons may run at once in tests.
    api: { listen_port: 0 },
    sources: {
      mqtt: [
        {
          name: 'broker',
          url: c.brokerUrl,
          client_id: c.sessions.clientId,
          clean_session: false,
          share_group: c.sessions.share,
          connections: c.sessions.connections,
          reconnect_min_ms: 100,
          reconnect_max_ms: 1000,
          ...c.mqtt,
          routes: c.routes,
        },
      ],
    },
  };
  await writeFile(path, JSON.stringify(config, null, 2));
}

/** Spawns the daemon on `configPath`, hands it to `track` at once (for cleanup), waits until ready. */
export async function startFaultDaemon(configPath: string, env: NodeJS.ProcessEnv, track: (d: ChildDaemon) => void): Promise<ChildDaemon> {
  const d = spawnDaemon({ config: configPath, env });
  track(d);
  await d.waitReady(60_000);
  return d;
}

/** A SIGKILL, and the daemon really died of it. */
export async function killHard(d: ChildDaemon): Promise<void> {
  d.kill('SIGKILL');
  expect(await d.waitExit(15_000)).toEqual({ code: null, signal: 'SIGKILL' });
}

/**
 * Waits until every one of the daemon's sessions subscribed to `filter` (in its share
 * group), then starts a QoS 1 publisher of JSON seq messages with past event times.
 * Subscriptions must exist first: a QoS 1 message with no subscriber is acked by the
 * broker and dropped.
 */
export async function startSeqPublisher(opts: { broker: Mosquitto; sessions: MqttSessions; filter: string; topics: string[]; rate: number }): Promise<MqttPublisher> {
  const { clientId, share, connections } = opts.sessions;
  await waitForSubscriptions(
    opts.broker.logFile,
    Array.from({ length: connections }, (_, i) => `${clientId}-${i}`),
    `$share/${share}/${opts.filter}`,
  );
  const publisher = await createPublisher({
    url: opts.broker.url,
    topics: opts.topics,
    rate: opts.rate,
    window: 100,
    payload: (seq, ts) => JSON.stringify({ seq, ts: ts - EVENT_AGE_MS, value: (seq % 1000) / 10 }),
  });
  publisher.start();
  return publisher;
}

export type SeqCounts<N extends string> = Record<N, Map<number, number>>;

/** Resolves dataset configs by name, for readHotTier. */
export function resolveDatasets(datasets: Record<string, unknown>[]): Map<string, Dataset> {
  return new Map(datasets.map((d) => [d.name as string, resolveDataset(datasetSchema.parse(d))]));
}

/**
 * seq → how many rows hold it, per dataset: from its `seq` column, or for a dataset
 * without one, from the payload of its blob column (read back through the blob file).
 */
export function hotTierSeqs<N extends string>(stateDir: string, datasets: Map<string, Dataset>, names: readonly N[]): SeqCounts<N> {
  const out = {} as SeqCounts<N>;
  for (const name of names) {
    const dataset = datasets.get(name)!;
    const contents = readHotTier(stateDir, name, { dataset });
    const counts = new Map<number, number>();
    const seqCol = contents.columns.indexOf('seq');
    const blobCol = seqCol >= 0 ? -1 : contents.columns.indexOf(dataset.columns[dataset.blobColumn!]!.name);
    for (const row of contents.rows) {
      let seq: number;
      if (seqCol >= 0) seq = Number(row[seqCol]);
      else {
        const sha = row[blobCol] as string;
        seq = payloadSeq(readFileSync(join(stateDir, 'blobs', sha.slice(0, 2), sha)));
      }
      counts.set(seq, (counts.get(seq) ?? 0) + 1);
    }
    out[name] = counts;
  }
  return out;
}

/** The acked seqs, split by the dataset each one was routed to. */
export function expectedSeqs<N extends string>(acked: number[], names: readonly N[], datasetOfSeq: (seq: number) => N): Record<N, number[]> {
  const out = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<N, number[]>;
  for (const seq of acked) out[datasetOfSeq(seq)].push(seq);
  return out;
}

/** Polls the hot tier (up to 120 s) until it holds every expected seq. */
export async function waitForAllLanded<N extends string>(read: () => SeqCounts<N>, expected: Record<N, number[]>): Promise<void> {
  const names = Object.keys(expected) as N[];
  let last: SeqCounts<N> | undefined;
  await until(
    () => {
      last = read();
      return names.every((n) => missingOf(expected[n], last![n]).length === 0);
    },
    120_000,
    () =>
      `every acked seq in the hot tier; still missing: ${JSON.stringify(
        Object.fromEntries(names.map((n) => [n, last ? missingOf(expected[n], last[n]).slice(0, 20) : '?'])),
      )}`,
    1_000,
  );
}

/** Nothing expected is missing, and the `deduped` datasets hold each seq exactly once. */
export function expectAllAcked<N extends string>(final: SeqCounts<N>, expected: Record<N, number[]>, deduped: readonly N[]): void {
  for (const n of Object.keys(expected) as N[]) expect(missingOf(expected[n], final[n]), n).toEqual([]);
  for (const n of deduped) expect(duplicatesOf(final[n]), n).toEqual([]);
}

/** A stopped daemon's state directory is clean: hot_files is the truth, blobs match their table. */
export function expectCleanStateDir(stateDir: string): StateAudit {
  const audit = auditStateDir(stateDir);
  expect(audit.tempFiles).toEqual([]);
  expect(audit.unregisteredParquet).toEqual([]);
  expect(audit.missingParquet).toEqual([]);
  expect(audit.orphanBlobs).toEqual([]);
  expect(audit.missingBlobs).toEqual([]);
  return audit;
}
