// The committer against the file-system catalog in a local warm store, with a wrapper
// catalog that injects the outcomes a REST catalog can give: applied-then-unknown, a
// foreign commit racing ours (conflict), an outage, a crash after the catalog applied.
// Each asserts the table's live files: every file exactly once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { catalogSchema, type CatalogConfig } from '../../../config/catalog-schema.ts';
import { silentLogger } from '../../../agent/log.ts';
import { CatalogError, type Catalog, type CommitOptions, type CommitOutcome, type TableIdent } from '../../../sync/catalog.ts';
import { Committer } from '../../../sync/committer.ts';
import { reconcile } from '../../../sync/reconcile.ts';
import { FileSystemCatalog } from '../../../sync/fs-catalog.ts';
import { readManifest, ENTRY_STATUS } from '../../../sync/iceberg/manifest.ts';
import { readManifestList } from '../../../sync/iceberg/manifest-list.ts';
import { refHead, ancestry, type TableRequirement, type TableUpdate, type LoadedTable } from '../../../sync/iceberg/metadata.ts';
import { locationOf, storeLocation, StoreTableFileIO } from '../../../sync/table-io-stores.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { uploadedFile as makeUploadedFile } from './uploaded-file.ts';
import type { TierRecord } from '../../../tiering/tier-map.ts';
import { createTieringFixture, DATASETS, type TieringFixture } from '../tiering/fixture.ts';

const PLANT = 'ulm';

/** A catalog wrapper whose next commit outcome a test scripts. */
class ScriptedCatalog implements Catalog {
  readonly description = 'scripted';
  readonly inner: Catalog;
  commits = 0;
  /** Runs before the real commit; may return an outcome instead of committing, or commit and then return one. */
  script: ((call: number, commit: () => Promise<CommitOutcome>) => Promise<CommitOutcome>) | null = null;
  constructor(inner: Catalog) {
    this.inner = inner;
  }
  ensureNamespace(ns: string[]) {
    return this.inner.ensureNamespace(ns);
  }
  loadTable(t: TableIdent) {
    return this.inner.loadTable(t);
  }
  createTable(t: TableIdent, r: Parameters<Catalog['createTable']>[1]) {
    return this.inner.createTable(t, r);
  }
  async commit(t: TableIdent, req: TableRequirement[], upd: TableUpdate[], options?: CommitOptions): Promise<CommitOutcome> {
    const call = this.commits++;
    const real = () => this.inner.commit(t, req, upd, options);
    return this.script ? this.script(call, real) : real();
  }
  close() {
    return this.inner.close();
  }
}

describe('committer (file-system catalog, scripted outcomes)', () => {
  let fx: TieringFixture;
  let warm: FileObjectStore;
  let fsCatalog: FileSystemCatalog;
  let scripted: ScriptedCatalog;
  let io: StoreTableFileIO;
  const committers: Committer[] = [];

  const config = (patch: Partial<CatalogConfig> = {}): CatalogConfig => ({ ...catalogSchema.parse({ commit_interval_seconds: 0.001 }), ...patch });

  const startCommitter = async (options: { agentId?: string; dbPath?: string; stateDir?: string; catalog?: Catalog; config?: CatalogConfig } = {}): Promise<Committer> => {
    const base = storeLocation(warm);
    const committer = new Committer({
      dbPath: options.dbPath ?? fx.dbPath,
      stateDir: options.stateDir ?? fx.stateDir,
      catalog: options.catalog ?? scripted,
      io,
      config: options.config ?? config(),
      datasets: DATASETS,
      plant: PLANT,
      agentId: options.agentId ?? 'ulm-1',
      warmLocation: (key) => locationOf(base, key),
      coldLocation: (key) => locationOf(base.replace(/\/?$/, '-cold'), key),
      logger: silentLogger(),
    });
    await committer.start();
    committers.push(committer);
    return committer;
  };

  const uploadedFile = async (dataset = 'inspections', agentId = 'ulm-1', on: TieringFixture = fx): Promise<TierRecord> => makeUploadedFile(on, { dataset, agentId, plant: PLANT });

  const table = async (dataset = 'inspections'): Promise<LoadedTable> => (await fsCatalog.loadTable({ namespace: ['lakeside'], name: dataset }))!;

  /** Live data file paths of the table's current snapshot, with their multiplicity. */
  const liveFiles = async (dataset = 'inspections'): Promise<string[]> => {
    const head = refHead((await table(dataset)).metadata);
    if (!head) return [];
    const out: string[] = [];
    for (const m of readManifestList(await io.read(head['manifest-list'])).manifests) {
      for (const e of readManifest(await io.read(m.manifest_path)).entries) if (e.status !== ENTRY_STATUS.DELETED) out.push(e.data_file.file_path);
    }
    return out.sort();
  };

  const expectOnce = async (files: TierRecord[], dataset = 'inspections') => {
    const live = await liveFiles(dataset);
    expect(new Set(live).size, 'no file twice').toBe(live.length);
    for (const f of files) expect(live.filter((p) => p.endsWith(f.object_key)), f.object_key).toHaveLength(1);
  };

  beforeEach(async () => {
    fx = await createTieringFixture();
    warm = fx.warm;
    fsCatalog = new FileSystemCatalog({ store: warm, rootPrefix: 'iceberg' });
    scripted = new ScriptedCatalog(fsCatalog);
    io = new StoreTableFileIO({ mounts: [{ base: storeLocation(warm), store: warm }] });
  });

  afterEach(async () => {
    for (const c of committers.splice(0)) await c.stop();
    fx.close();
  });

  it('commits uploaded files once, with the markers, and marks them committed in the tier map', async () => {
    const committer = await startCommitter();
    const files = [await uploadedFile(), await uploadedFile(), await uploadedFile()];
    expect(await committer.commit(files)).toEqual([]);
    await committer.pass();
    await expectOnce(files);
    const head = refHead((await table()).metadata)!;
    expect(head.summary).toMatchObject({ operation: 'append', 'lakeside.agent-id': 'ulm-1', 'lakeside.plant': PLANT, 'lakeside.commit-seq': '1', 'added-data-files': '3', 'added-records': '30' });
    for (const f of files) expect(fx.map.get(f.id)!.state).toBe('committed');
    // Offered again (a crash before tiering recorded it): recognised, never appended twice.
    expect((await committer.commit(files)).sort()).toEqual(files.map((f) => f.id).sort());
    await committer.pass();
    expect([...ancestry((await table()).metadata)]).toHaveLength(1);
  });

  it('at most one commit per interval: a file handed in during a commit waits; only a full batch (a backlog) goes on at once', async () => {
    const committer = await startCommitter({ config: config({ commit_interval_seconds: 3600, max_files_per_commit: 2 }) });
    const first = [await uploadedFile(), await uploadedFile(), await uploadedFile()];
    const late = await uploadedFile();
    scripted.script = async (call, commit) => {
      if (call === 1) await committer.commit([late]); // during the second commit, whose batch (one file) is not full
      return commit();
    };
    await committer.commit(first);
    await committer.pass();
    // Three files, two per commit: the backlog takes two commits; the late file waits for the interval.
    expect(scripted.commits).toBe(2);
    expect(fx.map.get(late.id)!.state).toBe('uploaded');
    await committer.pass();
    expect(scripted.commits).toBe(2);
    await expectOnce(first);
  });

  it('an unknown outcome after the catalog applied the commit: found by its marker, not committed twice', async () => {
    const committer = await startCommitter();
    const files = [await uploadedFile(), await uploadedFile()];
    scripted.script = async (call, commit) => {
      if (call === 0) {
        await commit();
        return { kind: 'unknown', detail: 'reset after the request was sent' };
      }
      return commit();
    };
    await committer.commit(files);
    await committer.pass();
    await expectOnce(files);
    expect([...ancestry((await table()).metadata)]).toHaveLength(1);
    expect(committer.stats.resolvedByMarker).toBe(1);
    for (const f of files) expect(fx.map.get(f.id)!.state).toBe('committed');
  });

  it('a conflict with another plant committing first: rebuilt on the new head, both agents\u2019 files once', async () => {
    const ours = await startCommitter();
    const otherFx = await createTieringFixture();
    try {
      const other = await startCommitter({ agentId: 'augsburg-1', dbPath: otherFx.dbPath, stateDir: otherFx.stateDir, catalog: fsCatalog });
      const mine = [await uploadedFile()];
      const theirs = [await uploadedFile('inspections', 'augsburg-1', otherFx)];
      await other.commit(theirs);
      await ours.commit(mine);
      // Ours loads the head, builds on it; the other agent commits first.
      scripted.script = async (call, commit) => {
        if (call === 0) await other.pass();
        return commit();
      };
      await ours.pass();
      expect(ours.stats.conflicts).toBeGreaterThanOrEqual(1);
      await expectOnce([...mine, ...theirs]);
    } finally {
      otherFx.close();
    }
  });

  it('the catalog down: files wait in the outbox, then commit once it is back', async () => {
    const committer = await startCommitter();
    const files = [await uploadedFile()];
    scripted.script = async () => {
      throw new CatalogError('CATALOG_UNREACHABLE', 'connect ECONNREFUSED', true);
    };
    await committer.commit(files);
    await committer.pass();
    await committer.pass();
    expect(fx.map.get(files[0]!.id)!.state).toBe('uploaded');
    expect(committer.outboxCounts()!.pendingCommits).toBe(1);
    scripted.script = null;
    await committer.pass();
    await expectOnce(files);
    expect(fx.map.get(files[0]!.id)!.state).toBe('committed');
  });

  it('a crash after the catalog applied the commit, before it was recorded: the restarted committer finds it', async () => {
    const first = await startCommitter();
    const files = [await uploadedFile(), await uploadedFile()];
    scripted.script = async (_call, commit) => {
      await commit();
      throw new Error('simulated crash after the commit was sent');
    };
    await first.commit(files);
    await first.pass();
    await first.stop();
    expect(fx.map.get(files[0]!.id)!.state).toBe('uploaded');
    scripted.script = null;
    const second = await startCommitter();
    await second.commit(files);
    await second.pass();
    await expectOnce(files);
    expect([...ancestry((await table()).metadata)]).toHaveLength(1);
    for (const f of files) expect(fx.map.get(f.id)!.state).toBe('committed');
  });

  it('fences a second instance with the same agent id, and lets an explicit take-over through', async () => {
    const first = await startCommitter();
    const files = [await uploadedFile()];
    await first.commit(files);
    await first.pass();
    // Another state directory (another landing.db) claiming the same agent id.
    const other = await createTieringFixture();
    try {
      const intruder = await startCommitter({ dbPath: other.dbPath, stateDir: other.stateDir });
      other.addL1('readings'); // another file name than the first agent's (same agent id, same naming)
      const record = await uploadedFile('inspections', 'ulm-1', other);
      await intruder.commit([record]);
      await intruder.pass();
      expect(intruder.fencedTables().get('inspections')).toBeDefined();
      expect(await liveFiles()).toHaveLength(1);
      expect(other.map.get(record.id)!.state).toBe('uploaded');
      await intruder.stop();
      committers.splice(committers.indexOf(intruder), 1);
      // The operator hands the agent id over explicitly.
      const holder = (await table()).metadata.snapshots![0]!.summary['lakeside.instance']!;
      const heir = await startCommitter({ dbPath: other.dbPath, stateDir: other.stateDir, config: config({ take_over_from: holder }) });
      await heir.pass();
      expect(await liveFiles()).toHaveLength(2);
    } finally {
      other.close();
    }
  });

  it('re-points an archived file to cold in one replace commit, and merges its manifests past the threshold', async () => {
    const committer = await startCommitter({ config: config({ manifest_merge_threshold: 2 }) });
    const files: TierRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const f = await uploadedFile();
      files.push(f);
      await committer.commit([f]);
      await committer.pass();
    }
    await expectOnce(files);
    const own = async () => readManifestList(await io.read(refHead((await table()).metadata)!['manifest-list'])).manifests.filter((m) => m.manifest_path.includes('/lakeside-ulm-1-')).length;
    expect(await own()).toBeLessThanOrEqual(2);
    await committer.archived(fx.map.get(files[0]!.id)!);
    const live = await liveFiles();
    expect(live).toHaveLength(3);
    expect(live.filter((p) => p.includes('-cold/'))).toEqual([expect.stringContaining(files[0]!.object_key)]);
    expect(refHead((await table()).metadata)!.summary.operation).toBe('replace');
    await committer.expired(fx.map.get(files[0]!.id)!);
    expect(await liveFiles()).toHaveLength(2);
  });

  it('reconciles: files the catalog holds but the local state lost are marked committed, never committed again', async () => {
    const committer = await startCommitter();
    const files = [await uploadedFile(), await uploadedFile()];
    await committer.commit(files);
    await committer.pass();
    await committer.stop();
    committers.splice(0);
    // A state restored from an old backup: the outbox and the tier map think the files are uploaded only.
    fx.db.prepare(`UPDATE sync_files SET state = 'waiting', seq = NULL`).run();
    fx.db.prepare(`UPDATE tier_files SET state = 'uploaded', committed_us = NULL`).run();
    const base = storeLocation(warm);
    const ctx = { db: fx.db, catalog: fsCatalog, io, namespace: ['lakeside'], datasets: DATASETS, plant: PLANT, agentId: 'ulm-1', warmLocation: (k: string) => locationOf(base, k), coldLocation: (k: string) => locationOf(`${base}-cold`, k) };
    const dry = await reconcile(ctx, false, 1);
    const inspections = dry.find((r) => r.dataset === 'inspections')!;
    expect(inspections.inCatalog).toBe(2);
    expect(inspections.markedCommitted).toHaveLength(2);
    expect(fx.map.get(files[0]!.id)!.state).toBe('uploaded'); // a dry run changes nothing
    const applied = await reconcile(ctx, true, 1);
    expect(applied.find((r) => r.dataset === 'inspections')!.markedCommitted).toHaveLength(2);
    for (const f of files) expect(fx.map.get(f.id)!.state).toBe('committed');
    const again = await startCommitter();
    await again.commit(files);
    await again.pass();
    expect([...ancestry((await table()).metadata)]).toHaveLength(1);
    await expectOnce(files);
    expect((await reconcile(ctx, false, 1)).find((r) => r.dataset === 'inspections')!).toMatchObject({ committedAndPresent: 2, markedCommitted: [], missingFromCatalog: [] });
  });
});
