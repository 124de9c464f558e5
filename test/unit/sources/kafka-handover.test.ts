// The handover history in Kafka offset-commit metadata (kafka-handover.ts), and the
// settle at a join (kafka-tenures.ts) with stub landing and Kafka answers: which held
// batches are kept, which dropped, and which tenure each assigned partition commits under.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../agent/log.ts';
import type { HeldBatch } from '../../../agent/landing/source-holds.ts';
import { formatHistory, HISTORY_LIMIT, judgeHold, parseHistory, takeOver, type Tenure } from '../../../agent/sources/kafka-handover.ts';
import { PartitionTenures, type CommittedOffsets } from '../../../agent/sources/kafka-tenures.ts';

const A: Tenure = { id: 'agentA', since: 100 };
const hold = (firstOffset: number, nextOffset: number, tenure = 'agentA') => ({ tenure, firstOffset, nextOffset });

describe('handover history', () => {
  it('round-trips through commit metadata, and reads foreign or broken metadata as no history', () => {
    const history = [A, { id: 'b-1_x', since: -1 }];
    expect(parseHistory(formatHistory(history))).toEqual(history);
    expect(formatHistory(history)).toBe('lakeside1 agentA:100 b-1_x:-1');
    for (const foreign of [null, undefined, '', 'some other tool', 'lakeside1 x', 'lakeside1 x:y', 'lakeside1 :5']) expect(parseHistory(foreign), String(foreign)).toEqual([]);
  });

  it('continues the history while the partition stays with its last tenure, else starts a tenure at the committed offset', () => {
    expect(takeOver([A], 250, 'agentA')).toEqual([A]);
    const taken = takeOver([A], 250, undefined);
    expect(taken.slice(0, 1)).toEqual([A]);
    expect(taken[1]).toMatchObject({ since: 250 });
    expect(taken[1]!.id).not.toBe('agentA');
    expect(takeOver([A], 250, 'an-older-tenure-of-this-agent')[1]).toMatchObject({ since: 250 });
    // Bounded: the oldest tenures go first.
    const long = Array.from({ length: HISTORY_LIMIT }, (_, i) => ({ id: `t${i}`, since: i }));
    const next = takeOver(long, 99, undefined);
    expect(next).toHaveLength(HISTORY_LIMIT);
    expect(next[0]!.id).toBe('t1');
    expect(formatHistory(next).length).toBeLessThan(4096); // Kafka's default offset.metadata.max.bytes
  });

  it('keeps a batch its tenure committed, drops one it never committed, and keeps what it cannot tell', () => {
    const B = { id: 'agentB', since: 200 };
    const low = 0; // Kafka still holds every offset
    // A committed up to 200, then B took over at 200.
    expect(judgeHold(hold(150, 200), [A, B], 900, low, false)).toBe('keep');
    expect(judgeHold(hold(200, 260), [A, B], 900, low, false)).toBe('drop'); // A landed 200..259 and died before committing
    expect(judgeHold(hold(220, 260), [A, B], 900, low, false)).toBe('drop');
    // A is still the last tenure: the committed offset tells.
    expect(judgeHold(hold(200, 260), [A], 260, low, false)).toBe('keep');
    expect(judgeHold(hold(200, 260), [A], 200, low, false)).toBe('drop');
    // A never committed in this tenure: absent from the history; a tenure recorded after it read from before the batch.
    expect(judgeHold(hold(120, 150, 'gone'), [A, B], 900, low, false)).toBe('drop'); // A (since 100) read it
    expect(judgeHold(hold(120, 150, 'gone'), [{ id: 'genesis', since: -1 }, A, B], 900, low, false)).toBe('drop'); // the group's first tenure does not hide it
    expect(judgeHold(hold(0, 50, 'gone'), [A, B], 900, low, false)).toBe('unknown'); // every recorded reader started after it
    expect(judgeHold(hold(100, 150), [], 100, low, false)).toBe('drop'); // no history: committed at the batch, its reader reads it again
    // Nothing proves either way.
    expect(judgeHold(hold(200, 260), [A], 230, low, false)).toBe('unknown'); // a boundary inside the batch (an offset reset by hand)
    expect(judgeHold(hold(0, 50), [], 900, low, false)).toBe('unknown'); // a history of another tool, committed past the batch
    expect(judgeHold(hold(0, 50), [], -1, low, false)).toBe('unknown'); // nothing committed at all (a deleted group or topic)
    expect(judgeHold(hold(0, 50, 'gone'), [{ id: 'c', since: -1 }], 900, low, false)).toBe('unknown'); // its reader started from latest or earliest, not at the batch
    expect(judgeHold(hold(200, 260), [A, { id: 'c', since: -2 }], 900, low, false)).toBe('unknown'); // a reset to a sentinel after A
    // Kafka no longer holds the reader's starting offset: it resets to the latest (kept) or, with from_beginning, the earliest (drop).
    expect(judgeHold(hold(200, 260), [A, { id: 'b', since: 150 }], 900, 180, false)).toBe('unknown');
    expect(judgeHold(hold(200, 260), [A, { id: 'b', since: 150 }], 900, 180, true)).toBe('drop');
    expect(judgeHold(hold(0, 50, 'gone'), [{ id: 'c', since: -1 }], 900, low, true)).toBe('drop'); // started from the earliest offset
    // Kafka no longer holds the batch's records (retention): nobody can read them again.
    expect(judgeHold(hold(200, 260), [A, B], 900, 210, false)).toBe('unknown');
    expect(judgeHold(hold(200, 260), [A, B], 900, 200, false)).toBe('drop');
    // A full history: a recorded reader at or before the batch still proves a drop; else nothing does.
    const full = Array.from({ length: HISTORY_LIMIT }, (_, i) => ({ id: `t${i}`, since: 10 + i }));
    expect(judgeHold(hold(10, 50, 'pushed-out'), full, 900, low, false)).toBe('drop');
    expect(judgeHold(hold(0, 5, 'pushed-out'), full, 900, low, false)).toBe('unknown');
    // A history wiped by a reset to the latest offset after A committed: no recorded reader read it.
    expect(judgeHold(hold(150, 200), [{ id: 'after-reset', since: -1 }, { id: 'later', since: 5000 }], 6000, low, false)).toBe('unknown');
  });
});

describe('settle at a join', () => {
  function tenures(held: HeldBatch[], committed: Record<string, { offset: number; history: Tenure[] }>) {
    const settled: { keep: string[]; drop: string[] }[] = [];
    const fetched: string[][] = [];
    const t = new PartitionTenures({
      source: 'k',
      heldBatches: async () => held,
      settleHolds: async (keep, drop) => {
        settled.push({ keep, drop });
        return { rowsDropped: drop.length * 10, quarantineDropped: 0 };
      },
      fetchOffsets: async (topics): Promise<CommittedOffsets[]> => {
        fetched.push(topics);
        if (topics.includes('deleted')) throw Object.assign(new Error('This server does not host this topic-partition'), { type: 'UNKNOWN_TOPIC_OR_PARTITION' });
        return topics.map((topic) => ({
          topic,
          partitions: Object.entries(committed)
            .filter(([stream]) => stream.startsWith(`${topic}/`))
            .map(([stream, c]) => ({ partition: Number(stream.split('/')[1]), offset: String(c.offset), metadata: c.history.length ? formatHistory(c.history) : null, low: '0' })),
        }));
      },
      fromBeginning: false,
      log: silentLogger(),
    });
    return { t, settled, fetched };
  }
  const heldBatch = (hold: string, stream: string, tenure: string, firstOffset: number, nextOffset: number): HeldBatch => ({ hold, source: 'k', stream, tenure, firstOffset, nextOffset });

  it('settles the held batches of partitions it no longer has too, then starts a tenure on each assigned partition', async () => {
    const B = { id: 'agentB', since: 200 };
    const { t, settled, fetched } = tenures(
      [heldBatch('h1', 'old-topic/0', 'agentA', 150, 200), heldBatch('h2', 'old-topic/0', 'agentA', 200, 260), heldBatch('h3', 'events/1', 'gone', 0, 5)],
      { 'old-topic/0': { offset: 900, history: [A, B] }, 'events/0': { offset: 40, history: [A] }, 'events/1': { offset: -1, history: [] } },
    );
    const report = await t.settle({ events: [0, 1] });
    expect(fetched).toEqual([['events'], ['old-topic']]);
    expect(settled).toEqual([{ keep: ['h1', 'h3'], drop: ['h2'] }]);
    expect(report).toEqual({ kept: 2, dropped: 1, leftHeld: 0, unproven: 1, rowsDropped: 10 });
    // events/0 was A's: this member starts its own tenure at A's committed offset; events/1 had no commit.
    const e0 = parseHistory(t.of('events', 0)!.metadata);
    expect(e0[0]).toEqual(A);
    expect(e0[1]).toEqual({ id: t.of('events', 0)!.id, since: 40 });
    expect(parseHistory(t.of('events', 1)!.metadata)).toEqual([{ id: t.of('events', 1)!.id, since: -1 }]);
    expect(t.of('old-topic', 0)).toBeUndefined();
  });

  it('keeps the held batches of a deleted topic (nothing can prove them), and retries on any other error', async () => {
    const { t, settled } = tenures([heldBatch('h1', 'deleted/0', 'agentA', 0, 5)], {});
    expect(await t.settle({})).toMatchObject({ kept: 1, dropped: 0, unproven: 1 });
    expect(settled).toEqual([{ keep: ['h1'], drop: [] }]);
    const failing = new PartitionTenures({
      source: 'k',
      heldBatches: async () => [heldBatch('h1', 'events/0', 'agentA', 0, 5)],
      settleHolds: async () => expect.unreachable('nothing settles without an answer'),
      fetchOffsets: async () => {
        throw Object.assign(new Error('coordinator not available'), { type: 'COORDINATOR_NOT_AVAILABLE' });
      },
      fromBeginning: false,
      log: silentLogger(),
    });
    await expect(failing.settle({})).rejects.toThrow('coordinator not available');
    await expect(failing.settle({ events: [0] })).rejects.toThrow('coordinator not available');
    expect(failing.of('events', 0)).toBeUndefined();
  });

  it('leaves held a batch never committed whose tenure it continues: it reads it again itself and its next commit releases it', async () => {
    const first = tenures([], { 'events/0': { offset: 40, history: [] } });
    await first.t.settle({ events: [0] });
    const mine = first.t.of('events', 0)!;
    const history = parseHistory(mine.metadata);
    const state = first.t as unknown as { deps: { heldBatches: unknown; fetchOffsets: unknown } };
    // This member committed 40..99 under its tenure, then landed 100..149 and its commit failed; the partition stays with it.
    state.deps.heldBatches = async () => [heldBatch('h1', 'events/0', mine.id, 100, 150), heldBatch('h0', 'events/1', mine.id, 7, 9)];
    state.deps.fetchOffsets = async (topics: string[]) =>
      topics.map((topic) => ({
        topic,
        partitions: [
          { partition: 0, offset: '100', metadata: formatHistory(history), low: '0' },
          { partition: 1, offset: '7', metadata: formatHistory([{ id: mine.id, since: 0 }, { id: 'other', since: 7 }]), low: '0' },
        ],
      }));
    const report = await first.t.settle({ events: [0] });
    expect(first.t.of('events', 0)).toMatchObject({ id: mine.id, metadata: mine.metadata, leftHeld: [{ first: 100, next: 150 }] });
    // events/0: left held; events/1 (moved to another member, which read from 7): dropped.
    expect(report).toMatchObject({ leftHeld: 1, dropped: 1, kept: 0 });
    expect(first.settled).toEqual([{ keep: [], drop: ['h0'] }]);
  });

  it('a new tenure starts its history at the first offset it reads; a commit inside a batch left held is carried to its end', async () => {
    const { t } = tenures([], { 'events/0': { offset: 40, history: [A] } });
    await t.settle({ events: [0] });
    const tenure = t.of('events', 0)!;
    expect(parseHistory(tenure.metadata).at(-1)).toEqual({ id: tenure.id, since: 40 });
    t.firstRead(tenure, 55); // the committed offset moved on after the settle read it (a late commit)
    expect(parseHistory(tenure.metadata)).toEqual([A, { id: tenure.id, since: 55 }]);
    t.firstRead(tenure, 90); // only the first read counts
    expect(parseHistory(tenure.metadata).at(-1)!.since).toBe(55);
    tenure.leftHeld = [
      { first: 100, next: 150 },
      { first: 150, next: 180 },
    ];
    expect(t.commitThrough(tenure, 100)).toBe(100); // stops before the first: nothing to carry
    expect(t.commitThrough(tenure, 120)).toBe(150);
    expect(t.commitThrough(tenure, 160)).toBe(180);
    t.committed(tenure, 150);
    expect(tenure.leftHeld).toEqual([{ first: 150, next: 180 }]);
  });

  it('keeps its tenure when it keeps a partition it last committed, and starts a new one after another member committed', async () => {
    const first = tenures([], { 'events/0': { offset: 10, history: [] } });
    await first.t.settle({ events: [0] });
    const mine = first.t.of('events', 0)!;
    const history = parseHistory(mine.metadata);
    // The same object asked again: its tenure committed last, so it goes on.
    const again = first.t as unknown as { deps: { fetchOffsets: unknown } };
    again.deps.fetchOffsets = async (topics: string[]) => topics.map((topic) => ({ topic, partitions: [{ partition: 0, offset: '50', metadata: formatHistory(history), low: '0' }] }));
    await first.t.settle({ events: [0] });
    expect(first.t.of('events', 0)).toMatchObject({ id: mine.id, metadata: mine.metadata });
    // Another member committed since: a new tenure, starting where it stopped.
    again.deps.fetchOffsets = async (topics: string[]) =>
      topics.map((topic) => ({ topic, partitions: [{ partition: 0, offset: '80', metadata: formatHistory([...history, { id: 'other', since: 50 }]), low: '0' }] }));
    await first.t.settle({ events: [0] });
    expect(first.t.of('events', 0)!.id).not.toBe(mine.id);
    expect(parseHistory(first.t.of('events', 0)!.metadata).at(-1)).toEqual({ id: first.t.of('events', 0)!.id, since: 80 });
  });
});
