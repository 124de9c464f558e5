import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Archiver } from '../../../tiering/archiver.ts';
import type { CatalogHandoff } from '../../../tiering/catalog-handoff.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import type { ObjectStore, PutSource } from '../../../tiering/stores/object-store.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { listKeys } from '../../support/object-store-contract.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

const DAY_MS = 86_400_000;

describe('archiver (warm → cold, expiry)', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  async function setUp(patch: Record<string, unknown> = {}) {
    f = await createTieringFixture();
    const old = f.addL1('inspections', { ageHours: 24 * 100 });
    const young = f.addL1('inspections', { ageHours: 24 * 10 });
    const cold = new FileObjectStore(mkdtempSync(join(tmpdir(), 'lakeside-cold-')));
    await cold.start();
    const config = f.config({ warm_retention_days: 90, ...patch });
    await new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: { name: 'x', commit: async (files) => files.map((x) => x.id), archived: async () => {} }, config, stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: recordingLogger().logger, nowMs: f.nowMs }).pass();
    const repointed: string[] = [];
    const catalog: CatalogHandoff = { name: 'test', commit: async () => [], archived: async (file) => void repointed.push(file.object_key) };
    const archiver = (warm: ObjectStore = f.warm) => new Archiver({ map: f.map, warm, cold, catalog, config, stateDir: f.stateDir, logger: recordingLogger().logger, nowMs: f.nowMs });
    return { old, young, cold, repointed, archiver };
  }

  it('copies data past the warm retention to cold, re-points the catalog, then deletes warm; the rest stays', async () => {
    const { old, young, cold, repointed, archiver } = await setUp();
    const oldKey = f.map.byPath(old.path)!.object_key;
    const youngKey = f.map.byPath(young.path)!.object_key;
    expect(await archiver().pass()).toEqual({ archived: 1, expired: 0, failed: 0 });
    expect(f.map.byPath(old.path)!.state).toBe('archived');
    expect(f.map.byPath(young.path)!.state).toBe('committed');
    expect(await listKeys(cold)).toEqual([oldKey]);
    expect((await cold.head(oldKey))!.sha256).toBe(f.map.byPath(old.path)!.sha256);
    expect(await listKeys(f.warm)).toEqual([youngKey]);
    expect(repointed).toEqual([oldKey]);
    expect(await archiver().pass()).toEqual({ archived: 0, expired: 0, failed: 0 });
  });

  it('writes cold objects in the cold store\'s archival storage class', async () => {
    const { old, cold } = await setUp();
    const classes: (string | undefined)[] = [];
    const recordingCold = Object.assign(Object.create(cold) as ObjectStore, {
      description: cold.description,
      put: (key: string, source: PutSource) => {
        classes.push(source.storageClass);
        return cold.put(key, source);
      },
    });
    // The class comes from tiering.cold (an S3 store in a real config; the test writes to a directory).
    const config = f.config({ warm_retention_days: 90, cold: { url: 's3://plant-archive/ulm', storage_class: 'GLACIER_IR' } });
    const archiver = new Archiver({ map: f.map, warm: f.warm, cold: recordingCold, catalog: { name: 'test', commit: async () => [], archived: async () => {} }, config, stateDir: f.stateDir, logger: recordingLogger().logger, nowMs: f.nowMs });
    expect(await archiver.pass()).toMatchObject({ archived: 1 });
    expect(classes).toEqual(['GLACIER_IR']);
    expect(f.map.byPath(old.path)!.state).toBe('archived');
  });

  it('resumes after a crash between the warm delete and the tier-map update', async () => {
    const { old, cold, archiver } = await setUp();
    const key = f.map.byPath(old.path)!.object_key;
    // What the crash left: cold written, warm deleted, the row still committed.
    const dyingWarm = Object.assign(Object.create(f.warm) as ObjectStore, { delete: async () => Promise.reject(new Error('crash before the warm delete')) });
    await archiver(dyingWarm).pass();
    expect(f.map.byPath(old.path)!.state).toBe('committed');
    await f.warm.delete(key);
    expect(await archiver().pass()).toMatchObject({ archived: 1, failed: 0 });
    expect(f.map.byPath(old.path)!.state).toBe('archived');
    expect(await listKeys(cold)).toEqual([key]);
  });

  it('never deletes warm when the cold copy cannot be verified', async () => {
    const { old, archiver } = await setUp();
    const key = f.map.byPath(old.path)!.object_key;
    f.db.prepare(`UPDATE tier_files SET sha256 = ? WHERE local_path = ?`).run('0'.repeat(64), old.path);
    expect(await archiver().pass()).toMatchObject({ archived: 0, failed: 1 });
    expect(await f.warm.head(key)).not.toBeNull();
    expect(f.map.byPath(old.path)!.state).toBe('committed');
  });

  it('expires archived data past the cold retention', async () => {
    const { old, cold, archiver } = await setUp({ cold_retention_days: 105 });
    await archiver().pass();
    expect(f.map.byPath(old.path)!.state).toBe('archived');
    f.clock.ms += 10 * DAY_MS; // the data is now 110 days old
    expect(await archiver().pass()).toMatchObject({ expired: 1 });
    expect(f.map.byPath(old.path)!.state).toBe('expired');
    expect(await listKeys(cold)).toEqual([]);
  });
});
