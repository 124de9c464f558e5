// Malformed messages through a real broker: each is quarantined with its reason, its
// PUBACK still goes out (it is durable, in the quarantine table), and the good messages
// around it keep landing. Run over MQTT 5 and 3.1.1, both with shared subscriptions.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../config/loader.ts';
import { Daemon } from '../../agent/daemon.ts';
import { silentLogger } from '../../agent/log.ts';
import type { MqttSource } from '../../agent/sources/mqtt-source.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { readHotTier } from '../support/hot-tier-reader.ts';
import { waitFor } from '../support/wait-for.ts';

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});

function config(stateDir: string, protocol: 4 | 5): string {
  return `
plant: qtest
api: { listen_port: 0 }
state_dir: ${stateDir}
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: seq, type: long, nullable: false }
      - { name: value, type: double, nullable: false }
    dedupe_key: [seq]
sources:
  mqtt:
    - name: plant_broker
      url: ${broker.url}
      protocol_version: ${protocol}
      client_id: lakeside-q${protocol}
      share_group: q${protocol}
      connections: 2
      max_payload_bytes: 2048
      routes:
        - filter: q${protocol}/line/+/reading
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 2 }
            seq: { json: seq }
            value: { json: value }
`;
}

describe.each([5, 4] as const)('MQTT %i quarantine', (protocol) => {
  it('quarantines each bad message with its reason and keeps the good ones flowing', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), `lakeside-q${protocol}-`));
    const daemon = new Daemon(parseConfigText(config(stateDir, protocol), 'test.yaml'), silentLogger());
    await daemon.start();
    const source = daemon.sources[0] as MqttSource;
    await waitFor(() => source.stats.connected === 2, 'both connections');
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: protocol, clientId: `pub-${protocol}` });
    const topic = `q${protocol}/line/coat3/reading`;
    const now = Date.now();
    const messages: [string, Buffer][] = [
      ['good', Buffer.from(JSON.stringify({ ts: now, seq: 1, value: 41.5 }))],
      ['malformed_json', Buffer.from('{"ts": 1, "seq": ')],
      ['payload_too_large', Buffer.from(JSON.stringify({ ts: now, seq: 2, value: 1, pad: 'x'.repeat(4000) }))],
      ['invalid_utf8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
      ['wrong_type', Buffer.from(JSON.stringify({ ts: now, seq: 3, value: 'high' }))],
      ['time_out_of_bounds', Buffer.from(JSON.stringify({ ts: now + 3_600_000, seq: 4, value: 1 }))],
      ['not_an_object', Buffer.from('[1,2,3]')],
      ['missing_field', Buffer.from(JSON.stringify({ ts: now, value: 2 }))],
      ['good', Buffer.from(JSON.stringify({ ts: now, seq: 5, value: 42.5 }))],
    ];
    for (const [, payload] of messages) await publisher.publishAsync(topic, payload, { qos: 1 });
    await waitFor(() => source.stats.acked >= messages.length, () => `all ${messages.length} messages acked (acked ${source.stats.acked})`);
    await publisher.endAsync();
    await daemon.stop();

    const db = new Database(join(stateDir, 'landing.db'), { readonly: true });
    const reasons = (db.prepare('SELECT reason_code, reason, payload_bytes FROM quarantine ORDER BY id').all() as { reason_code: string; reason: string; payload_bytes: number }[]);
    db.close();
    const expected = messages.filter(([kind]) => kind !== 'good').map(([kind]) => kind);
    expect(reasons.map((r) => r.reason_code).sort()).toEqual([...expected].sort());
    expect(reasons.find((r) => r.reason_code === 'wrong_type')!.reason).toMatch(/value/);
    expect(reasons.find((r) => r.reason_code === 'payload_too_large')!.payload_bytes).toBeGreaterThan(2048);
    const rows = readHotTier(stateDir, 'readings').rows;
    const seqColumn = 2;
    expect(rows.map((r) => r[seqColumn]).sort()).toEqual([1, 5]);
    await rm(stateDir, { recursive: true, force: true });
  });
});
