import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DatasetConfig } from '../../../config/schema.ts';
import { LandingLog, LandingStoppedError } from '../../../agent/landing/landing-log.ts';
import type { LandingItem, LandingRow } from '../../../agent/landing/types.ts';
import { silentLogger } from '../../../agent/log.ts';
import { decodeLanded, type LandedBatch } from '../../../agent/reads/landed-batch.ts';

const readings: DatasetConfig = {
  name: 'readings',
  time_column: 'ts',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'value', type: 'double', nullable: true },
    { name: 'ok', type: 'boolean', nullable: true },
  ],
  dedupe_key: ['line', 'ts'],
  partition_by: [],
  max_future_skew_seconds: 300,
  max_past_age_hours: 168,
};
const events: DatasetConfig = { ...readings, name: 'events', dedupe_key: undefined };

function row(dataset: string, ts: number, line: string, value: number | null): LandingItem {
  return { rows: [{ dataset, values: [ts, line, value, true] }], quarantine: [], blobs: [] };
}

describe('LandingLog', () => {
  let dir: string;
  let log: LandingLog;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'landing-'));
    log = new LandingLog({
      dbPath: join(dir, 'landing.db'),
      datasets: [readings, events],
      maxRows: 50,
      maxDelayMs: 1,
      retryInitialMs: 10,
      dedupeRetentionHours: 72,
      logger: silentLogger(),
    });
    await log.start();
  });
  afterEach(async () => {
    await log.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves appends only once their rows are committed, grouping many appends per commit', async () => {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(row('events', 1_000 + i, 'l1', i))));
    expect(results.every((r) => r.inserted === 1)).toBe(true);
    // Group commit: fewer transactions than appends, none over the row cap.
    expect(log.stats.commits).toBeLessThan(500);
    expect(log.stats.commits).toBeGreaterThanOrEqual(10);
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM landed_events').pluck().get()).toBe(500);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('drops redeliveries of a dedupe key, across separate commits', async () => {
    await log.append(row('readings', 5, 'l1', 1));
    const again = await log.append(row('readings', 5, 'l1', 1));
    const other = await log.append(row('readings', 5, 'l2', 1));
    expect(again).toMatchObject({ inserted: 0, duplicates: 1 });
    expect(other).toMatchObject({ inserted: 1, duplicates: 0 });
  });

  it('lands an item with a source key once, and quarantine rows in the same commit', async () => {
    const item: LandingItem = {
      ...row('events', 7, 'l1', 2),
      quarantine: [
        {
          source: 's', coordinates: '{}', dataset: 'events', reasonCode: 'malformed_json', reason: 'bad',
          payload: Buffer.from('{x'), payloadBytes: 2, receivedAtUs: 1,
        },
      ],
      sourceKey: { source: 'folder:x', key: 'a.jpg:abc' },
    };
    expect(await log.append(item)).toMatchObject({ inserted: 1, quarantined: 1, sourceDuplicate: false });
    expect(await log.append(item)).toMatchObject({ inserted: 0, quarantined: 0, sourceDuplicate: true });
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM quarantine').pluck().get()).toBe(1);
    expect(db.prepare('SELECT count(*) FROM landed_events').pluck().get()).toBe(1);
    db.close();
  });

  it('skips a stream offset below the landed watermark, also after a restart, in one commit with the rows', async () => {
    const at = (offset: number, stream = 'orders/0'): LandingItem => ({
      ...row('events', 100 + offset, 'l1', offset),
      sourceOffset: { source: 'plant_kafka', stream, offset },
    });
    const first = await Promise.all([0, 1, 2, 3].map((o) => log.append(at(o))));
    expect(first.every((r) => r.inserted === 1 && !r.sourceDuplicate)).toBe(true);
    // A redelivery from an older committed offset: 2 and 3 landed already, 4 is new.
    const again = await Promise.all([2, 3, 4].map((o) => log.append(at(o))));
    expect(again.map((r) => r.sourceDuplicate)).toEqual([true, true, false]);
    // Streams are independent.
    expect((await log.append(at(0, 'orders/1'))).sourceDuplicate).toBe(false);
    await log.stop();
    // After a restart the watermark comes from the database.
    log = new LandingLog({ dbPath: join(dir, 'landing.db'), datasets: [readings, events], maxRows: 50, maxDelayMs: 1, retryInitialMs: 10, dedupeRetentionHours: 72, logger: silentLogger() });
    await log.start();
    const afterRestart = await Promise.all([3, 4, 5].map((o) => log.append(at(o))));
    expect(afterRestart.map((r) => r.sourceDuplicate)).toEqual([true, true, false]);
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM landed_events').pluck().get()).toBe(7);
    expect(db.prepare('SELECT stream, next_offset FROM source_offsets ORDER BY stream').raw().all()).toEqual([
      ['orders/0', 6],
      ['orders/1', 1],
    ]);
    db.close();
  });

  describe('a recreated stream (log end below the landed watermark)', () => {
    // Offsets `from`..`to` - 1 of stream orders/0, read when the stream ended at `logEnd`;
    // `tag` tells the incarnations' rows apart.
    const batch = (from: number, to: number, logEnd: number | undefined, tag: string, bad?: number): LandingItem[] =>
      Array.from({ length: to - from }, (_, i) => {
        const offset = from + i;
        const item: LandingItem = { ...row('events', 10_000 + offset, tag, offset), sourceOffset: { source: 'plant_kafka', stream: 'orders/0', offset } };
        if (logEnd !== undefined) item.sourceOffset!.logEnd = logEnd;
        if (offset === bad) item.rows[0]!.values[2] = { not: 'a number' } as unknown as number;
        return item;
      });
    const watermark = (): number => {
      const db = new Database(join(dir, 'landing.db'), { readonly: true });
      try {
        return db.prepare("SELECT next_offset FROM source_offsets WHERE stream = 'orders/0'").pluck().get() as number;
      } finally {
        db.close();
      }
    };
    const landedTags = (): Record<string, number> => {
      const db = new Database(join(dir, 'landing.db'), { readonly: true });
      try {
        const rows = db.prepare('SELECT line, count(*) AS n FROM landed_events GROUP BY line').raw().all() as [string, number][];
        return Object.fromEntries(rows);
      } finally {
        db.close();
      }
    };

    beforeEach(async () => {
      const first = await log.appendAll(batch(0, 100, 100, 'old'));
      expect(first.every((r) => r.inserted === 1 && !r.sourceDuplicate && r.offsetLoweredFrom === undefined)).toBe(true);
      expect(watermark()).toBe(100);
    });

    it('a redelivery whose log end is at or above the watermark is still skipped whole', async () => {
      for (const logEnd of [100, 150, undefined]) {
        const again = await log.appendAll(batch(50, 60, logEnd, 'again'));
        expect(again.every((r) => r.sourceDuplicate && r.inserted === 0 && r.offsetLoweredFrom === undefined)).toBe(true);
      }
      expect(watermark()).toBe(100);
      expect(landedTags()).toEqual({ old: 100 });
    });

    it('lands every record of the new log, lowering the watermark in their transaction; a redelivery of them is skipped', async () => {
      const reset = await log.appendAll(batch(0, 10, 10, 'new'));
      expect(reset.map((r) => r.inserted)).toEqual(new Array(10).fill(1));
      expect(reset.some((r) => r.sourceDuplicate)).toBe(false);
      expect(reset[0]!.offsetLoweredFrom).toBe(100);
      expect(reset.slice(1).every((r) => r.offsetLoweredFrom === undefined)).toBe(true);
      expect(log.stats.duplicates).toBe(0);
      expect(watermark()).toBe(10);
      expect(landedTags()).toEqual({ old: 100, new: 10 });
      // The new log is now the one watched: its own redelivery is exactly once again.
      const again = await log.appendAll(batch(0, 10, 10, 'new'));
      expect(again.every((r) => r.sourceDuplicate && r.offsetLoweredFrom === undefined)).toBe(true);
      const more = await log.appendAll(batch(5, 15, 15, 'new'));
      expect(more.map((r) => r.sourceDuplicate)).toEqual([...new Array(5).fill(true), ...new Array(5).fill(false)]);
      expect(watermark()).toBe(15);
      expect(landedTags()).toEqual({ old: 100, new: 15 });
    });

    it('a reset batch that rolls back leaves the old watermark, on disk and in the writer, and lowers it when it commits', async () => {
      const locker = new Database(join(dir, 'landing.db'));
      locker.exec('BEGIN IMMEDIATE'); // the writer's attempts fail with SQLITE_BUSY and roll back
      const landing = log.appendAll(batch(0, 10, 10, 'new'));
      await Promise.race([once(log, 'blocked'), landing]);
      expect(log.blocked).toBe(true);
      expect(locker.prepare("SELECT next_offset FROM source_offsets WHERE stream = 'orders/0'").pluck().get()).toBe(100);
      locker.exec('ROLLBACK');
      locker.close();
      const results = await landing;
      // Had the failed attempt left its lowered watermark in the writer's memory, the
      // retry would not lower the database's (the upsert keeps the larger one): 100 would stay.
      expect(results[0]!.offsetLoweredFrom).toBe(100);
      expect(results.every((r) => r.inserted === 1)).toBe(true);
      expect(watermark()).toBe(10);
      expect(landedTags()).toEqual({ old: 100, new: 10 });
    }, 30_000);

    it('an item of the reset batch the database refuses is quarantined; the others land one by one after the rollback', async () => {
      const results = await log.appendAll(batch(0, 10, 10, 'new', 0));
      expect(results[0]).toMatchObject({ inserted: 0, quarantined: 1, offsetLoweredFrom: 100 });
      expect(results.slice(1).every((r) => r.inserted === 1 && !r.sourceDuplicate)).toBe(true);
      expect(watermark()).toBe(10);
      expect(landedTags()).toEqual({ old: 100, new: 9 });
    });
  });

  it('a refused row still raises its stream watermark, so its redelivery is not quarantined twice', async () => {
    const bad: LandingItem = { rows: [{ dataset: 'nope', values: [1, 'x', 1, true] }], quarantine: [], blobs: [], sourceOffset: { source: 'k', stream: 't/0', offset: 7 } };
    expect(await log.append(bad)).toMatchObject({ quarantined: 1 });
    expect(await log.append(bad)).toMatchObject({ sourceDuplicate: true, quarantined: 0 });
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) FROM quarantine').pluck().get()).toBe(1);
    db.close();
  });

  it('quarantines a row the database refuses without failing the rest of its batch', async () => {
    const bad: LandingItem = { rows: [{ dataset: 'nope', values: [1, 'x', 1, true] }], quarantine: [], blobs: [] };
    const [good, refused] = await Promise.all([log.append(row('events', 9, 'l1', 3)), log.append(bad)]);
    expect(good.inserted).toBe(1);
    expect(refused).toMatchObject({ inserted: 0, quarantined: 1 });
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare("SELECT reason_code FROM quarantine").pluck().get()).toBe('landing_rejected');
    db.close();
  });

  it("lands a batch's rows in order, several per insert, and leaves nothing of an attempt that failed on one row", async () => {
    const items = Array.from({ length: 100 }, (_, i) => row('events', 5_000 + i, `l${i}`, i));
    // A value SQLite cannot bind: the batch fails on the insert that holds it, then each item alone.
    items[70]!.rows[0]!.values[2] = { not: 'a number' } as unknown as number;
    const results = await log.appendAll(items);
    expect(results.filter((r) => r.inserted === 1)).toHaveLength(99);
    expect(results[70]).toMatchObject({ inserted: 0, quarantined: 1 });
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    const landed = db.prepare('SELECT ts, line, value, ok FROM landed_events ORDER BY id').all();
    db.close();
    const expected = items.filter((_, i) => i !== 70).map((item) => item.rows[0]!.values);
    expect(landed).toEqual(expected.map(([ts, line, value]) => ({ ts, line, value, ok: 1 })));
  });

  it('retries a batch after a retriable failure (SQLITE_BUSY), its buffers encoded again, landing every row once', async () => {
    const locker = new Database(join(dir, 'landing.db'));
    locker.exec('BEGIN IMMEDIATE'); // holds the write lock: the writer gets SQLITE_BUSY after its busy timeout
    const items = Array.from({ length: 40 }, (_, i) => row('events', 7_000 + i, 'l1', i));
    const landing = log.appendAll(items);
    const [blocked] = (await once(log, 'blocked')) as [{ code: string }];
    expect(blocked.code).toMatch(/^SQLITE_BUSY/);
    locker.exec('ROLLBACK');
    locker.close();
    const results = await landing;
    expect(results.every((r) => r.inserted === 1)).toBe(true);
    const db = new Database(join(dir, 'landing.db'), { readonly: true });
    expect(db.prepare('SELECT ts FROM landed_events ORDER BY id').pluck().all()).toEqual(items.map((item) => item.rows[0]!.values[0]));
    db.close();
  }, 30_000);

  it('refuses new appends once stopping, and stop is safe twice', async () => {
    await log.stop();
    await log.stop();
    await expect(log.append(row('events', 1, 'l1', 1))).rejects.toBeInstanceOf(LandingStoppedError);
  });

  it('posts the new rows of each commit to the attached landed port before the append resolves, duplicates left out', async () => {
    const { port1, port2 } = new MessageChannel();
    await log.attachLandedPort(port2);
    const queued = (): LandingRow[] => {
      const rows: LandingRow[] = [];
      for (let next = receiveMessageOnPort(port1); next; next = receiveMessageOnPort(port1)) rows.push(...decodeLanded(next.message as LandedBatch));
      return rows;
    };
    await Promise.all([log.append(row('readings', 1000, 'l1', 1.5)), log.append(row('events', 1001, 'l2', null))]);
    // Already queued on the port when the appends resolved: taken synchronously.
    expect(queued().sort((a, b) => a.dataset.localeCompare(b.dataset))).toEqual([
      { dataset: 'events', values: [1001, 'l2', null, true] },
      { dataset: 'readings', values: [1000, 'l1', 1.5, true] },
    ]);
    await log.append(row('readings', 1000, 'l1', 9)); // the same dedupe key: dropped
    await log.append(row('readings', 2000, 'l1', 2.5));
    expect(queued()).toEqual([{ dataset: 'readings', values: [2000, 'l1', 2.5, true] }]);
    port1.close();
  });
});
