/**
 * Kafka source (kafkajs): one consumer in a consumer group, `eachBatch`, manual offsets.
 *
 * The promise: **a record's offset is committed to Kafka only after the landing
 * commit that holds it, and each record lands once.**
 * - `autoCommit: false`, `eachBatchAutoResolve: false`: nothing is resolved or
 *   committed by kafkajs itself (with auto-resolve, offsets are committed even when
 *   the handler throws). A batch is mapped, landed (durable), then resolved and its
 *   next offset committed.
 * - Every record's landing item carries its (topic/partition, offset); the landing
 *   log skips an offset below the partition's landed watermark and raises the
 *   watermark in the same transaction (landing/schema.ts `source_offsets`): a
 *   redelivery to this agent is skipped.
 * - **Across agents** (a group of several, one killed): a batch lands *held*
 *   (landing/source-holds.ts; the seal leaves it alone) and is released once its
 *   offset commit is answered. Every commit carries the partition's handover history
 *   in its metadata (kafka-handover.ts). At each join, before anything of the new
 *   generation lands, the held batches left over (a kill between landing and commit,
 *   a commit that failed, a batch that went stale) are judged by that history
 *   (kafka-tenures.ts): one its tenure committed is kept; one it never committed is
 *   dropped, rows and watermark, since whoever reads the partition now (this agent or
 *   another) reads it again from the committed offset. So a killed agent that comes
 *   back removes what its successor landed again: exactly once across the group.
 * - A topic deleted and recreated under its name (kafkajs 2.2.4 has no topic ids)
 *   restarts its offsets at 0, below the watermark: its records would be skipped as
 *   landed. Every item carries its batch's `highWatermark` (the partition's log end) as
 *   `sourceOffset.logEnd`. A log never gets shorter, so a log end below the landed
 *   watermark means a new log (recreated topic, or a truncated partition): the writer
 *   lowers the watermark to the item's offset in the batch's own transaction before its
 *   watermark check, the batch lands whole, and `KAFKA_TOPIC_RESET` is logged (source,
 *   topic, partition, old watermark, log end). Not caught: a recreated topic that holds
 *   as many records as were landed from the old one by the time this agent reads it
 *   (its log end is not below the watermark); its first records are skipped. The rule
 *   trusts the fetch's high watermark: one that dips below what this agent landed
 *   (a newly elected leader whose high watermark still lags, during a redelivery after
 *   a crash) would land the redelivered records again.
 * - Rebalances (kafka-rebalance-generation.ts; kafkajs' `isStale()` only reports a
 *   `seek()`, which lakeside never makes): a batch is stamped with the rebalance counts
 *   when it arrives. Before landing, a batch is dropped (unresolved, uncommitted,
 *   `staleBatchesDropped`) if a rebalance was announced (a heartbeat answered
 *   REBALANCE_IN_PROGRESS) or the generation changed (REBALANCING, GROUP_JOIN; a
 *   heartbeat or commit answered ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID) since it
 *   arrived; a batch at the pause gate stops waiting and is dropped as soon as a
 *   heartbeat reports a rebalance, so a paused agent does not hold up the group's
 *   rejoin. After landing, its offset is not committed if the generation changed (the
 *   partition may be another member's now, and kafkajs would send the commit with the
 *   new generation); this agent's watermark skips the records if they come back to
 *   it. A batch landed while a rebalance is only announced is still committed: the
 *   coordinator accepts the commit only while this member's generation stands, so a
 *   graceful handover keeps its offset and the next owner does not land it again.
 * - A dropped batch is never lost: it was not resolved, so the next fetch of its
 *   partition in the same generation starts at it again (offsetManager.nextOffset is
 *   the last resolved offset), and after a rejoin every member fetches from the
 *   committed offsets: kafkajs' sync builds a new OffsetManager with no offsets, and
 *   the first fetch of the generation asks the coordinator for them (offsetFetch in
 *   OffsetManager.resolveOffsets, via ConsumerGroup.fetch -> seekOffsets), for a
 *   partition this member keeps as for one it receives (kafkajs 2.2.4, read in
 *   consumer/consumerGroup.js and consumer/offsetManager/index.js).
 * - Backpressure: `pause()` (critical disk watermark, landing log blocked) pauses
 *   fetching of every topic, and a batch in hand waits at the gate, heartbeating.
 * - Stop: stop fetching, let the batch in hand land and commit, leave the group.
 * Poison records (bad JSON, wrong types, tombstones) are quarantined in the same
 * transaction as their neighbours; the partition keeps flowing.
 */
import { Kafka, type Batch, type Consumer, type EachBatchPayload, type IHeaders, type KafkaMessage } from 'kafkajs';
import type { KafkaSourceConfig } from '../../config/schema.ts';
import { failpoint } from '../failpoint.ts';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { LandingLog } from '../landing/landing-log.ts';
import type { LandingItem, LandingItemResult } from '../landing/types.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import { ErrorCode, type Logger } from '../log.ts';
import { backoffDelay, sleep } from '../retry.ts';
import type { KafkaMapper } from '../mapping/kafka-mapper.ts';
import type { KafkaRecordMeta } from '../mapping/mapper.ts';
import { kafkaClientConfig } from './kafka-client.ts';
import { PauseGate } from './pause-gate.ts';
import { RebalanceGeneration, type BatchTicket, type RebalanceEvents } from './kafka-rebalance-generation.ts';
import { PartitionTenures, streamOf, type CommittedOffsets, type PartitionTenure } from './kafka-tenures.ts';

export interface KafkaSourceOptions {
  config: KafkaSourceConfig;
  mapper: KafkaMapper;
  landing: LandingLog;
  blobs: BlobStore;
  logger: Logger;
  /** Instrumentation hook: a batch's offsets were committed to Kafka (next offset). */
  onCommit?: (topic: string, partition: number, nextOffset: number, records: number) => void;
}

export interface KafkaSourceStats {
  received: number;
  landed: number;
  quarantined: number;
  /** Records skipped because their offset had already landed (redelivery after a crash). */
  duplicates: number;
  /** Batches a rebalance overtook: dropped before landing, or landed and left uncommitted. */
  staleBatchesDropped: number;
  commitFailures: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const BLOB_WRITES_AT_ONCE = 16;
const NONE: never[] = Object.freeze([]) as unknown as never[];
const COMMIT_ATTEMPTS = 4;
const COMMIT_RETRY_MS = 5_000;

/** A landed batch's offset commit: what to send, under which generation, through which group handle. */
interface PendingCommit {
  topic: string;
  partition: number;
  next: number;
  records: number;
  metadata: string;
  tenure: PartitionTenure;
  ticket: BatchTicket;
  commit: EachBatchPayload['commitOffsetsIfNecessary'];
}
/** Commit errors that retrying cannot fix: this member no longer holds the partition's generation. */
const FENCED_COMMIT = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID']);

function text(value: Buffer | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  try {
    return utf8.decode(value);
  } catch {
    return null;
  }
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function headerTexts(headers: IHeaders | undefined): Record<string, string> {
  let out: Record<string, string> | null = null; // most records have no headers: no object for them
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = headers[name];
    const decoded = text(Array.isArray(value) ? value[0] : value);
    if (decoded !== null) (out ??= {})[name] = decoded;
  }
  return out ?? NO_HEADERS;
}

/** The record's coordinates, key, timestamp and headers, as the mapper reads them (key and headers decoded only when read). */
export function recordMeta(topic: string, partition: number, message: KafkaMessage, reads = { key: true, headers: true }): KafkaRecordMeta {
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: reads.key ? text(message.key) : null,
    timestampUs: Number(message.timestamp) * 1000,
    headers: reads.headers ? headerTexts(message.headers) : NO_HEADERS,
  };
}

export class KafkaSource implements Component {
  readonly name: string;
  readonly stats: KafkaSourceStats = { received: 0, landed: 0, quarantined: 0, duplicates: 0, staleBatchesDropped: 0, commitFailures: 0 };
  private consumer: Consumer | null = null;
  private kafka: Kafka | null = null;
  private stopping = false;
  private readonly tenures: PartitionTenures;
  /** The current generation's settle of held batches (kafka-tenures.ts): `done` once it ended. */
  private settle: { done: boolean; promise: Promise<void> } = { done: true, promise: Promise.resolve() };
  /** Batch handlers under way, so that a settle waits for those of earlier generations. */
  private readonly handling = new Set<Promise<void>>();
  private holdCount = 0;
  /** Landed batches whose commit failed while their generation stands, by stream: retried (retryUncommitted). */
  private readonly uncommitted = new Map<string, PendingCommit>();
  /** Batches in hand per stream (a commit retry waits for its stream to be free). */
  private readonly inHand = new Map<string, number>();
  private retrying = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly abort = new AbortController();
  private readonly gate = new PauseGate();
  private readonly rebalances = new RebalanceGeneration();
  /** Settles when the batch handed over last has been mapped (see land). */
  private mappingTurn: Promise<void> = Promise.resolve();
  private readonly options: KafkaSourceOptions;
  private readonly log: Logger;

  constructor(options: KafkaSourceOptions) {
    this.options = options;
    this.name = `kafka:${options.config.name}`;
    this.log = options.logger.child({ source: this.name });
    this.tenures = new PartitionTenures({
      source: options.config.name,
      heldBatches: (source) => options.landing.heldBatches(source),
      settleHolds: (keep, drop) => options.landing.settleHolds(keep, drop),
      fetchOffsets: (topics) => this.fetchCommitted(topics),
      fromBeginning: options.config.from_beginning,
      log: this.log,
    });
  }

  /**
   * The group's committed offsets and metadata of these topics, with each partition's
   * low watermark (kafka-handover.ts drops nothing Kafka no longer holds), through an admin client
   * of its own each time: kafkajs keeps every topic it was asked about in its metadata
   * requests, and one deleted topic would fail all of them from then on.
   */
  private async fetchCommitted(topics: string[]): Promise<CommittedOffsets[]> {
    if (!this.kafka) throw new Error('the kafka source is not started');
    const admin = this.kafka.admin({ retry: { retries: 2 } });
    try {
      await admin.connect();
      const committed = await admin.fetchOffsets({ groupId: this.options.config.group_id, topics });
      return await Promise.all(
        committed.map(async ({ topic, partitions }) => {
          const lows = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.low]));
          return { topic, partitions: partitions.map((p) => ({ ...p, low: lows.get(p.partition) })) };
        }),
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /** Follows the group's rebalances: stale batches (kafka-rebalance-generation.ts) and a settle at each join. */
  private follow(consumer: RebalanceEvents): void {
    this.rebalances.watch(consumer);
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.settleAtJoin(event.payload.memberAssignment));
  }

  /**
   * At each join: once the handlers of earlier generations are done, settle the held
   * batches and start the tenures (kafka-tenures.ts), retrying until it works or the
   * source stops. Batches of the new generation wait for it before landing.
   */
  private settleAtJoin(assignment: Record<string, number[]>): void {
    const previous = this.settle.promise;
    const earlier = [...this.handling];
    const settle = { done: false, promise: Promise.resolve() };
    settle.promise = (async () => {
      await previous;
      await Promise.allSettled(earlier);
      for (let attempt = 0; !this.stopping; attempt++) {
        try {
          const report = await this.tenures.settle(assignment);
          if (report.kept + report.dropped + report.leftHeld > 0) this.log.info({ ...report }, 'held batches settled against the group’s commit history');
          return;
        } catch (error) {
          const delayMs = backoffDelay(attempt, { initialMs: 500, maxMs: 30_000 });
          this.log.warn({ code: ErrorCode.kafkaConnect, err: (error as Error).message, retry_in_ms: delayMs }, 'could not settle held batches; nothing lands until they are; retrying');
          await sleep(delayMs, this.abort.signal).catch(() => {});
        }
      }
    })().finally(() => {
      settle.done = true;
    });
    this.settle = settle;
  }

  /** Stops fetching (and landing) until `resume()`; used at the critical disk watermark. */
  pause(): void {
    this.gate.pause();
    this.consumer?.pause(this.options.mapper.topics.map((topic) => ({ topic })));
  }

  resume(): void {
    this.gate.resume();
    this.consumer?.resume(this.options.mapper.topics.map((topic) => ({ topic })));
  }

  async start(): Promise<void> {
    const { config } = this.options;
    const kafka = new Kafka(await kafkaClientConfig(config, this.log));
    const consumer = kafka.consumer({
      groupId: config.group_id,
      sessionTimeout: config.session_timeout_ms,
      rebalanceTimeout: config.rebalance_timeout_ms,
      heartbeatInterval: config.heartbeat_interval_ms,
      maxBytesPerPartition: config.max_bytes_per_partition,
      maxBytes: config.max_bytes,
      allowAutoTopicCreation: false,
      // After retries run out the consumer restarts itself rather than die: an outage is waited out.
      retry: { initialRetryTime: 300, maxRetryTime: 30_000, retries: 8, restartOnFailure: async () => !this.stopping },
    });
    this.consumer = consumer;
    this.kafka = kafka;
    this.follow(consumer);
    this.retryTimer = setInterval(() => void this.retryUncommitted(), COMMIT_RETRY_MS);
    this.retryTimer.unref();
    const joined = new Promise<true>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve(true)));
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.log.info({ member: event.payload.memberId, assignment: event.payload.memberAssignment }, 'kafka group joined');
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.log.warn({ code: ErrorCode.kafkaConnect, err: event.payload.error.message, restart: event.payload.restart }, 'kafka consumer failed; restarting');
    });
    void this.launch(consumer);
    // Ready once in the group, or after connect_timeout_ms with a warning, as for MQTT:
    // a broker that is down at start is an outage, not a reason to keep other sources down.
    const up = await Promise.race([joined, new Promise<false>((resolve) => setTimeout(() => resolve(false), config.connect_timeout_ms).unref())]);
    if (!up) {
      this.log.warn(
        { code: ErrorCode.kafkaConnect, brokers: config.brokers, waited_ms: config.connect_timeout_ms },
        `not in consumer group ${config.group_id} yet; starting anyway and retrying in the background`,
      );
    }
  }

  /**
   * Connects, subscribes and starts the fetch loop; on failure (broker down, bad
   * credentials) logs and tries again with backoff until it works or the source stops.
   */
  private async launch(consumer: Consumer): Promise<void> {
    const { config } = this.options;
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await consumer.connect();
        for (const topic of this.options.mapper.topics) await consumer.subscribe({ topic, fromBeginning: config.from_beginning });
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: config.partitions_consumed_concurrently,
          eachBatch: (payload) => this.onBatch(payload),
        });
        if (this.gate.isPaused) this.pause();
        return;
      } catch (error) {
        const delayMs = backoffDelay(attempt, { initialMs: 500, maxMs: 30_000 });
        this.log.warn({ code: ErrorCode.kafkaConnect, err: (error as Error).message, retry_in_ms: delayMs }, 'kafka consumer could not start; retrying');
        await consumer.disconnect().catch(() => {});
        await sleep(delayMs, this.abort.signal).catch(() => {});
      }
    }
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.abort.abort();
    this.gate.resume();
    const consumer = this.consumer;
    if (!consumer) return;
    // stop() waits for the batch in hand (which lands and commits), then leaves the group.
    await consumer.stop().catch((error: Error) => this.log.warn({ err: error.message }, 'kafka consumer stop failed'));
    await consumer.disconnect().catch((error: Error) => this.log.warn({ err: error.message }, 'kafka disconnect failed'));
    this.consumer = null;
    this.log.info({ ...this.stats }, 'kafka source stopped');
  });

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const stream = streamOf(payload.batch.topic, payload.batch.partition);
    this.inHand.set(stream, (this.inHand.get(stream) ?? 0) + 1);
    const run = this.handleBatch(payload);
    this.handling.add(run);
    try {
      await run;
    } finally {
      this.handling.delete(run);
      const left = this.inHand.get(stream)! - 1;
      if (left === 0) this.inHand.delete(stream);
      else this.inHand.set(stream, left);
    }
  }

  private async handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0) return;
    const ticket = this.rebalances.ticket();
    const settle = this.settle; // this generation's settle (a later one waits for this handler)
    await this.waitAtGate(ticket, heartbeat, isRunning);
    if (this.stopping || !isRunning()) return;
    await this.waitForSettle(settle, ticket, heartbeat, isRunning);
    // Not settled: stopping (left for the next reader), or a rebalance overtook it (mayLand is false: stale).
    if (this.stopping || !isRunning()) return;
    const mayLand = () => this.rebalances.mayLand(ticket) && !isStale();
    const tenure = this.tenures.of(batch.topic, batch.partition);
    if (tenure && mayLand() && settle.done) this.tenures.firstRead(tenure, Number(batch.firstOffset()));
    // Unresolved, uncommitted: fetched again from the committed offset by whoever owns the partition next.
    const landed = mayLand() && settle.done && tenure !== undefined ? await this.land(batch, tenure, mayLand) : 'stale';
    if (landed === 'stale') {
      this.stats.staleBatchesDropped++;
      this.log.info({ topic: batch.topic, partition: batch.partition, records: batch.messages.length }, 'batch overtaken by a rebalance; dropped before landing');
      return;
    }
    if (landed === 'failed') return;
    if (!this.rebalances.mayCommit(ticket) || isStale()) {
      // Landed here, but the partition may have moved on: committing now could move the
      // new owner's offset backwards. This agent's watermark keeps it from landing twice.
      this.stats.staleBatchesDropped++;
      this.log.info({ topic: batch.topic, partition: batch.partition, records: batch.messages.length }, 'batch went stale in a rebalance after landing; offsets left to the new owner');
      return;
    }
    failpoint('kafka.after-landing');
    const next = Number(batch.lastOffset()) + 1;
    resolveOffset(batch.lastOffset());
    // Past the end of a batch left held at the settle if this one stops inside it (kafka-tenures.ts).
    const through = this.tenures.commitThrough(tenure!, next);
    const pending: PendingCommit = {
      topic: batch.topic,
      partition: batch.partition,
      next: through,
      records: batch.messages.length,
      metadata: tenure!.metadata,
      tenure: tenure!,
      ticket,
      commit: commitOffsetsIfNecessary,
    };
    const stream = streamOf(batch.topic, batch.partition);
    const later = this.uncommitted.get(stream);
    if (later && later.next <= through) this.uncommitted.delete(stream); // this commit covers it
    if (await this.commitLanded(pending, () => this.rebalances.mayCommit(ticket))) this.committed(pending);
    else if (this.rebalances.mayCommit(ticket)) this.uncommitted.set(stream, pending); // retried on a timer (retryUncommitted)
    await heartbeat().catch((error: unknown) => this.rebalances.noteError(error));
  }

  /** The batch is committed: its hold goes, and the seal may take it. */
  private committed(pending: PendingCommit): void {
    this.tenures.committed(pending.tenure, pending.next);
    void this.options.landing.releaseHolds(this.options.config.name, streamOf(pending.topic, pending.partition), pending.next);
    this.options.onCommit?.(pending.topic, pending.partition, pending.next, pending.records);
  }

  /**
   * Retries the commits that failed while this member's generation stands (a
   * coordinator moving, a timeout): without it, a partition that goes quiet after a
   * failed commit would keep its batch held, and its dataset unsealed, until the next
   * rebalance. A commit of a later batch of the partition replaces the retry.
   */
  private async retryUncommitted(): Promise<void> {
    if (this.retrying) return; // one run at a time
    this.retrying = true;
    try {
      for (const [stream, pending] of [...this.uncommitted]) {
        if (this.stopping) return;
        if (!this.rebalances.mayCommit(pending.ticket)) {
          this.uncommitted.delete(stream); // settled at the next join
          continue;
        }
        // Only while no batch of its partition is in hand and nothing replaced it: a
        // retry must not overtake a later commit of the partition (one sent after it
        // goes down the same coordinator connection behind it).
        if (this.inHand.has(stream) || this.uncommitted.get(stream) !== pending) continue;
        if (!(await this.commitLanded(pending, () => this.rebalances.mayCommit(pending.ticket), 1))) continue;
        if (this.uncommitted.get(stream) === pending) this.uncommitted.delete(stream);
        this.committed(pending);
      }
    } finally {
      this.retrying = false;
    }
  }

  /**
   * Commits a landed batch's next offset through the batch's own group handle.
   * Not `consumer.commitOffsets()`: that returns without committing once the runner
   * is stopping, so the last batch of a graceful stop would land here and be read
   * again by the partition's next owner. The group accepts the commit while a
   * rebalance is only being prepared (this member still holds its generation), so a
   * handover keeps the offset too. A few retries for transient errors; a commit that
   * still fails is retried every few seconds while the generation stands
   * (retryUncommitted), and otherwise settled at the next join.
   */
  private async commitLanded(pending: PendingCommit, mayCommit: () => boolean, attempts = COMMIT_ATTEMPTS): Promise<boolean> {
    const { topic, partition, next, metadata, commit } = pending;
    // kafkajs passes a partition's `metadata` through to the OffsetCommit request (its type omits it).
    const offsets = { topics: [{ topic, partitions: [{ partition, offset: String(next), metadata }] }] };
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && !mayCommit()) return false; // a retry after a rejoin would carry the new generation
      try {
        await commit(offsets);
        return true;
      } catch (error) {
        const type = (error as { type?: string }).type ?? '';
        this.rebalances.noteError(error);
        const final = attempt >= attempts - 1 || FENCED_COMMIT.has(type);
        if (final) {
          this.stats.commitFailures++;
          this.log.warn({ code: ErrorCode.kafkaCommit, topic, partition, offset: next, err: (error as Error).message }, 'kafka offset commit failed');
          return false;
        }
        await sleep(backoffDelay(attempt, { initialMs: 100, maxMs: 1_000 }), this.abort.signal).catch(() => {});
      }
    }
  }

  /**
   * Waits while paused, heartbeating so the group keeps the partitions with us; stops
   * waiting once a heartbeat reports a rebalance (the batch is then dropped, and kafkajs
   * can rejoin instead of holding the whole group up until the rebalance timeout).
   */
  private async waitAtGate(ticket: BatchTicket, heartbeat: () => Promise<void>, isRunning: () => boolean): Promise<void> {
    while (this.gate.isPaused && !this.stopping && isRunning() && this.rebalances.mayLand(ticket)) {
      const tick = new Promise<void>((resolve) => setTimeout(resolve, Math.max(200, this.options.config.heartbeat_interval_ms / 2)).unref());
      await Promise.race([this.gate.wait(), tick]);
      await heartbeat().catch((error: unknown) => this.rebalances.noteError(error));
    }
  }

  /** Waits for the generation's settle, heartbeating meanwhile (as at the pause gate) so the group keeps the partitions with us. */
  private async waitForSettle(settle: { done: boolean; promise: Promise<void> }, ticket: BatchTicket, heartbeat: () => Promise<void>, isRunning: () => boolean): Promise<void> {
    while (!settle.done && !this.stopping && isRunning() && this.rebalances.mayLand(ticket)) {
      const tick = new Promise<void>((resolve) => setTimeout(resolve, Math.max(200, this.options.config.heartbeat_interval_ms / 2)).unref());
      await Promise.race([settle.promise, tick]);
      if (!settle.done) await heartbeat().catch((error: unknown) => this.rebalances.noteError(error));
    }
  }

  /**
   * Maps and lands every record of the batch: 'landed' once all of it is durable,
   * 'stale' if `mayLand` turned false before the landing append (a rebalance was
   * learnt while it waited to be mapped), 'failed' if the landing log is stopping.
   */
  private async land(batch: Batch, tenure: PartitionTenure, mayLand: () => boolean): Promise<'landed' | 'stale' | 'failed'> {
    // Batches map one at a time, each after a turn of the event loop: kafkajs hands
    // over the batches of a fetch together, and mapping them back to back would hold
    // the landing writer's replies (and so its next commits) until all were mapped.
    const previous = this.mappingTurn;
    let mapped!: () => void;
    this.mappingTurn = new Promise<void>((resolve) => (mapped = resolve));
    await previous;
    await new Promise<void>((resolve) => setImmediate(resolve));
    let items: LandingItem[];
    let blobWrites: (() => Promise<void>)[];
    try {
      ({ items, blobWrites } = this.map(batch));
    } finally {
      mapped();
    }
    if (!mayLand()) return 'stale';
    // Only raw binary values wait for their blob files, written a few at a time (a
    // batch can hold thousands: never one open file each).
    for (let i = 0; i < blobWrites.length; i += BLOB_WRITES_AT_ONCE) {
      await Promise.all(blobWrites.slice(i, i + BLOB_WRITES_AT_ONCE).map((write) => write()));
    }
    if (!mayLand()) return 'stale';
    this.stats.received += items.length;
    try {
      // One transaction for the whole batch: one fsync, and the offsets' watermark raised once.
      // Held until its commit is known (landing/source-holds.ts): see the header.
      const results = await this.options.landing.appendAll(items, { id: `${tenure.id}.${++this.holdCount}`, tenure: tenure.id });
      let duplicates = 0;
      for (const result of results) {
        if (result.sourceDuplicate) duplicates++;
        else {
          this.stats.landed += result.inserted;
          this.stats.quarantined += result.quarantined;
        }
      }
      this.warnIfRecreated(batch, results);
      if (duplicates > 0) {
        this.stats.duplicates += duplicates;
        this.log.info({ topic: batch.topic, partition: batch.partition, skipped: duplicates }, 'redelivered records had landed already; skipped');
      }
      return 'landed';
    } catch (error) {
      // The landing log is stopping: leave the batch unresolved for redelivery.
      this.log.warn({ err: (error as Error).message, topic: batch.topic, partition: batch.partition }, 'batch not landed; left uncommitted');
      return 'failed';
    }
  }

  /** Logs `KAFKA_TOPIC_RESET` when the batch lowered its partition's watermark (see the header). */
  private warnIfRecreated(batch: Batch, results: LandingItemResult[]): void {
    const lowered = results.find((result) => result.offsetLoweredFrom !== undefined);
    if (!lowered) return;
    this.log.warn(
      {
        code: ErrorCode.kafkaTopicReset, // the child logger names the source
        topic: batch.topic,
        partition: batch.partition,
        old_watermark: lowered.offsetLoweredFrom,
        log_end: Number(batch.highWatermark),
        first_offset: Number(batch.firstOffset()),
      },
      `kafka partition ${batch.topic}/${batch.partition} ends at offset ${batch.highWatermark}, below this agent's landed watermark ${lowered.offsetLoweredFrom}: ` +
        `the topic was recreated (or the partition truncated); landing its records from offset ${batch.firstOffset()}`,
    );
  }

  /** The batch's landing items (synchronous), and the blob writes some of them wait for. */
  private map(batch: Batch): { items: LandingItem[]; blobWrites: (() => Promise<void>)[] } {
    const { mapper, blobs } = this.options;
    const source = this.options.config.name;
    const stream = `${batch.topic}/${batch.partition}`;
    const end = Number(batch.highWatermark);
    const logEnd = Number.isSafeInteger(end) && end >= 0 ? end : undefined;
    const receivedAtUs = Date.now() * 1000;
    const items: LandingItem[] = new Array(batch.messages.length);
    const blobWrites: (() => Promise<void>)[] = [];
    batch.messages.forEach((message, index) => {
      const meta = recordMeta(batch.topic, batch.partition, message, mapper.reads);
      const outcome = mapper.map(meta, message.value, receivedAtUs);
      // Only the arrays an item fills are its own; the others are shared, frozen, empty.
      const item: LandingItem = {
        rows: outcome.kind === 'row' ? [outcome.row] : NONE,
        quarantine: outcome.kind === 'quarantine' ? [outcome.entry] : NONE,
        blobs: NONE,
        source,
        sourceOffset: logEnd === undefined ? { source, stream, offset: meta.offset } : { source, stream, offset: meta.offset, logEnd },
      };
      items[index] = item;
      if (outcome.kind === 'row' && outcome.blobColumn !== null) {
        const column = outcome.blobColumn;
        blobWrites.push(async () => {
          const blob = await blobs.putBytes(message.value!, outcome.contentType);
          outcome.row.values[column] = blob.sha256;
          item.blobs = [blob];
        });
      }
    });
    return { items, blobWrites };
  }
}
