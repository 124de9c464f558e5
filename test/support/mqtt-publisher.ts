// QoS 1 load generator for crash tests and benchmarks. It keeps up to `window` publishes
// in flight instead of awaiting each PUBACK (one-at-a-time would cap it at one RTT per
// message), and records which message keys the broker acknowledged plus the
// publish→PUBACK latency of each.
//
// What a PUBACK here proves: only that the *broker* has the message. Lakeside's promise
// concerns the PUBACK it sends the broker for its own subscription. With a persistent
// session and QoS 1 the broker redelivers whatever lakeside did not ack, so after
// lakeside restarts, every seq in `ackedSeqs()` must eventually reach the hot tier.
// The publisher is a separate connection, so killing lakeside never disturbs it.
import { performance } from 'node:perf_hooks';
import { connectAsync, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';

export interface PublisherOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  url: string;
  /** Topic(s); message `seq` goes to `topics[seq % topics.length]`. */
  topics: string | string[];
  /** MQTT client id (default: a unique one). */
  clientId?: string;
  /** Messages per second; 0 or undefined publishes as fast as the window allows. */
  rate?: number;
  /**
   * Maximum publishes awaiting PUBACK (default 256, capped below the 65535 packet ids).
   * 100–250 gave 70–90k msg/s on loopback with p99 < 10 ms; bigger windows only add
   * queueing latency.
   */
  window?: number;
  /** First message key (default 0); give concurrent publishers disjoint ranges. */
  startSeq?: number;
  /** Pad the default JSON payload to about this many bytes. */
  payloadSize?: number;
  /** Custom payload; it must carry `seq` in a form the reading side can dedup on. */
  payload?: (seq: number, ts: number) => string | Buffer;
  /** QoS of every publish (default 1). */
  qos?: 0 | 1 | 2;
  /** Extra mqtt.js options (merged last). */
  mqtt?: Partial<IClientOptions>;
}

export interface PublisherStats {
  /** Publishes handed to the client. */
  sent: number;
  /** Publishes the broker acknowledged. */
  acked: number;
  /** Publishes that completed with an error (connection torn down, error reason code). */
  failed: number;
  inFlight: number;
  /** From start() to the last ack (or now, while running). */
  elapsedMs: number;
  /** acked / elapsed seconds. */
  ackedPerSecond: number;
}

export interface LatencySummary {
  count: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** The default payload: `{"seq":n,"ts":ms,"value":x}` optionally padded with `"pad"`. */
export function makePayload(seq: number, ts: number, payloadSize = 0): string {
  // A cheap deterministic value, so tests can recompute what a row should hold.
  const value = (seq % 1000) / 10;
  const base = `{"seq":${seq},"ts":${ts},"value":${value}`;
  const padLen = payloadSize - base.length - 10; // ,"pad":"" + }
  return padLen > 0 ? `${base},"pad":"${'x'.repeat(padLen)}"}` : `${base}}`;
}

/** Message key of a payload built by makePayload (or any JSON object with a numeric seq). */
export function payloadSeq(payload: Buffer | string): number {
  const obj = JSON.parse(payload.toString()) as { seq?: unknown };
  if (typeof obj.seq !== 'number') throw new Error('payload has no numeric seq');
  return obj.seq;
}

// Growable float array: a million latencies as JS numbers in a plain array would
// cost ~4x the memory and GC time.
class Samples {
  buf = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }
}

export function summarize(samplesMs: Float64Array | number[]): LatencySummary {
  const s = Float64Array.from(samplesMs).sort();
  const n = s.length;
  const at = (q: number): number => (n === 0 ? NaN : s[Math.min(n - 1, Math.floor(q * n))]!);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return {
    count: n,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    p999: at(0.999),
    max: n === 0 ? NaN : s[n - 1]!,
    mean: n === 0 ? NaN : sum / n,
  };
}

export class MqttPublisher {
  readonly client: MqttClient;
  readonly opts: PublisherOptions;
  private readonly topics: string[];
  private readonly window: number;
  private readonly pubOpts: IClientPublishOptions;
  private readonly acked: number[] = [];
  private readonly failedSeqs: number[] = [];
  private readonly latencies = new Samples();
  private nextSeq: number;
  private sent = 0;
  private inFlight = 0;
  private limit = Infinity;
  private running = false;
  private scheduled = false;
  private startedAt = 0;
  private lastAckAt = 0;
  private waiters: Array<() => void> = [];

  constructor(client: MqttClient, opts: PublisherOptions) {
    this.client = client;
    this.opts = opts;
    this.topics = Array.isArray(opts.topics) ? opts.topics : [opts.topics];
    if (this.topics.length === 0) throw new Error('MqttPublisher: no topics');
    this.window = Math.max(1, Math.min(opts.window ?? 256, 65_000));
    this.pubOpts = { qos: opts.qos ?? 1 };
    this.nextSeq = opts.startSeq ?? 0;
  }

  /**
   * Begin publishing `count` more messages (default: until stop()). Returns at once;
   * use done() to wait for all of them to be acknowledged.
   */
  start(count = Infinity): void {
    if (this.running) throw new Error('MqttPublisher: already running');
    this.running = true;
    this.limit = this.sent + count;
    if (this.startedAt === 0) this.startedAt = performance.now();
    this.schedule(0);
  }

  /** Raises the number of messages this run may send to `total` (flow control for closed-loop benchmarks). */
  allow(total: number): void {
    if (total <= this.limit) return;
    this.limit = total;
    if (this.running) this.schedule(0);
  }

  /** Stop issuing new publishes and wait (up to timeoutMs) for the in-flight ones. */
  async stop(timeoutMs = 30_000): Promise<PublisherStats> {
    this.running = false;
    await this.drain(timeoutMs);
    return this.stats();
  }

  /** Resolves once `count` (from start) have been sent and every one has completed. */
  async done(timeoutMs = 120_000): Promise<PublisherStats> {
    await this.until(() => this.sent >= this.limit && this.inFlight === 0, timeoutMs, 'done');
    this.running = false;
    return this.stats();
  }

  /** Waits until no publish is awaiting its PUBACK. */
  drain(timeoutMs = 30_000): Promise<void> {
    return this.until(() => this.inFlight === 0, timeoutMs, 'drain');
  }

  /** Waits until at least n publishes have been acknowledged in total. */
  waitForAcked(n: number, timeoutMs = 60_000): Promise<void> {
    return this.until(() => this.acked.length >= n, timeoutMs, `waitForAcked(${n})`);
  }

  /** Message keys the broker acknowledged, in ack order. */
  ackedSeqs(): number[] {
    return this.acked.slice();
  }

  /** Message keys whose publish completed with an error. */
  failed(): number[] {
    return this.failedSeqs.slice();
  }

  /** Publish→PUBACK latency of every acked message, in milliseconds. */
  latenciesMs(): Float64Array {
    return this.latencies.view().slice();
  }

  latency(): LatencySummary {
    return summarize(this.latencies.view());
  }

  stats(): PublisherStats {
    const end = this.running || this.lastAckAt === 0 ? performance.now() : this.lastAckAt;
    const elapsedMs = this.startedAt === 0 ? 0 : end - this.startedAt;
    return {
      sent: this.sent,
      acked: this.acked.length,
      failed: this.failedSeqs.length,
      inFlight: this.inFlight,
      elapsedMs,
      ackedPerSecond: elapsedMs > 0 ? (this.acked.length * 1000) / elapsedMs : 0,
    };
  }

  /** Stop, wait for in-flight acks (bounded), and disconnect. */
  async close(timeoutMs = 10_000): Promise<PublisherStats> {
    this.running = false;
    try {
      await this.drain(timeoutMs);
    } catch {
      // closing anyway; unacked messages show up as not acked
    }
    await this.client.endAsync(this.inFlight > 0);
    return this.stats();
  }

  private until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        const s = this.stats();
        reject(new Error(`MqttPublisher.${what} timed out after ${timeoutMs} ms: ${JSON.stringify(s)}`));
      }, timeoutMs);
      this.waiters.push(check);
    });
  }

  private notify(): void {
    if (this.waiters.length === 0) return;
    for (const w of this.waiters.slice()) w();
  }

  private schedule(delayMs: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.pump();
    };
    if (delayMs <= 0) setImmediate(run);
    else setTimeout(run, delayMs);
  }

  private pump(): void {
    if (!this.running) return;
    let budget = Math.min(this.window - this.inFlight, this.limit - this.sent);
    const rate = this.opts.rate ?? 0;
    if (rate > 0) {
      const due = Math.floor(((performance.now() - this.startedAt) * rate) / 1000) + 1 - this.sent;
      if (due <= 0) {
        this.schedule(Math.max(1, Math.ceil((-due + 1) * (1000 / rate))));
        return;
      }
      budget = Math.min(budget, due);
    }
    // Yield to the event loop regularly so PUBACKs are read while we publish.
    budget = Math.min(budget, 500);
    for (let i = 0; i < budget; i++) this.publishOne();
    if (this.sent >= this.limit) return;
    if (rate > 0) this.schedule(1);
    else if (this.inFlight < this.window) this.schedule(0);
    // else: an ack will reschedule
  }

  private publishOne(): void {
    const seq = this.nextSeq++;
    this.sent++;
    this.inFlight++;
    const ts = Date.now();
    const payload = this.opts.payload ? this.opts.payload(seq, ts) : makePayload(seq, ts, this.opts.payloadSize);
    const topic = this.topics[seq % this.topics.length]!;
    const t0 = performance.now();
    this.client.publish(topic, payload, this.pubOpts, (err) => {
      this.inFlight--;
      if (err) {
        this.failedSeqs.push(seq);
      } else {
        const now = performance.now();
        this.lastAckAt = now;
        this.acked.push(seq);
        this.latencies.push(now - t0);
      }
      if (this.running && this.inFlight === this.window - 1) this.schedule(0);
      this.notify();
    });
  }
}

/** Connect a publisher (MQTT 5). It does not publish until start(). */
export async function createPublisher(opts: PublisherOptions): Promise<MqttPublisher> {
  const client = await connectAsync(opts.url, {
    protocolVersion: 5,
    clientId: opts.clientId ?? `lakeside-pub-${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 500,
    connectTimeout: 5_000,
    ...opts.mqtt,
  });
  return new MqttPublisher(client, opts);
}

export interface PublishResult extends PublisherStats {
  ackedSeqs: number[];
  failedSeqs: number[];
  latency: LatencySummary;
}

/** Publish `n` messages, wait for every PUBACK, disconnect, and report. */
export async function publishN(
  opts: PublisherOptions,
  n: number,
  timeoutMs = 120_000,
): Promise<PublishResult> {
  const pub = await createPublisher(opts);
  try {
    pub.start(n);
    await pub.done(timeoutMs);
    const stats = pub.stats();
    return { ...stats, ackedSeqs: pub.ackedSeqs(), failedSeqs: pub.failed(), latency: pub.latency() };
  } finally {
    await pub.close(1_000).catch(() => undefined);
  }
}
