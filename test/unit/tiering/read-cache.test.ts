import { readFileSync, existsSync, mkdtempSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { BlobReadCache } from '../../../tiering/read-cache.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { NO_CATALOG } from '../../../tiering/catalog-handoff.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

describe('blob read cache', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  /** Blobs uploaded, committed and evicted (local file gone), as the evictor leaves them. */
  async function evictedBlobs(n: number, bytes: number) {
    f = await createTieringFixture();
    const blobs = Array.from({ length: n }, () => f.addBlob({ bytes }));
    await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'p', agentId: 'a' }, 0);
    await new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config: f.config(), stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: recordingLogger().logger, nowMs: f.nowMs }).pass();
    const contents = blobs.map((b) => readFileSync(b.path));
    for (const b of blobs) unlinkSync(b.path);
    f.db.prepare(`UPDATE tier_files SET local_state = 'evicted'`).run();
    return { blobs, contents };
  }

  it('fetches an evicted blob from warm, verified, and serves it from the cache afterwards', async () => {
    const { blobs, contents } = await evictedBlobs(1, 5000);
    const cache = new BlobReadCache({ dir: mkdtempSync(join(tmpdir(), 'lakeside-cache-')), maxBytes: 1e6, map: f.map, warm: f.warm, cold: null });
    await cache.start();
    const [a, b] = await Promise.all([cache.fetch(blobs[0]!.sha256), cache.fetch(blobs[0]!.sha256)]);
    expect(a).toBe(b);
    expect(readFileSync(a!).equals(contents[0]!)).toBe(true);
    expect(cache.sizeBytes).toBe(5000);
    // From the cache now: warm is not asked again.
    await f.warm.delete(f.map.all()[0]!.object_key);
    expect(await cache.fetch(blobs[0]!.sha256)).toBe(a);
  });

  it('stays within its byte budget, least recently used out first', async () => {
    const { blobs } = await evictedBlobs(4, 4000);
    const cache = new BlobReadCache({ dir: mkdtempSync(join(tmpdir(), 'lakeside-cache-')), maxBytes: 10_000, map: f.map, warm: f.warm, cold: null });
    await cache.start();
    const p0 = (await cache.fetch(blobs[0]!.sha256))!;
    const p1 = (await cache.fetch(blobs[1]!.sha256))!;
    await cache.fetch(blobs[0]!.sha256); // 0 used again: 1 is now the oldest
    const p2 = (await cache.fetch(blobs[2]!.sha256))!;
    expect(cache.sizeBytes).toBeLessThanOrEqual(10_000);
    expect([existsSync(p0), existsSync(p1), existsSync(p2)]).toEqual([true, false, true]);
    // A restart rebuilds the cache from its directory, still within budget.
    const again = new BlobReadCache({ dir: join(p0, '..'), maxBytes: 10_000, map: f.map, warm: f.warm, cold: null });
    await again.start();
    expect(again.sizeBytes).toBe(8000);
  });

  it('fetches nothing for a blob that is still local or not committed', async () => {
    f = await createTieringFixture();
    const local = f.addBlob();
    await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'p', agentId: 'a' }, 0);
    const cache = new BlobReadCache({ dir: mkdtempSync(join(tmpdir(), 'lakeside-cache-')), maxBytes: 1e6, map: f.map, warm: f.warm, cold: null });
    await cache.start();
    expect(await cache.fetch(local.sha256)).toBeNull();
    expect(await cache.fetch('0'.repeat(64))).toBeNull();
  });
});
