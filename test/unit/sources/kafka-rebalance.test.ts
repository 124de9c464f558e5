// Stale-batch detection in the Kafka source, without a broker: the source's eachBatch
// handler gets stub payloads, and a stub consumer's event emitter plays the group's
// rebalance events. kafkajs' own isStale() stays false throughout (as it does in
// kafkajs 2.2.4 without a seek()), so every drop here is the source's own detection.
import { EventEmitter } from 'node:events';
import type { Batch, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaSourceSchema } from '../../../config/schema.ts';
import type { BlobStore } from '../../../agent/blobs/blob-store.ts';
import type { LandingLog } from '../../../agent/landing/landing-log.ts';
import type { LandingItem, LandingItemResult } from '../../../agent/landing/types.ts';
import { silentLogger } from '../../../agent/log.ts';
import type { KafkaMapper } from '../../../agent/mapping/kafka-mapper.ts';
import { RebalanceGeneration, type RebalanceEvents } from '../../../agent/sources/kafka-rebalance-generation.ts';
import { KafkaSource } from '../../../agent/sources/kafka-source.ts';

const EVENTS = { REBALANCING: 'consumer.rebalancing', GROUP_JOIN: 'consumer.group_join' };

function kafkaError(type: string): Error {
  return Object.assign(new Error(`The group said ${type}`), { type });
}

/** The partition every batch here comes from; each join assigns it to this member. */
const PARTITION = 3;

/** A consumer as far as the rebalance events go: `emit` plays the group (a join assigns t/3). */
function stubConsumer(): RebalanceEvents & { emit: (event: string) => void } {
  const emitter = new EventEmitter();
  return {
    events: EVENTS as unknown as RebalanceEvents['events'],
    on: ((event: string, listener: (e: unknown) => void) => {
      emitter.on(event, listener);
      return () => emitter.off(event, listener);
    }) as unknown as RebalanceEvents['on'],
    emit: (event) => emitter.emit(event, { payload: { memberAssignment: { t: [PARTITION] } } }),
  };
}

interface Harness {
  source: KafkaSource;
  consumer: ReturnType<typeof stubConsumer>;
  appended: LandingItem[][];
  /** Runs inside the landing append, before it resolves (the batch is then landing). */
  duringLanding: (() => void) | null;
  /** The holds released: [stream, next offset]. */
  released: [string, number][];
  /** When set, a settle's listing of held batches waits for it. */
  settleWaits: Promise<void> | null;
  onBatch: (payload: EachBatchPayload) => Promise<void>;
}

function harness(): Harness {
  const config = kafkaSourceSchema.parse({
    name: 'k',
    brokers: ['b1:9092'],
    group_id: 'g',
    heartbeat_interval_ms: 100,
    routes: [{ topic: 't', dataset: 'd', fields: {} }],
  });
  const h = { appended: [] as LandingItem[][], duringLanding: null as (() => void) | null, settleWaits: null as Promise<void> | null, released: [] as [string, number][] } as Harness;
  const landing = {
    appendAll: async (items: LandingItem[]): Promise<LandingItemResult[]> => {
      h.appended.push(items);
      h.duringLanding?.();
      return items.map(() => ({ inserted: 1, quarantined: 0, sourceDuplicate: false }) as LandingItemResult);
    },
    heldBatches: async () => {
      await h.settleWaits;
      return [];
    },
    settleHolds: async () => ({ rowsDropped: 0, quarantineDropped: 0 }),
    releaseHolds: async (_source: string, stream: string, next: number) => {
      h.released.push([stream, next]);
      return 1;
    },
  } as unknown as LandingLog;
  const mapper = {
    topics: ['t'],
    reads: { key: false, headers: false },
    map: () => ({ kind: 'row', row: { values: [] }, blobColumn: null, contentType: null }),
  } as unknown as KafkaMapper;
  h.source = new KafkaSource({ config, mapper, landing, blobs: {} as BlobStore, logger: silentLogger() });
  h.consumer = stubConsumer();
  // What start() does with the real consumer; the handler is the one start() hands kafkajs.
  const internals = h.source as unknown as {
    kafka: unknown;
    follow: (c: RebalanceEvents) => void;
    onBatch: (p: EachBatchPayload) => Promise<void>;
  };
  // The group's committed offsets: none yet.
  internals.kafka = {
    admin: () => ({
      connect: async () => {},
      disconnect: async () => {},
      fetchOffsets: async ({ topics }: { topics: string[] }) => topics.map((topic) => ({ topic, partitions: [{ partition: PARTITION, offset: '-1', metadata: null }] })),
      fetchTopicOffsets: async () => [{ partition: PARTITION, offset: '0', high: '0', low: '0' }],
    }),
  };
  internals.follow(h.consumer);
  h.consumer.emit(EVENTS.GROUP_JOIN); // the first join, before any fetch
  h.onBatch = (payload) => internals.onBatch(payload);
  return h;
}

interface PayloadLog {
  resolved: string[];
  committed: unknown[];
  heartbeats: number;
}

function payload(firstOffset: number, count: number, heartbeat: () => Promise<void> = async () => {}): { payload: EachBatchPayload; log: PayloadLog } {
  const log: PayloadLog = { resolved: [], committed: [], heartbeats: 0 };
  const messages = Array.from({ length: count }, (_, i) => ({
    offset: String(firstOffset + i),
    key: null,
    value: Buffer.from('{"v":1}'),
    timestamp: '1700000000000',
    headers: {},
    attributes: 0,
    size: 0,
  })) as unknown as KafkaMessage[];
  const batch = {
    topic: 't',
    partition: PARTITION,
    messages,
    lastOffset: () => String(firstOffset + count - 1),
    firstOffset: () => String(firstOffset),
  } as unknown as Batch;
  return {
    log,
    payload: {
      batch,
      resolveOffset: (offset: string) => void log.resolved.push(offset),
      heartbeat: async () => {
        log.heartbeats++;
        await heartbeat();
      },
      pause: () => () => {},
      commitOffsetsIfNecessary: async (offsets?: unknown) => void log.committed.push(offsets),
      uncommittedOffsets: () => ({ topics: [] }),
      isRunning: () => true,
      isStale: () => false,
    } as unknown as EachBatchPayload,
  };
}

/** A commit of `next`, carrying the partition's handover history (kafka-handover.ts). */
const commitOf = (next: number) => ({
  topics: [{ topic: 't', partitions: [{ partition: PARTITION, offset: String(next), metadata: expect.stringMatching(/^lakeside1 [\w-]+:\d+$/) }] }],
});

describe('kafka source: batches overtaken by a rebalance', () => {
  it('without a rebalance a batch lands, is resolved and its next offset committed', async () => {
    const h = harness();
    const { payload: p, log } = payload(10, 3);
    await h.onBatch(p);
    expect(h.appended.map((items) => items.map((item) => item.sourceOffset?.offset))).toEqual([[10, 11, 12]]);
    expect(log.resolved).toEqual(['12']);
    expect(log.committed).toEqual([commitOf(13)]);
    expect(h.source.stats.staleBatchesDropped).toBe(0);
  });

  it('(a) a generation change before landing: not landed, not resolved, not committed', async () => {
    for (const event of [EVENTS.GROUP_JOIN, EVENTS.REBALANCING]) {
      const h = harness();
      const { payload: p, log } = payload(10, 3);
      const handled = h.onBatch(p); // the batch is in hand, waiting for its mapping turn
      h.consumer.emit(event);
      await handled;
      expect(h.appended, event).toEqual([]);
      expect(log.resolved, event).toEqual([]);
      expect(log.committed, event).toEqual([]);
      expect(h.source.stats.staleBatchesDropped, event).toBe(1);
      // The member joins again (kafkajs fetches only then); the next batch lands and commits as usual.
      if (event === EVENTS.REBALANCING) h.consumer.emit(EVENTS.GROUP_JOIN);
      const next = payload(10, 3);
      await h.onBatch(next.payload);
      expect(h.appended).toHaveLength(1);
      expect(next.log.committed).toEqual([commitOf(13)]);
    }
  });

  it('a batch of a new generation waits for the settle of held batches, heartbeating, and lands after it', async () => {
    const h = harness();
    await h.onBatch(payload(0, 2).payload); // the first join's settle is done
    let release!: () => void;
    h.settleWaits = new Promise<void>((resolve) => (release = resolve));
    h.consumer.emit(EVENTS.GROUP_JOIN); // a new generation: its settle waits
    const { payload: p, log } = payload(10, 3);
    const handled = h.onBatch(p);
    while (log.heartbeats < 2) await new Promise((r) => setTimeout(r, 20)); // it heartbeats while it waits
    expect(h.appended).toHaveLength(1); // and lands nothing
    release();
    await handled;
    expect(h.appended).toHaveLength(2);
    expect(log.committed).toEqual([commitOf(13)]);
  });

  it('a commit that keeps failing while the generation stands is retried later, and only then releases its hold', async () => {
    const h = harness();
    const { payload: p, log } = payload(10, 3);
    let failures = 0;
    p.commitOffsetsIfNecessary = async (offsets?: unknown) => {
      if (failures++ < 4) throw Object.assign(new Error('The request timed out'), { type: 'REQUEST_TIMED_OUT' });
      log.committed.push(offsets);
    };
    await h.onBatch(p);
    expect(log.committed).toEqual([]);
    expect(h.released).toEqual([]);
    expect(h.source.stats.commitFailures).toBe(1);
    const internals = h.source as unknown as { retryUncommitted: () => Promise<void>; uncommitted: Map<string, unknown>; inHand: Map<string, number> };
    expect([...internals.uncommitted.keys()]).toEqual(['t/3']);
    // Not while a batch of the partition is in hand (its later commit must not be overtaken).
    internals.inHand.set('t/3', 1);
    await internals.retryUncommitted();
    expect(log.committed).toEqual([]);
    internals.inHand.delete('t/3');
    await internals.retryUncommitted();
    expect(log.committed).toEqual([commitOf(13)]);
    expect(h.released).toEqual([['t/3', 13]]);
    expect(internals.uncommitted.size).toBe(0);
    // A generation change forgets a retry instead (the next join settles the batch).
    const second = payload(13, 2);
    second.payload.commitOffsetsIfNecessary = async () => {
      throw Object.assign(new Error('The request timed out'), { type: 'REQUEST_TIMED_OUT' });
    };
    await h.onBatch(second.payload);
    expect(internals.uncommitted.size).toBe(1);
    h.consumer.emit(EVENTS.REBALANCING);
    await internals.retryUncommitted();
    expect(internals.uncommitted.size).toBe(0);
    expect(h.released).toEqual([['t/3', 13]]);
  });

  it('(b) a generation change while landing: landed, but its offset not committed', async () => {
    const h = harness();
    h.duringLanding = () => h.consumer.emit(EVENTS.GROUP_JOIN);
    const { payload: p, log } = payload(10, 3);
    await h.onBatch(p);
    expect(h.appended).toHaveLength(1);
    expect(h.source.stats.landed).toBe(3);
    expect(log.resolved).toEqual([]);
    expect(log.committed).toEqual([]);
    expect(h.source.stats.staleBatchesDropped).toBe(1);
  });

  it('(c) a heartbeat answered REBALANCE_IN_PROGRESS at the pause gate drops the waiting batch', async () => {
    const h = harness();
    h.source.pause(); // the critical disk watermark: the batch waits at the gate, heartbeating
    let heartbeats = 0;
    const { payload: p, log } = payload(10, 3, async () => {
      if (++heartbeats === 2) throw kafkaError('REBALANCE_IN_PROGRESS');
    });
    // Without the detection this batch would wait (heartbeats swallowed) until resume().
    await h.onBatch(p);
    expect(log.heartbeats).toBe(2);
    expect(h.appended).toEqual([]);
    expect(log.resolved).toEqual([]);
    expect(log.committed).toEqual([]);
    expect(h.source.stats.staleBatchesDropped).toBe(1);
  });

  it('(c) a heartbeat answered REBALANCE_IN_PROGRESS after one batch drops another batch in hand before landing', async () => {
    const h = harness();
    const first = payload(0, 2, async () => {
      throw kafkaError('REBALANCE_IN_PROGRESS');
    });
    const second = payload(100, 2);
    // Both in hand at once (partitions consumed concurrently); the first one's
    // heartbeat after its commit learns of the rebalance while the second waits its turn.
    const a = h.onBatch(first.payload);
    const b = h.onBatch(second.payload);
    await Promise.all([a, b]);
    expect(first.log.committed).toEqual([commitOf(2)]);
    expect(h.appended).toHaveLength(1);
    expect(second.log.committed).toEqual([]);
    expect(second.log.resolved).toEqual([]);
    expect(h.source.stats.staleBatchesDropped).toBe(1);
  });

  it.each([
    // Only announced: the coordinator still accepts this generation's commit, so a handover keeps the offset.
    { answer: 'REBALANCE_IN_PROGRESS', commits: true },
    // The generation is gone: the partition may be another member's now.
    { answer: 'ILLEGAL_GENERATION', commits: false },
    { answer: 'UNKNOWN_MEMBER_ID', commits: false },
  ])('a heartbeat answered $answer while landing: landed, committed: $commits', async ({ answer, commits }) => {
    const h = harness();
    const internals = h.source as unknown as { rebalances: RebalanceGeneration };
    h.duringLanding = () => internals.rebalances.noteError(kafkaError(answer));
    const { payload: p, log } = payload(10, 3);
    await h.onBatch(p);
    expect(h.appended).toHaveLength(1);
    expect(log.committed).toEqual(commits ? [commitOf(13)] : []);
    expect(h.source.stats.staleBatchesDropped).toBe(commits ? 0 : 1);
  });

  it('kafkajs isStale() still drops a batch (after a seek)', async () => {
    const h = harness();
    const { payload: p, log } = payload(10, 3);
    await h.onBatch({ ...p, isStale: () => true });
    expect(h.appended).toEqual([]);
    expect(log.committed).toEqual([]);
    expect(h.source.stats.staleBatchesDropped).toBe(1);
  });
});

describe('RebalanceGeneration', () => {
  it('tells an announced rebalance from a changed generation, and ignores other errors', () => {
    const g = new RebalanceGeneration();
    const before = g.ticket();
    expect(g.noteError(kafkaError('REQUEST_TIMED_OUT'))).toBe(false);
    expect(g.noteError(new Error('socket hang up'))).toBe(false);
    expect(g.noteError(undefined)).toBe(false);
    expect(g.mayLand(before) && g.mayCommit(before)).toBe(true);

    expect(g.noteError(kafkaError('REBALANCE_IN_PROGRESS'))).toBe(true);
    expect(g.mayLand(before)).toBe(false);
    expect(g.mayCommit(before)).toBe(true);

    const announced = g.ticket();
    for (const type of ['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']) {
      const ticket = g.ticket();
      expect(g.noteError(kafkaError(type))).toBe(true);
      expect(g.mayLand(ticket), type).toBe(false);
      expect(g.mayCommit(ticket), type).toBe(false);
    }
    expect(g.mayCommit(announced)).toBe(false);
    const fresh = g.ticket();
    expect(g.mayLand(fresh)).toBe(false); // out of the group until it joins again
    g.joined();
    const rejoined = g.ticket();
    expect(g.mayLand(rejoined) && g.mayCommit(rejoined)).toBe(true);
  });

  it('a batch handed over after the generation ended (same fetch) does not land until the member joins again', () => {
    const g = new RebalanceGeneration();
    g.joined();
    expect(g.noteError(kafkaError('ILLEGAL_GENERATION'))).toBe(true);
    const later = g.ticket(); // the next batch of the same fetch
    expect(g.mayLand(later)).toBe(false);
    g.joined();
    expect(g.mayLand(g.ticket())).toBe(true);
  });
});
