// Held batches (landing/source-holds.ts) through the real landing log and writer
// thread, and the real seal: held rows are never sealed; a release lets the seal take
// them; a drop deletes exactly the batch's rows and quarantine entries and lowers its
// stream's watermark, so the same offsets land again; a keep leaves them landed.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { awaitPurges } from '../../../agent/hot/purge.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { LandingLog } from '../../../agent/landing/landing-log.ts';
import { landedRowsWhere } from '../../../agent/landing/schema.ts';
import type { LandingItem } from '../../../agent/landing/types.ts';
import { silentLogger } from '../../../agent/log.ts';

const events = datasetSchema.parse({
  name: 'events',
  time_column: 'ts',
  columns: [
    { name: 'tag', type: 'string' },
    { name: 'n', type: 'long' },
  ],
});
/** With a dedupe key (a boolean in it: stored as 0/1, keyed as true/false). */
const keyed = datasetSchema.parse({
  name: 'keyed',
  time_column: 'ts',
  columns: [
    { name: 'tag', type: 'string' },
    { name: 'n', type: 'long' },
    { name: 'ok', type: 'boolean' },
  ],
  dedupe_key: ['tag', 'n', 'ok'],
});
const T0 = Date.UTC(2026, 10, 22, 5, 0) * 1000;
const SOURCE = 'plant_kafka';

/** Records `from`..`to - 1` of stream `stream`, tagged. `bad`: offsets whose row names an unknown dataset (refused, quarantined alone). */
function batch(stream: string, from: number, to: number, tag: string, bad: number[] = []): LandingItem[] {
  return Array.from({ length: to - from }, (_, i) => {
    const offset = from + i;
    return {
      rows: [{ dataset: bad.includes(offset) ? 'nope' : 'events', values: [T0 + offset, tag, offset] }],
      quarantine: [],
      blobs: [],
      source: SOURCE,
      sourceOffset: { source: SOURCE, stream, offset },
    };
  });
}

describe('held batches', () => {
  let dir: string;
  let log: LandingLog;
  let db: Database.Database;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'holds-'));
    log = new LandingLog({ dbPath: join(dir, 'landing.db'), datasets: [events, keyed], maxRows: 10_000, maxDelayMs: 1, retryInitialMs: 10, dedupeRetentionHours: 72, logger: silentLogger() });
    await log.start();
    db = new Database(join(dir, 'landing.db'));
  });
  afterEach(async () => {
    db.close();
    await log.stop();
    await awaitPurges();
    await rm(dir, { recursive: true, force: true });
  });

  const landedTags = (): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const tag of db.prepare(`SELECT tag FROM landed_events WHERE ${landedRowsWhere('events')}`).pluck().all() as string[]) out[tag] = (out[tag] ?? 0) + 1;
    return out;
  };
  const seal = () => sealDataset(db, resolveDataset(events), dir, { compactionWindowMinutes: 10, rowGroupRows: 1000, sealMaxRows: 100_000 });
  const watermark = (stream: string) => db.prepare('SELECT next_offset FROM source_offsets WHERE source = ? AND stream = ?').pluck().get(SOURCE, stream);

  it('lists a held batch with the offsets it landed, and the seal stops below it until it is released', async () => {
    await log.appendAll(batch('t/0', 0, 5, 'before'));
    await log.appendAll(batch('t/0', 5, 10, 'held'), { id: 'T1.1', tenure: 'T1' });
    await log.appendAll(batch('t/1', 0, 3, 'after')); // another stream, landed after the held batch
    expect(await log.heldBatches(SOURCE)).toEqual([{ hold: 'T1.1', source: SOURCE, stream: 't/0', tenure: 'T1', firstOffset: 5, nextOffset: 10 }]);
    expect(await log.heldBatches('other')).toEqual([]);

    // Held rows are landed (durable) but not part of the hot tier until settled.
    expect(landedTags()).toEqual({ before: 5, after: 3 });
    expect(db.prepare('SELECT count(*) FROM landed_events').pluck().get()).toBe(13);
    expect(seal().rows).toBe(5); // `before` only: the seal stops at the held batch's first row
    expect(landedTags()).toEqual({ after: 3 });

    expect(await log.releaseHolds(SOURCE, 't/0', 9)).toBe(0); // a commit below the batch's end releases nothing
    expect(await log.releaseHolds(SOURCE, 't/0', 10)).toBe(2); // the offsets part and the dataset part
    expect(await log.heldBatches()).toEqual([]);
    expect(landedTags()).toEqual({ held: 5, after: 3 });
    expect(seal().rows).toBe(8);
    expect(landedTags()).toEqual({});
  });

  it('a redelivery skipped by the watermark holds nothing; a batch half landed holds only what it landed', async () => {
    await log.appendAll(batch('t/0', 0, 10, 'first'));
    await log.appendAll(batch('t/0', 0, 10, 'again'), { id: 'T1.1', tenure: 'T1' });
    await log.appendAll(batch('t/0', 5, 15, 'overlap'), { id: 'T1.2', tenure: 'T1' });
    expect(await log.heldBatches()).toEqual([{ hold: 'T1.2', source: SOURCE, stream: 't/0', tenure: 'T1', firstOffset: 10, nextOffset: 15 }]);
    expect(db.prepare("SELECT count(*) FROM landed_events WHERE tag = 'overlap'").pluck().get()).toBe(5);
    expect(db.prepare("SELECT count(*) FROM landed_events WHERE tag = 'again'").pluck().get()).toBe(0);
  });

  it('a dropped batch takes exactly its rows and quarantine entries, and its offsets land again', async () => {
    await log.appendAll(batch('t/0', 0, 10, 'kept'), { id: 'T1.1', tenure: 'T1' });
    // Two batches land in one transaction (group commit), a mixed one with a poison record between.
    const [, dropped] = await Promise.all([
      log.appendAll(batch('t/1', 0, 4, 'other'), { id: 'T1.2', tenure: 'T1' }),
      log.appendAll(batch('t/0', 10, 20, 'dropped', [15]), { id: 'T1.3', tenure: 'T1' }),
      log.appendAll(batch('t/1', 4, 8, 'unheld')),
    ]);
    expect(dropped.filter((r) => r.quarantined === 1)).toHaveLength(1); // the refused row, quarantined alone
    expect(watermark('t/0')).toBe(20);
    expect(db.prepare('SELECT count(*) FROM quarantine').pluck().get()).toBe(1);
    expect(landedTags()).toEqual({ unheld: 4 });

    const outcome = await log.settleHolds(['T1.1', 'T1.2'], ['T1.3']);
    expect(outcome).toEqual({ rowsDropped: 9, quarantineDropped: 1 });
    expect(landedTags()).toEqual({ kept: 10, other: 4, unheld: 4 });
    expect(db.prepare('SELECT count(*) FROM quarantine').pluck().get()).toBe(0);
    expect(watermark('t/0')).toBe(10);
    expect(await log.heldBatches()).toEqual([]);

    // The partition's next reader (here this agent) lands offsets 10..19 again: none is skipped.
    const again = await log.appendAll(batch('t/0', 10, 20, 'relanded'), { id: 'T2.1', tenure: 'T2' });
    expect(again.every((r) => !r.sourceDuplicate && r.inserted === 1)).toBe(true);
    await log.releaseHolds(SOURCE, 't/0', 20);
    expect(landedTags()).toEqual({ kept: 10, other: 4, unheld: 4, relanded: 10 });
    expect(watermark('t/0')).toBe(20);
  });

  it('a dropped batch forgets its rows\' dedupe keys: landed again, its rows are not taken for duplicates', async () => {
    const keyedBatch = (from: number, to: number): LandingItem[] =>
      Array.from({ length: to - from }, (_, i) => ({
        rows: [{ dataset: 'keyed', values: [T0 + from + i, (from + i) % 3 === 0 ? 'k\ud800' : 'k', from + i, (from + i) % 2 === 0] }], // a lone surrogate: stored as U+FFFD
        quarantine: [],
        blobs: [],
        source: SOURCE,
        sourceOffset: { source: SOURCE, stream: 'k/0', offset: from + i },
      }));
    await log.appendAll(keyedBatch(0, 4), { id: 'T1.1', tenure: 'T1' });
    await log.appendAll(keyedBatch(4, 8), { id: 'T1.2', tenure: 'T1' });
    expect(db.prepare("SELECT count(*) FROM dedupe_keys WHERE dataset = 'keyed'").pluck().get()).toBe(8);
    expect(await log.settleHolds(['T1.1'], ['T1.2'])).toEqual({ rowsDropped: 4, quarantineDropped: 0 });
    expect(db.prepare("SELECT count(*) FROM dedupe_keys WHERE dataset = 'keyed'").pluck().get()).toBe(4);
    const again = await log.appendAll(keyedBatch(4, 8), { id: 'T2.1', tenure: 'T2' });
    expect(again.map((r) => [r.inserted, r.duplicates])).toEqual([[1, 0], [1, 0], [1, 0], [1, 0]]);
    expect(db.prepare('SELECT n FROM landed_keyed ORDER BY n').pluck().all()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('holds survive a restart of the landing log (they are written with the rows)', async () => {
    await log.appendAll(batch('t/0', 0, 4, 'held'), { id: 'T1.1', tenure: 'T1' });
    await log.stop();
    log = new LandingLog({ dbPath: join(dir, 'landing.db'), datasets: [events, keyed], maxRows: 10_000, maxDelayMs: 1, retryInitialMs: 10, dedupeRetentionHours: 72, logger: silentLogger() });
    await log.start();
    expect(await log.heldBatches()).toMatchObject([{ hold: 'T1.1', firstOffset: 0, nextOffset: 4 }]);
    expect(seal().rows).toBe(0);
  });
});
