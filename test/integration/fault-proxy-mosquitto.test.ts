// The TCP fault proxy (test/support/tcp-fault-proxy.ts) in front of a real Mosquitto:
// an mqtt.js client with a persistent session connects through the proxy, a reset
// fault kills its connection and every reconnect attempt, and once the fault is lifted
// the client reconnects on its own and receives the QoS 1 message published directly
// to the broker while it was cut off. A blackhole then stalls the connection without
// closing it; the client's keepalive notices, and it reconnects after the heal.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';
import { waitFor } from '../support/wait-for.ts';

const TOPIC = 'fault-proxy/readings';

let broker: Mosquitto;
let proxy: FaultProxy;
let publisher: MqttClient;

beforeAll(async () => {
  broker = await startMosquitto();
  proxy = await startFaultProxy({ target: { host: broker.host, port: broker.port } });
  publisher = await mqtt.connectAsync(broker.url, { clientId: `fp-pub-${process.pid}`, reconnectPeriod: 0 });
});

afterAll(async () => {
  await publisher?.endAsync(true);
  await proxy?.close();
  await broker?.stop();
});

describe('fault proxy in front of Mosquitto', () => {
  it('an mqtt.js client reconnects after a reset fault and gets what it missed', async () => {
    const received: string[] = [];
    let connects = 0;
    let closes = 0;
    const client = await mqtt.connectAsync(proxy.url('mqtt'), {
      clientId: `fp-sub-${process.pid}`,
      protocolVersion: 4,
      clean: false, // persistent session: the broker queues QoS 1 messages while we are away
      reconnectPeriod: 100,
      connectTimeout: 2_000,
      keepalive: 1,
    });
    try {
      connects = 1;
      client.on('connect', () => connects++);
      client.on('close', () => closes++);
      client.on('message', (_topic, payload) => received.push(payload.toString()));
      await client.subscribeAsync(TOPIC, { qos: 1 });
      await publisher.publishAsync(TOPIC, 'before', { qos: 1 });
      await waitFor(() => received.includes('before'), 'the message before the fault');

      proxy.setFault({ kind: 'reset' });
      const resetsBefore = proxy.stats().resets;
      // The open connection and at least one reconnect attempt were reset.
      await waitFor(() => closes >= 2 && proxy.stats().resets >= resetsBefore + 1, 'the client to lose its connection and retry');
      expect(client.connected).toBe(false);
      expect(connects).toBe(1);
      await publisher.publishAsync(TOPIC, 'during-reset', { qos: 1 });

      proxy.setFault({ kind: 'pass' });
      await waitFor(() => connects === 2, 'the client to reconnect');
      await waitFor(() => received.includes('during-reset'), 'the message queued during the outage');

      // A partition closes nothing: keepalive has to notice, then the client retries.
      proxy.setFault({ kind: 'blackhole' });
      const closesBefore = closes;
      await waitFor(() => closes > closesBefore, 'the keepalive to give up on the stalled connection');
      await publisher.publishAsync(TOPIC, 'during-blackhole', { qos: 1 });
      expect(received).not.toContain('during-blackhole');
      proxy.setFault({ kind: 'pass' });
      await waitFor(() => received.includes('during-blackhole'), 'the message queued during the partition');
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync(true);
    }
  });
});
