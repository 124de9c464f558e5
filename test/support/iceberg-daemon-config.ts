// The child-daemon set-up the Iceberg end-to-end tests share: two MQTT datasets with
// explicit field ids (`sensors`, partitioned by line, a double value; `counters`, not
// partitioned, a long and a double), their routes on a Mosquitto broker, the daemon
// config (JSON is YAML) with fast seals and compaction, each test's own `tiering:` and
// `catalog:` sections, S3 store settings whose credentials are env references, the known
// rows a test publishes, and reading back from the tier map how many rows are committed.
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { S3Server } from '../services/s3-server.ts';
import type { Mosquitto } from '../services/mosquitto.ts';
import { waitForSubscriptions } from './failpoint.ts';

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

export const SENSORS_FIELD_IDS = { ts: 10, line: 11, sensor: 12, value: 13 } as const;
export const COUNTERS_FIELD_IDS = { ts: 20, machine: 21, count: 22, rate: 23 } as const;

export const ICEBERG_E2E_DATASETS = [
  {
    name: 'sensors',
    time_column: 'ts',
    time_field_id: SENSORS_FIELD_IDS.ts,
    columns: [
      { name: 'line', type: 'string', nullable: false, field_id: SENSORS_FIELD_IDS.line },
      { name: 'sensor', type: 'string', nullable: false, field_id: SENSORS_FIELD_IDS.sensor },
      { name: 'value', type: 'double', field_id: SENSORS_FIELD_IDS.value },
    ],
    partition_by: ['line'],
  },
  {
    name: 'counters',
    time_column: 'ts',
    time_field_id: COUNTERS_FIELD_IDS.ts,
    columns: [
      { name: 'machine', type: 'string', nullable: false, field_id: COUNTERS_FIELD_IDS.machine },
      { name: 'count', type: 'long', nullable: false, field_id: COUNTERS_FIELD_IDS.count },
      { name: 'rate', type: 'double', field_id: COUNTERS_FIELD_IDS.rate },
    ],
  },
];

/** Topic filters of the two routes (the broker log shows them subscribed). */
export const ICEBERG_E2E_FILTERS = ['e2e/sensors/+/+', 'e2e/counters/+'];

const ROUTES = [
  {
    filter: ICEBERG_E2E_FILTERS[0],
    dataset: 'sensors',
    fields: { ts: { json: 'ts', format: 'epoch_ms' }, line: { topic_level: 2 }, sensor: { topic_level: 3 }, value: { json: 'value' } },
  },
  {
    filter: ICEBERG_E2E_FILTERS[1],
    dataset: 'counters',
    fields: { ts: { json: 'ts', format: 'epoch_ms' }, machine: { topic_level: 2 }, count: { json: 'count' }, rate: { json: 'rate' } },
  },
];

export interface IcebergDaemonConfig {
  plant: string;
  agentId: string;
  stateDir: string;
  broker: Mosquitto;
  /** MQTT client id prefix and share group of the daemon's one persistent session. */
  clientId: string;
  /** The `tiering` section (warm, cold, retention, intervals). */
  tiering: Record<string, unknown>;
  /** The `catalog` section; omitted: the file-system catalog in the warm store. */
  catalog?: Record<string, unknown>;
}

/** Writes the daemon config to `path`. */
export async function writeIcebergDaemonConfig(path: string, c: IcebergDaemonConfig): Promise<void> {
  const config = {
    plant: c.plant,
    agent_id: c.agentId,
    state_dir: c.stateDir,
    log_level: 'info',
    api: { listen_port: 0 },
    hot: { seal_interval_ms: 200, compaction_window_minutes: 1, compaction_grace_seconds: 1, compaction_interval_ms: 300 },
    datasets: ICEBERG_E2E_DATASETS,
    sources: {
      mqtt: [
        {
          name: 'broker',
          url: c.broker.url,
          client_id: c.clientId,
          clean_session: false,
          share_group: c.clientId,
          connections: 1,
          reconnect_min_ms: 100,
          reconnect_max_ms: 1000,
          routes: ROUTES,
        },
      ],
    },
    tiering: c.tiering,
    ...(c.catalog ? { catalog: c.catalog } : {}),
  };
  await writeFile(path, JSON.stringify(config, null, 2));
}

/** Tiering settings that upload each compacted file at once and retry fast; `extra` overrides. */
export function fastTiering(extra: Record<string, unknown>): Record<string, unknown> {
  return { wait_for_hour_merge: false, scan_interval_ms: 200, eviction_interval_ms: 1000, retry_initial_ms: 100, retry_max_ms: 1000, ...extra };
}

/** An S3 store on the test server: the config (credentials as env references) and the env that fills them. */
export function s3StoreSettings(server: S3Server, bucket: string, prefix = 'plants'): { config: Record<string, unknown>; env: NodeJS.ProcessEnv } {
  return {
    config: {
      url: `s3://${bucket}/${prefix}`,
      endpoint: server.endpoint,
      region: server.region,
      force_path_style: true,
      credentials: { access_key_id: '${env:LAKESIDE_TEST_S3_KEY}', secret_access_key: '${env:LAKESIDE_TEST_S3_SECRET}' },
    },
    env: { LAKESIDE_TEST_S3_KEY: server.accessKeyId, LAKESIDE_TEST_S3_SECRET: server.secretAccessKey },
  };
}

/** A row as published, with the event time in ms; `key` identifies it in a multiset. */
export interface PublishedRow {
  dataset: 'sensors' | 'counters';
  topic: string;
  payload: Record<string, unknown>;
  key: string;
  /** Partition values the row belongs to: UTC day number and (sensors) the line. */
  day: number;
  line: string | null;
}

export const sensorKey = (ts: number, line: string, sensor: string, value: number): string => `${ts}|${line}|${sensor}|${value}`;
export const counterKey = (ts: number, machine: string, count: number, rate: number): string => `${ts}|${machine}|${count}|${rate}`;

/**
 * One round of known rows: for the minute two minutes before `nowMs` (a closed
 * compaction window), today, a day and two days back: 20 readings per line and sensor
 * (2 × 2) and 10 counts per machine (3). Values carry the round so rounds never collide.
 */
export function roundRows(round: number, nowMs: number): PublishedRow[] {
  const rows: PublishedRow[] = [];
  for (const daysBack of [0, 1, 2]) {
    const minute = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS - 2 * MINUTE_MS - daysBack * DAY_MS;
    for (const [li, line] of ['l1', 'l2'].entries()) {
      for (const [si, sensor] of ['temp', 'pressure'].entries()) {
        for (let i = 0; i < 20; i++) {
          const ts = minute + i * 1000 + li * 10 + si;
          const value = round * 1000 + i * 0.25;
          rows.push({ dataset: 'sensors', topic: `e2e/sensors/${line}/${sensor}`, payload: { ts, value }, key: sensorKey(ts, line, sensor, value), day: Math.floor(ts / DAY_MS), line });
        }
      }
    }
    for (const [mi, machine] of ['m1', 'm2', 'm3'].entries()) {
      for (let i = 0; i < 10; i++) {
        const ts = minute + 500 + i * 2000 + mi;
        const count = round * 100 + i;
        const rate = i / 8;
        rows.push({ dataset: 'counters', topic: `e2e/counters/${machine}`, payload: { ts, count, rate }, key: counterKey(ts, machine, count, rate), day: Math.floor(ts / DAY_MS), line: null });
      }
    }
  }
  return rows;
}

/** Waits until the daemon's session subscribed to both routes, then publishes `rows` at QoS 1. */
export async function publishRows(broker: Mosquitto, clientId: string, rows: PublishedRow[]): Promise<void> {
  for (const filter of ICEBERG_E2E_FILTERS) await waitForSubscriptions(broker.logFile, [`${clientId}-0`], `$share/${clientId}/${filter}`);
  const client = await mqtt.connectAsync(broker.url, { clientId: `${clientId}-publisher-${Date.now()}` });
  try {
    await Promise.all(rows.map((r) => client.publishAsync(r.topic, JSON.stringify(r.payload), { qos: 1 })));
  } finally {
    await client.endAsync();
  }
}

/**
 * Rows per dataset in L1 files whose tier-map state is one of `states`, and the number
 * of tier-map data rows in any other state (read without disturbing the daemon).
 */
export function tierProgress(stateDir: string, states: string[]): { rows: Record<string, number>; otherFiles: number } {
  const path = join(stateDir, 'landing.db');
  if (!existsSync(path)) return { rows: {}, otherFiles: 0 };
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get()) return { rows: {}, otherFiles: 0 };
    const marks = states.map(() => '?').join(', ');
    const counted = db
      .prepare(`SELECT h.dataset AS dataset, sum(h.record_count) AS n FROM tier_files t JOIN hot_files h ON h.path = t.local_path WHERE t.kind = 'data' AND t.state IN (${marks}) GROUP BY h.dataset`)
      .all(...states) as { dataset: string; n: number }[];
    const otherFiles = db.prepare(`SELECT count(*) FROM tier_files WHERE kind = 'data' AND state NOT IN (${marks})`).pluck().get(...states) as number;
    return { rows: Object.fromEntries(counted.map((r) => [r.dataset, r.n])), otherFiles };
  } finally {
    db.close();
  }
}

/** Expected row count per dataset of `rows`. */
export function countsByDataset(rows: PublishedRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[r.dataset] = (out[r.dataset] ?? 0) + 1;
  return out;
}

/** The multiset key of a row PyIceberg returned (`ts` as ISO 8601). */
export function scannedKey(dataset: string, row: Record<string, unknown>): string {
  const ts = Date.parse(String(row.ts));
  return dataset === 'sensors'
    ? sensorKey(ts, String(row.line), String(row.sensor), Number(row.value))
    : counterKey(ts, String(row.machine), Number(row.count), Number(row.rate));
}
