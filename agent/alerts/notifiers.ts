/**
 * Where alerts go besides the log, the metrics and `lakeside status`: an MQTT topic
 * and a webhook, both optional (config `alerts.mqtt`, `alerts.webhook`).
 *
 * Invariants: `notify()` returns at once and never throws; delivery happens in the
 * background, so a slow or dead receiver never holds up ingestion or alert checks.
 * The webhook keeps at most QUEUE_LIMIT events waiting (the oldest are dropped and
 * counted), POSTs one at a time with a timeout, and retries with jittered backoff;
 * the MQTT client publishes at QoS 1 and mqtt.js queues while it reconnects. Every
 * outcome is counted (`lakeside_alert_deliveries_total{channel,outcome}`).
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { AlertsConfig } from '../../config/schema.ts';
import { ErrorCode, type Logger } from '../log.ts';
import { backoffDelay, sleep } from '../retry.ts';
import { mqttTlsOptions } from '../sources/mqtt-tls.ts';

export interface AlertEvent {
  event: 'opened' | 'cleared';
  plant: string;
  agent_id: string;
  at: string;
  alert: Record<string, unknown>;
}

export type DeliveryOutcome = 'sent' | 'failed' | 'dropped';

export interface AlertNotifier {
  readonly channel: string;
  start(): Promise<void>;
  notify(event: AlertEvent): void;
  stop(): Promise<void>;
}

export type OnDelivery = (channel: string, outcome: DeliveryOutcome) => void;

const QUEUE_LIMIT = 1000;

/** What every notifier keeps: its config section, the logger, the delivery counter. */
abstract class Notifier<C> {
  protected readonly config: C;
  protected readonly logger: Logger;
  protected readonly onDelivery: OnDelivery;

  constructor(config: C, logger: Logger, onDelivery: OnDelivery) {
    this.config = config;
    this.logger = logger;
    this.onDelivery = onDelivery;
  }
}

export class WebhookNotifier extends Notifier<NonNullable<AlertsConfig['webhook']>> implements AlertNotifier {
  readonly channel = 'webhook';
  private readonly queue: AlertEvent[] = [];
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();

  async start(): Promise<void> {}

  notify(event: AlertEvent): void {
    if (this.abort.signal.aborted) return;
    if (this.queue.length >= QUEUE_LIMIT) {
      this.queue.shift();
      this.onDelivery(this.channel, 'dropped');
    }
    this.queue.push(event);
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  /** Gives the event being sent one timeout to finish, then gives up on the rest. */
  async stop(): Promise<void> {
    const running = this.running;
    if (running) await Promise.race([running, sleep(this.config.timeout_ms)]);
    this.abort.abort();
    for (const _ of this.queue.splice(0)) this.onDelivery(this.channel, 'dropped');
    await running;
  }

  private async drain(): Promise<void> {
    for (let event = this.queue.shift(); event && !this.abort.signal.aborted; event = this.queue.shift()) {
      this.onDelivery(this.channel, (await this.deliver(event)) ? 'sent' : 'failed');
    }
  }

  private async deliver(event: AlertEvent): Promise<boolean> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'lakeside' };
    if (this.config.bearer_token) headers.authorization = `Bearer ${this.config.bearer_token}`;
    let problem = '';
    for (let attempt = 0; attempt <= this.config.retries; attempt++) {
      if (attempt > 0) await sleep(backoffDelay(attempt - 1, { initialMs: this.config.retry_initial_ms, maxMs: 30_000 }), this.abort.signal);
      if (this.abort.signal.aborted) break;
      try {
        const response = await fetch(this.config.url, {
          method: 'POST',
          headers,
          body: JSON.stringify(event),
          signal: AbortSignal.any([AbortSignal.timeout(this.config.timeout_ms), this.abort.signal]),
        });
        await response.body?.cancel();
        if (response.ok) return true;
        problem = `HTTP ${response.status}`;
        // A 4xx other than 408/429 will not get better by retrying.
        if (response.status < 500 && response.status !== 408 && response.status !== 429) break;
      } catch (error) {
        problem = (error as Error).name === 'TimeoutError' ? `no answer within ${this.config.timeout_ms} ms` : (error as Error).message;
      }
    }
    this.logger.warn({ code: ErrorCode.alertDeliveryFailed, channel: this.channel, alert: event.alert.id, err: problem }, 'alert webhook delivery failed');
    return false;
  }
}

export class MqttAlertNotifier extends Notifier<NonNullable<AlertsConfig['mqtt']>> implements AlertNotifier {
  readonly channel = 'mqtt';
  private client: MqttClient | null = null;

  /** Connects in the background: an alert broker that is down must not keep the agent from starting. */
  async start(): Promise<void> {
    const { url, client_id, username, password, tls } = this.config;
    this.client = mqtt.connect(url, {
      ...(await mqttTlsOptions(tls)),
      clientId: client_id,
      reconnectPeriod: 5000,
      connectTimeout: 10_000,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
    });
    this.client.on('error', (error) => this.logger.warn({ code: ErrorCode.alertDeliveryFailed, channel: this.channel, err: error.message }, 'alert MQTT connection error'));
  }

  notify(event: AlertEvent): void {
    const client = this.client;
    if (!client) return this.onDelivery(this.channel, 'dropped');
    client.publish(this.config.topic, JSON.stringify(event), { qos: 1, retain: this.config.retain }, (error) => {
      if (error) this.logger.warn({ code: ErrorCode.alertDeliveryFailed, channel: this.channel, alert: event.alert.id, err: error.message }, 'alert MQTT publish failed');
      this.onDelivery(this.channel, error ? 'failed' : 'sent');
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    await Promise.race([client.endAsync(false), sleep(2000)]);
    await client.endAsync(true).catch(() => {});
  }
}

export function createNotifiers(config: AlertsConfig, logger: Logger, onDelivery: OnDelivery): AlertNotifier[] {
  const notifiers: AlertNotifier[] = [];
  if (config.mqtt) notifiers.push(new MqttAlertNotifier(config.mqtt, logger, onDelivery));
  if (config.webhook) notifiers.push(new WebhookNotifier(config.webhook, logger, onDelivery));
  return notifiers;
}
