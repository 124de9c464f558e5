import { afterEach, describe, expect, it } from 'vitest';
import { NO_CATALOG, type CatalogHandoff } from '../../../tiering/catalog-handoff.ts';
import { ObjectStoreError, type ObjectStore, type PutSource } from '../../../tiering/stores/object-store.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { listKeys } from '../../support/object-store-contract.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

const CONTEXT = { plant: 'ulm', agentId: 'ulm' };

/** The warm store, recording the order of puts and failing the keys `failing` says. */
function recordingStore(inner: ObjectStore, failing: (key: string) => Error | null = () => null): ObjectStore & { puts: string[] } {
  const puts: string[] = [];
  return Object.assign(Object.create(inner) as ObjectStore, {
    puts,
    description: inner.description,
    put: async (key: string, source: PutSource) => {
      puts.push(key);
      const error = failing(key);
      if (error) throw error;
      return inner.put(key, source);
    },
  });
}

function uploader(f: TieringFixture, store: ObjectStore, config: ReturnType<TieringFixture['config']>, catalog: CatalogHandoff = NO_CATALOG) {
  const log = recordingLogger();
  const u = new Uploader({ db: f.db, map: f.map, store, catalog, config, stateDir: f.stateDir, context: CONTEXT, logger: log.logger, nowMs: f.nowMs });
  return { u, log };
}

describe('uploader', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  it('uploads every L1 file and blob, verified, and (no catalog) counts them committed', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    f.addL1('readings');
    f.addBlob();
    const { u } = uploader(f, f.warm, f.config());
    await u.pass();
    expect(f.map.all().map((r) => r.state)).toEqual(['committed', 'committed', 'committed']);
    const keys = await listKeys(f.warm);
    expect(keys.sort()).toEqual(f.map.all().map((r) => r.object_key).sort());
    for (const r of f.map.all()) expect((await f.warm.head(r.object_key))!.sha256).toBe(r.sha256);
  });

  it('goes by priority, then oldest first; blobs by their own policy', async () => {
    f = await createTieringFixture();
    const oldFrame = f.addBlob({ ageHours: 50 });
    f.addL1('readings', { ageHours: 40 });
    f.addL1('inspections', { ageHours: 2 });
    f.addL1('inspections', { ageHours: 30 });
    f.addL1('readings', { ageHours: 45 });
    const store = recordingStore(f.warm);
    const config = f.config({ upload_concurrency: 1, datasets: { inspections: { priority: 10 }, readings: { priority: 5 } }, blobs: { priority: -1 } });
    await uploader(f, store, config).u.pass();
    const byKey = new Map(f.map.all().map((r) => [r.object_key, r]));
    const order = store.puts.map((k) => {
      const r = byKey.get(k)!;
      return `${r.dataset ?? 'blob'}:${Math.round((f.clock.ms * 1000 - r.event_time_us) / 3_600_000_000)}h`;
    });
    expect(order).toEqual(['inspections:30h', 'inspections:2h', 'readings:45h', 'readings:40h', 'blob:50h']);
    expect(store.puts.at(-1)).toContain(oldFrame.sha256);
  });

  it('sets a poison file aside with its reason after max_attempts, while the others go through', async () => {
    f = await createTieringFixture();
    const poison = f.addL1('inspections', { ageHours: 10 }); // oldest, highest priority: first in line every time
    for (let i = 0; i < 4; i++) f.addL1('inspections', { ageHours: 5 - i });
    const poisonKey = () => f.map.byPath(poison.path)!.object_key;
    const store = recordingStore(f.warm, (key) => (key === poisonKey() ? new ObjectStoreError('S3_InternalError', 'HTTP 500 on this one', true) : null));
    const config = f.config({ upload_concurrency: 1, max_attempts: 3, retry_initial_ms: 1000, retry_max_ms: 1000 });
    const { u, log } = uploader(f, store, config);
    for (let pass = 0; pass < 3; pass++) {
      await u.pass();
      f.clock.ms += 2000; // past the backoff
    }
    const rows = f.map.all();
    const bad = f.map.byPath(poison.path)!;
    expect(bad).toMatchObject({ state: 'local', attempts: 3 });
    expect(bad.set_aside_us).not.toBeNull();
    expect(bad.last_error).toContain('HTTP 500 on this one');
    expect(rows.filter((r) => r.id !== bad.id).every((r) => r.state === 'committed')).toBe(true);
    expect(log.records.filter((r) => r.obj.code === 'UPLOAD_SET_ASIDE')).toHaveLength(1);
    expect(f.map.setAside().map((r) => r.local_path)).toEqual([poison.path]);
    // Set aside: further passes do not try it again.
    const putsBefore = store.puts.filter((k) => k === poisonKey()).length;
    f.clock.ms += 60_000;
    await u.pass();
    expect(store.puts.filter((k) => k === poisonKey()).length).toBe(putsBefore);
  });

  it('waits out the backoff of a failed file and does not retry it before', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    let fail = true;
    const store = recordingStore(f.warm, () => (fail ? new ObjectStoreError('S3_TimeoutError', 'timeout', true) : null));
    const { u } = uploader(f, store, f.config({ retry_initial_ms: 10_000, retry_max_ms: 10_000 }));
    await u.pass();
    expect(store.puts).toHaveLength(1);
    const due = f.map.all()[0]!.next_attempt_us;
    expect(due).toBeGreaterThanOrEqual((f.clock.ms + 5_000) * 1000); // full jitter keeps at least half the ceiling
    fail = false;
    await u.pass();
    expect(store.puts).toHaveLength(1);
    f.clock.ms = due / 1000;
    await u.pass();
    expect(f.map.all()[0]!.state).toBe('committed');
  });

  it('a key conflict cannot be cured by retrying: set aside at once', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    const { u, log } = uploader(f, recordingStore(f.warm, (key) => new ObjectStoreError('OBJECT_CONFLICT', `object ${key} already exists with different content`, false)), f.config());
    await u.pass();
    expect(f.map.all()[0]).toMatchObject({ attempts: 1, state: 'local' });
    expect(f.map.setAside()).toHaveLength(1);
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_SET_ASIDE')).toBe(true);
  });

  it('holds a dataset back while its upload window is closed, and lets it go when it opens', async () => {
    f = await createTieringFixture();
    f.clock.ms = Date.UTC(2026, 10, 21, 14, 0); // 14:00 UTC
    f.addBlob();
    f.addL1('frames');
    f.addL1('inspections');
    const config = f.config({ datasets: { frames: { upload_windows: ['* 22-23,0-5 * * *'] } }, blobs: { upload_windows: ['* 22-23,0-5 * * *'] } });
    const { u } = uploader(f, f.warm, config);
    await u.pass();
    const state = () => Object.fromEntries(f.map.all().map((r) => [r.dataset ?? 'blob', r.state]));
    expect(state()).toEqual({ blob: 'local', frames: 'local', inspections: 'committed' });
    f.clock.ms = Date.UTC(2026, 10, 21, 21, 59); // one minute before the window
    await u.pass();
    expect(state()).toEqual({ blob: 'local', frames: 'local', inspections: 'committed' });
    f.clock.ms = Date.UTC(2026, 10, 21, 22, 0);
    await u.pass();
    expect(state()).toEqual({ blob: 'committed', frames: 'committed', inspections: 'committed' });
  });

  it('an upload repeated after a crash (object stored, not marked) verifies the object instead of writing another', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    const { u } = uploader(f, f.warm, f.config());
    await u.pass();
    const row = f.map.all()[0]!;
    // Roll the row back to what a crash right after the put leaves behind.
    f.db.prepare(`UPDATE tier_files SET state = 'local', uploaded_us = NULL, committed_us = NULL WHERE id = ?`).run(row.id);
    const again = uploader(f, f.warm, f.config());
    await again.u.pass();
    expect(again.u.stats).toMatchObject({ uploaded: 1, alreadyThere: 1, uploadedBytes: 0 });
    expect(f.map.get(row.id)!.state).toBe('committed');
    expect(await listKeys(f.warm)).toEqual([row.object_key]);
  });

  it('hands uploaded files to the catalog and commits only what it answers', async () => {
    f = await createTieringFixture();
    f.addL1('inspections');
    f.addL1('readings');
    const offered: number[][] = [];
    let accept = 0; // the catalog is down
    const catalog: CatalogHandoff = {
      name: 'test',
      commit: async (files) => {
        offered.push(files.map((x) => x.id));
        return files.slice(0, accept).map((x) => x.id);
      },
      archived: async () => {},
    };
    const { u } = uploader(f, f.warm, f.config(), catalog);
    await u.pass();
    expect(f.map.all().map((r) => r.state)).toEqual(['uploaded', 'uploaded']);
    accept = 1; // its outbox commits one of them
    await u.commitUploaded();
    expect(f.map.all().map((r) => r.state)).toEqual(['committed', 'uploaded']);
    accept = 10;
    await u.pass();
    expect(f.map.all().map((r) => r.state)).toEqual(['committed', 'committed']);
    expect(offered.at(-1)).toEqual([f.map.all()[1]!.id]);
  });

  it('never deletes a local file', async () => {
    f = await createTieringFixture();
    const l1 = f.addL1('inspections');
    const blob = f.addBlob();
    await uploader(f, f.warm, f.config()).u.pass();
    const { existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    expect(existsSync(join(f.stateDir, l1.path))).toBe(true);
    expect(existsSync(blob.path)).toBe(true);
  });
});

describe('uploader stop', () => {
  it('cuts a slow, capped upload short: the file stays local with no attempt counted, and goes after a restart', async () => {
    const f = await createTieringFixture();
    try {
      f.addL1('inspections', { bytes: 2_000_000 });
      const { TokenBucket } = await import('../../../tiering/token-bucket.ts');
      const log = recordingLogger();
      const slow = new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config: f.config(), stateDir: f.stateDir, context: CONTEXT, logger: log.logger, nowMs: f.nowMs, bucket: new TokenBucket(100_000) });
      const running = slow.pass();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await slow.stop(); // would take ~20 s at 100 kB/s if it waited
      await running;
      expect(f.map.all()[0]).toMatchObject({ state: 'local', attempts: 0 });
      expect(await listKeys(f.warm)).toEqual([]);
      const again = uploader(f, f.warm, f.config());
      await again.u.pass();
      expect(f.map.all()[0]!.state).toBe('committed');
    } finally {
      f.close();
    }
  });
});
