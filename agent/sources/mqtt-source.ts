/**
 * MQTT source (mqtt.js): a pool of shared-subscription connections, QoS 1, persistent
 * sessions, reconnect with backoff.
 *
 * The promise: **PUBACK only after the landing commit that holds the message.**
 * mqtt.js handles one message at a time per connection and sends the PUBACK when our
 * handler calls back; the handler calls back at once and the PUBACK is parked in the
 * connection's `AckWindow` until the commit is durable, in arrival order. So one
 * connection keeps many messages in one group commit, while the window bounds how many
 * wait (MQTT 5 `receiveMaximum` tells the broker the same bound). A message that is
 * not acknowledged (crash, stop, disk full) is redelivered by the broker from the
 * persistent session. QoS 2 messages take the slow path: their handler calls back
 * only after the commit.
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
import { AckWindow } from './mqtt-ack-window.ts';
import { PauseGate } from './pause-gate.ts';

const LANDED_NOTHING = Promise.resolve(false);
const ignoreLog = (): void => {};

/** DEBUG=mqttjs* (the `debug` package's switch) keeps mqtt.js's own logging. */
function mqttDebugRequested(): boolean {
  return /mqttjs|\*/.test(process.env.DEBUG ?? '');
}

/** The private mqtt.js method every outgoing packet goes through; wrapped to park PUBACKs. */
type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: () => void, ...rest: unknown[]) => void;

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
      this.attachAckWindow(client);
      let delayMs = config.reconnect_min_ms;
      let up = false;
      client.on('connect', (connack) => {
        if (!up) this.stats.connected++;
        up = true;
        delayMs = config.reconnect_min_ms;
        client.options.reconnectPeriod = delayMs;
        // Subscribing again is harmless with a present session and needed without one.
        client.subscribe(filters, { qos: 1 }, (error) => {
          if (error) this.log.error({ code: ErrorCode.mqttConnect, err: error.message }, 'subscribe failed');
        });
        this.log.info({ connection: index, session_present: connack.sessionPresent }, 'mqtt connected');
      });
      client.on('close', () => {
        // Only a connection that was up counts down; failed attempts close too.
        if (up) this.stats.connected--;
        up = false;
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
    // Ready once one connection is up, or after connect_timeout_ms with a warning: a
    // broker that is down at start is an outage like any other, not a reason to keep
    // the other sources down. The connections keep retrying in the background.
    const up = await Promise.race([Promise.any(connected).then(() => true), this.delay(config.connect_timeout_ms)]);
    if (!up) {
      this.log.warn(
        { code: ErrorCode.mqttConnect, url: config.url, waited_ms: config.connect_timeout_ms },
        `no connection to ${config.url} yet; starting anyway and retrying in the background`,
      );
    }
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

  /** Gives the client an ack window and routes its messages and PUBACKs through it. */
  private attachAckWindow(client: MqttClient): void {
    const { config } = this.options;
    const window = new AckWindow({ maxMessages: config.max_unacked_per_connection, maxBytes: config.max_unacked_bytes_per_connection });
    const parked = new Map<number, ReturnType<AckWindow['add']>>();
    const internals = client as unknown as { _sendPacket: SendPacket };
    const send = internals._sendPacket.bind(client);
    internals._sendPacket = (packet, cb, ...rest) => {
      const entry = packet.cmd === 'puback' && packet.messageId !== undefined ? parked.get(packet.messageId) : undefined;
      if (!entry) return send(packet, cb, ...rest);
      parked.delete(packet.messageId!);
      window.park(entry, () => send(packet));
      cb?.(); // mqtt.js moves on to the next message; the PUBACK waits in the window
    };
    client.on('close', () => {
      parked.clear();
      window.reset();
    });
    client.handleMessage = (packet, done) => {
      if (this.stopping) return; // never acked: redelivered after restart
      this.stats.received++;
      if (this.options.ackMode === 'on_receipt' || packet.qos !== 1 || packet.messageId === undefined) {
        this.landThenCallBack(packet, done);
        return;
      }
      const entry = window.add(packet.payload.length);
      const landing = this.land(packet).then(
        (ok) => {
          if (!ok) return window.failed(entry);
          this.stats.acked++;
          this.options.onAck?.(packet);
          window.landed(entry);
        },
        (error: Error) => {
          this.log.warn({ err: error.message, topic: packet.topic }, 'message not landed; left unacknowledged');
          window.failed(entry);
        },
      );
      this.track(landing);
      window.whenRoom(() => {
        parked.set(packet.messageId!, entry);
        done();
      });
    };
  }

  /** QoS 0 and 2, and the benchmark's ack-on-receipt baseline: call back after landing (or at once for the baseline). */
  private landThenCallBack(packet: IPublishPacket, done: (error?: Error) => void): void {
    const onReceipt = this.options.ackMode === 'on_receipt';
    if (onReceipt) {
      this.stats.acked++;
      done();
      this.options.onAck?.(packet);
    }
    const landing = this.land(packet).then(
      (ok) => {
        if (ok && !onReceipt) {
          this.stats.acked++;
          done();
          this.options.onAck?.(packet);
        }
      },
      (error: Error) => this.log.warn({ err: error.message, topic: packet.topic }, 'message not landed; left unacknowledged'),
    );
    this.track(landing);
  }

  /** Keeps `work` until it settles, so a stop can wait for it (one promise, not `finally`'s two). */
  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.then(
      () => this.inFlight.delete(work),
      (error: unknown) => {
        this.inFlight.delete(work);
        throw error;
      },
    );
  }

  /**
   * Lands one message; resolves true when it may be acknowledged. Per message at 20k
   * msg/s: no async function (each `await` of one costs a suspended frame and promises,
   * ≈ 1.8 KB of garbage a message measured), the mapping runs at once when the gate is open.
   */
  private land(packet: IPublishPacket): Promise<boolean> {
    if (this.gate.isPaused) return this.gate.wait().then(() => this.landNow(packet));
    return this.landNow(packet);
  }

  private landNow(packet: IPublishPacket): Promise<boolean> {
    try {
      if (this.stopping) return LANDED_NOTHING;
      const item = this.itemFor(packet);
      return item instanceof Promise ? item.then((ready) => this.append(ready)) : this.append(item);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private append(item: LandingItem): Promise<boolean> {
    return this.options.landing.append(item).then((result) => {
      this.stats.duplicates += result.duplicates;
      return true;
    });
  }

  /** The landing item for a message: at once, or once its payload is stored as a blob. */
  private itemFor(packet: IPublishPacket): LandingItem | Promise<LandingItem> {
    const receivedAtUs = Date.now() * 1000;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const outcome = this.options.mapper.map(packet.topic, payload, receivedAtUs);
    const item: LandingItem = { rows: [], quarantine: [], blobs: [], source: this.name };
    if (outcome.kind === 'row') {
      item.rows.push(outcome.row);
      const blobColumn = outcome.blobColumn;
      if (blobColumn !== null) {
        return this.options.blobs.putBytes(payload, outcome.contentType).then((blob) => {
          outcome.row.values[blobColumn] = blob.sha256;
          item.blobs.push(blob);
          return item;
        });
      }
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
    return item;
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
      // mqtt.js logs through `debug` several times a message; even switched off, each
      // call allocates its arguments (≈ 20 % of the ingest thread's garbage at 20k msg/s).
      ...(mqttDebugRequested() ? {} : { log: ignoreLog }),
    };
    if (config.protocol_version === 5) {
      options.properties = {
        sessionExpiryInterval: config.clean_session ? 0 : config.session_expiry_seconds,
        // The broker keeps at most this many unacknowledged messages in flight to us.
        receiveMaximum: Math.min(65535, config.max_unacked_per_connection),
      };
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

  private delay(ms: number): Promise<false> {
    return new Promise((resolve) => setTimeout(() => resolve(false), ms).unref());
  }
}
