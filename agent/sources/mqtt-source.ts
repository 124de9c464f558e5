/**
 * MQTT source (mqtt.js): a pool of shared-subscription connections, QoS 1, persistent
 * sessions, reconnect with backoff.
 *
 * The promise: **PUBACK only after the landing commit that holds the message.**
 * mqtt.js sends the PUBACK of a QoS 1 message when our `handleMessage` calls back, and
 * it handles one message at a time per connection, so throughput comes from several
 * connections (`$share/<group>/<filter>`) whose waiting messages share one group
 * commit. A message that is not acknowledged (crash, stop, disk full) is redelivered
 * by the broker from the persistent session. While the landing log is blocked or the
 * source is paused, connections simply hold their message: the broker queues the rest.
 */
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { MqttSourceConfig } from '../../config/schema.ts';
import { ErrorCode, type Logger } from '../log.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { LandingLog } from '../landing/landing-log.ts';
import type { LandingItem } from '../landing/types.ts';
import type { MqttMapper } from '../mapping/mapper.ts';
import { PauseGate } from './pause-gate.ts';

export interface MqttSourceOptions {
  config: MqttSourceConfig;
  mapper: MqttMapper;
  landing: LandingLog;
  blobs: BlobStore;
  logger: Logger;
  /** Resolved secret, never from the YAML itself. */
  password?: string;
  /**
   * `after_commit` (always, in production) or `on_receipt`, which breaks the durability
   * promise and exists only as the benchmark's baseline. Not a config option.
   */
  ackMode?: 'after_commit' | 'on_receipt';
  /** Instrumentation hook: called when a message is acknowledged. */
  onAck?: (packet: IPublishPacket) => void;
}

export interface MqttSourceStats {
  received: number;
  acked: number;
  quarantined: number;
  duplicates: number;
  connected: number;
}

export class MqttSource implements Component {
  readonly name: string;
  readonly stats: MqttSourceStats = { received: 0, acked: 0, quarantined: 0, duplicates: 0, connected: 0 };
  private clients: MqttClient[] = [];
  private inFlight = new Set<Promise<void>>();
  private stopping = false;
  private readonly gate = new PauseGate();
  private readonly options: MqttSourceOptions;
  private readonly log: Logger;

  constructor(options: MqttSourceOptions) {
    this.options = options;
    this.name = `mqtt:${options.config.name}`;
    this.log = options.logger.child({ source: this.name });
  }

  /** Stops acknowledging (and so receiving) until `resume()`; used at the critical disk watermark. */
  pause(): void {
    this.gate.pause();
  }

  resume(): void {
    this.gate.resume();
  }

  async start(): Promise<void> {
    const { config } = this.options;
    const base = await this.clientOptions();
    const filters = config.routes.map((route) => (config.share_group ? `$share/${config.share_group}/${route.filter}` : route.filter));
    const connected: Promise<void>[] = [];
    for (let index = 0; index < config.connections; index++) {
      const client = mqtt.connect(config.url, { ...base, clientId: `${config.client_id}-${index}` });
      client.handleMessage = (packet, done) => this.onMessage(packet, done);
      let delayMs = config.reconnect_min_ms;
      client.on('connect', (connack) => {
        this.stats.connected++;
        delayMs = config.reconnect_min_ms;
        client.options.reconnectPeriod = delayMs;
        // Subscribing again is harmless with a present session and needed without one.
        client.subscribe(filters, { qos: 1 }, (error) => {
          if (error) this.log.error({ code: ErrorCode.mqttConnect, err: error.message }, 'subscribe failed');
        });
        this.log.info({ connection: index, session_present: connack.sessionPresent }, 'mqtt connected');
      });
      client.on('close', () => {
        if (client.connected === false && this.stats.connected > 0) this.stats.connected--;
        // Exponential backoff between reconnects, capped.
        delayMs = Math.min(config.reconnect_max_ms, delayMs * 2);
        client.options.reconnectPeriod = delayMs;
      });
      client.on('error', (error) => {
        this.log.warn({ code: ErrorCode.mqttConnect, connection: index, err: error.message }, 'mqtt connection error');
      });
      this.clients.push(client);
      connected.push(new Promise((resolve) => client.once('connect', () => resolve())));
    }
    // Ready once at least one connection is up; the rest keep trying in the background.
    await Promise.race([Promise.any(connected), this.timeout(config.connect_timeout_ms)]);
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    this.gate.resume();
    // Messages already handed to the landing log commit and get their PUBACK; new ones
    // are left unacknowledged for the broker to redeliver.
    await Promise.allSettled([...this.inFlight]);
    await Promise.all(this.clients.map((client) => this.disconnect(client)));
    this.clients = [];
  });

  /**
   * Sends DISCONNECT after the PUBACKs already written. mqtt.js then waits for the
   * socket to close, which never happens while a message we will not acknowledge holds
   * its work loop; the PUBACKs and DISCONNECT are in the socket by then, so after a
   * short grace the socket is destroyed.
   */
  private async disconnect(client: MqttClient): Promise<void> {
    const graceful = new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([graceful, grace]);
    client.stream?.destroy();
  }

  private onMessage(packet: IPublishPacket, done: (error?: Error) => void): void {
    if (this.stopping) return; // never acked: redelivered after restart
    this.stats.received++;
    if (this.options.ackMode === 'on_receipt') this.acknowledge(packet, done);
    const work = this.land(packet).then(
      (acknowledge) => {
        if (acknowledge && this.options.ackMode !== 'on_receipt') this.acknowledge(packet, done);
      },
      (error: Error) => {
        // Not committed, so not acknowledged: the broker redelivers it.
        this.log.warn({ err: error.message, topic: packet.topic }, 'message not landed; left unacknowledged');
      },
    );
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private acknowledge(packet: IPublishPacket, done: (error?: Error) => void): void {
    this.stats.acked++;
    done();
    this.options.onAck?.(packet);
  }

  /** Lands one message; resolves true when it may be acknowledged. */
  private async land(packet: IPublishPacket): Promise<boolean> {
    await this.gate.wait();
    if (this.stopping) return false;
    const receivedAtUs = Date.now() * 1000;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const outcome = this.options.mapper.map(packet.topic, payload, receivedAtUs);
    const item: LandingItem = { rows: [], quarantine: [], blobs: [] };
    if (outcome.kind === 'row') {
      if (outcome.blobColumn !== null) {
        const blob = await this.options.blobs.putBytes(payload, outcome.contentType);
        outcome.row.values[outcome.blobColumn] = blob.sha256;
        item.blobs.push(blob);
      }
      item.rows.push(outcome.row);
    } else if (outcome.kind === 'quarantine') {
      item.quarantine.push(outcome.entry);
      this.stats.quarantined++;
    } else {
      // Overlapping subscriptions can deliver a topic no route takes: keep it, with the reason.
      item.quarantine.push({
        source: this.options.config.name,
        coordinates: JSON.stringify({ topic: packet.topic }),
        dataset: null,
        reasonCode: 'unrouted',
        reason: `no route matches topic ${packet.topic}`,
        payload: payload.subarray(0, 4096),
        payloadBytes: payload.byteLength,
        receivedAtUs,
      });
      this.stats.quarantined++;
    }
    const result = await this.options.landing.append(item);
    this.stats.duplicates += result.duplicates;
    return true;
  }

  private async clientOptions(): Promise<IClientOptions> {
    const { config, password } = this.options;
    const options: IClientOptions = {
      protocolVersion: config.protocol_version,
      clean: config.clean_session,
      keepalive: config.keepalive_seconds,
      reconnectPeriod: config.reconnect_min_ms,
      connectTimeout: config.connect_timeout_ms,
      resubscribe: false,
      // Our own acks decide when the broker may forget a message.
      manualConnect: false,
    };
    if (config.protocol_version === 5) {
      options.properties = { sessionExpiryInterval: config.clean_session ? 0 : config.session_expiry_seconds };
    }
    if (config.username !== undefined) options.username = config.username;
    if (password !== undefined) options.password = password;
    if (config.tls) {
      const tls = config.tls;
      if (tls.ca_file) options.ca = await readFile(tls.ca_file);
      if (tls.cert_file) options.cert = await readFile(tls.cert_file);
      if (tls.key_file) options.key = await readFile(tls.key_file);
      options.rejectUnauthorized = tls.reject_unauthorized;
    }
    return options;
  }

  private timeout(ms: number): Promise<never> {
    return new Promise((_, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no connection to ${this.options.config.url} within ${ms} ms`)),
        ms,
      );
      timer.unref();
    });
  }
}
