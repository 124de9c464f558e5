// On-site reads against a running daemon fed by a real Mosquitto: an acknowledged
// message is at once in /v1/latest and soon in SQL; a runaway query is interrupted by
// its timeout while ingestion carries on; the API wants its bearer token.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../config/loader.ts';
import { Daemon } from '../../agent/daemon.ts';
import { silentLogger } from '../../agent/log.ts';
import type { MqttSource } from '../../agent/sources/mqtt-source.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { waitFor } from '../support/wait-for.ts';

const TOKEN = 'read-token-for-tests-0123456789';
let broker: Mosquitto;
let daemon: Daemon;
let stateDir: string;
let api: string;

beforeAll(async () => {
  broker = await startMosquitto();
  stateDir = await mkdtemp(join(tmpdir(), 'lakeside-reads-'));
  const text = `
plant: readtest
state_dir: ${stateDir}
hot: { seal_interval_ms: 500 }
api:
  listen_port: 0
  tokens:
    - { name: ml, role: read, token: "\${env:READ_TOKEN}" }
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: seq, type: long, nullable: false }
      - { name: value, type: double }
    stream_key: [line, sensor]
    dedupe_key: [seq]
sources:
  mqtt:
    - name: plant_broker
      url: ${broker.url}
      client_id: lakeside-reads
      share_group: reads
      connections: 2
      routes:
        - filter: reads/line/+/sensor/+
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 2 }
            sensor: { topic_level: 4 }
            seq: { json: seq }
            value: { json: value }
`;
  daemon = new Daemon(parseConfigText(text, 'reads.yaml', { env: { READ_TOKEN: TOKEN } }), silentLogger());
  await daemon.start();
  api = daemon.reads.url!;
  await waitFor(() => (daemon.sources[0] as MqttSource).stats.connected === 2, 'connections');
});

afterAll(async () => {
  await daemon?.stop();
  await broker?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };
interface ApiErrorBody {
  error: { code: string; message: string };
}

async function sql(query: string, timeoutMs?: number): Promise<Response> {
  return fetch(`${api}/v1/query`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ sql: query, ...(timeoutMs ? { timeout_ms: timeoutMs } : {}) }),
  });
}

describe('on-site reads', () => {
  it('shows an acknowledged message in /v1/latest at once and in SQL soon after', async () => {
    const source = daemon.sources[0] as MqttSource;
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const before = source.stats.acked;
    const now = Date.now();
    await publisher.publishAsync('reads/line/coat3/sensor/humidity', JSON.stringify({ ts: now, seq: 1, value: 41.5 }), { qos: 1 });
    await waitFor(() => source.stats.acked > before, 'the PUBACK');
    // Latest values are updated at commit, before the PUBACK leaves.
    const latest = (await (await fetch(`${api}/v1/latest?dataset=readings&line=coat3&sensor=humidity`, { headers: auth })).json()) as {
      streams: { values: Record<string, unknown>; time_us: number }[];
    };
    expect(latest.streams).toHaveLength(1);
    expect(latest.streams[0]!.values).toMatchObject({ seq: 1, value: 41.5 });
    expect(latest.streams[0]!.time_us).toBe(now * 1000);
    await waitFor(async () => {
      const body = (await (await sql('SELECT seq, value FROM readings WHERE seq = 1')).json()) as { rows?: unknown[][] };
      return body.rows?.length === 1;
    }, 'the row in SQL');
    await publisher.endAsync();
  });

  it('interrupts a runaway query at its timeout while ingestion carries on', async () => {
    const source = daemon.sources[0] as MqttSource;
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    let seq = 100;
    const ackedBefore = source.stats.acked;
    const feeding = setInterval(() => {
      void publisher.publishAsync('reads/line/coat3/sensor/temperature', JSON.stringify({ ts: Date.now(), seq: seq++, value: 80 }), { qos: 1 });
    }, 5);
    const response = await sql('SELECT count(*) FROM range(100000) a, range(1000000000) b', 1500);
    const ackedDuringBomb = source.stats.acked - ackedBefore;
    clearInterval(feeding);
    expect(response.status).toBe(504);
    expect(((await response.json()) as ApiErrorBody).error.code).toBe('QUERY_TIMEOUT');
    expect(ackedDuringBomb).toBeGreaterThan(0);
    expect((await sql('SELECT 1 AS ok')).status).toBe(200);
    await publisher.endAsync();
  });

  it('refuses requests without the token and sandbox escapes with a clear code', async () => {
    expect((await fetch(`${api}/v1/datasets`)).status).toBe(401);
    expect((await fetch(`${api}/v1/datasets`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${api}/v1/config`, { headers: auth })).status).toBe(403);
    const escape = await sql("SELECT * FROM read_csv('/etc/passwd')");
    expect(escape.status).toBe(400);
    expect(((await escape.json()) as ApiErrorBody).error.code).toBe('QUERY_NOT_ALLOWED');
  });
});
