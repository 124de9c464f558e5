import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CatalogError } from '../../../sync/catalog.ts';
import { FileSystemCatalog } from '../../../sync/fs-catalog.ts';
import { parseIcebergJson } from '../../../sync/iceberg/json.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { append, BIG_ID, schema, spec } from './fixtures.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function catalogOn(dir?: string) {
  const root = dir ?? mkdtempSync(join(tmpdir(), 'lakeside-fscat-'));
  if (!dir) dirs.push(root);
  const store = new FileObjectStore(root);
  await store.start();
  return { root, store, catalog: new FileSystemCatalog({ store, rootPrefix: 'iceberg' }) };
}

const ident = { namespace: ['plant', 'lines'], name: 'readings' };
const create = { schema, spec, properties: { 'lakeside.dataset': 'readings' } };
const metaDir = (root: string) => join(root, 'iceberg', 'plant', 'lines', 'readings', 'metadata');

describe('FileSystemCatalog', () => {
  it('creates a table as v1 with a hint, at <root>/<ns…>/<table>, and loads it', async () => {
    const { root, catalog } = await catalogOn();
    expect(await catalog.loadTable(ident)).toBeNull();
    const created = await catalog.createTable(ident, create);
    const tableDir = join(root, 'iceberg', 'plant', 'lines', 'readings');
    expect(created.metadataLocation).toBe(`${pathToFileURL(tableDir).href}/metadata/v1.metadata.json`);
    expect(created.metadata.location).toBe(pathToFileURL(tableDir).href);
    expect(readFileSync(join(metaDir(root), 'version-hint.text'), 'utf8')).toBe('1');
    const loaded = await catalog.loadTable(ident);
    expect(loaded).toEqual(created);
    // A second create (another agent, a restart) returns the existing table.
    expect((await catalog.createTable(ident, create)).metadata['table-uuid']).toBe(created.metadata['table-uuid']);
  });

  it('commits a chain of appends, one version each; big snapshot ids keep every digit on disk', async () => {
    const { root, catalog } = await catalogOn();
    const t = await catalog.createTable(ident, create);
    const first = await catalog.commit(ident, [{ type: 'assert-table-uuid', uuid: t.metadata['table-uuid'] }, { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null }], append(BIG_ID, 1, null));
    expect(first.kind).toBe('committed');
    const second = await catalog.commit(ident, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': BIG_ID }], append(BIG_ID + 2n, 2, BIG_ID));
    expect(second).toMatchObject({ kind: 'committed' });
    if (second.kind !== 'committed') throw new Error('unreachable');
    expect(second.table.metadataLocation).toMatch(/\/metadata\/v3\.metadata\.json$/);
    expect(second.table.metadata['metadata-log']!.map((e) => e['metadata-file'].replace(/.*\//, ''))).toEqual(['v1.metadata.json', 'v2.metadata.json']);
    const text = readFileSync(join(metaDir(root), 'v3.metadata.json'), 'utf8');
    expect(text).toContain('"current-snapshot-id":9007199254740995');
    const loaded = await catalog.loadTable(ident);
    expect(loaded!.metadata['current-snapshot-id']).toBe(BIG_ID + 2n);
    expect(loaded!.metadata).toEqual(parseIcebergJson(text));
  });

  it('a stale commit is a conflict and writes nothing', async () => {
    const { root, catalog } = await catalogOn();
    await catalog.createTable(ident, create);
    await catalog.commit(ident, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null }], append(1n, 1, null));
    const stale = await catalog.commit(ident, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null }], append(2n, 1, null));
    expect(stale).toMatchObject({ kind: 'conflict', detail: expect.stringMatching(/ref main is at 1/) });
    expect(existsSync(join(metaDir(root), 'v3.metadata.json'))).toBe(false);
  });

  it('of two commits racing on one head, exactly one is committed and the other is a conflict', async () => {
    const { root } = await catalogOn();
    // Two agents (two catalogs, two stores) on the same directory.
    const a = (await catalogOn(root)).catalog;
    const b = (await catalogOn(root)).catalog;
    await a.createTable(ident, create);
    for (let round = 0; round < 10; round += 1) {
      const head = (await a.loadTable(ident))!.metadata;
      const parent = head['current-snapshot-id'] ?? null;
      const seq = head['last-sequence-number'] + 1;
      const req = [{ type: 'assert-ref-snapshot-id' as const, ref: 'main', 'snapshot-id': parent }];
      const outcomes = await Promise.all([a.commit(ident, req, append(BigInt(100 + 2 * round), seq, parent)), b.commit(ident, req, append(BigInt(101 + 2 * round), seq, parent))]);
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['committed', 'conflict']);
    }
    const final = (await b.loadTable(ident))!.metadata;
    expect(final.snapshots).toHaveLength(10);
    expect(final['last-sequence-number']).toBe(10);
  });

  it('finds the head when the hint lags or is missing', async () => {
    const { root, catalog } = await catalogOn();
    await catalog.createTable(ident, create);
    await catalog.commit(ident, [], append(1n, 1, null));
    await catalog.commit(ident, [], append(2n, 2, 1n));
    writeFileSync(join(metaDir(root), 'version-hint.text'), '1');
    expect((await catalog.loadTable(ident))!.metadataLocation).toMatch(/v3\.metadata\.json$/);
    rmSync(join(metaDir(root), 'version-hint.text'));
    expect((await catalog.loadTable(ident))!.metadata['current-snapshot-id']).toBe(2n);
    writeFileSync(join(metaDir(root), 'version-hint.text'), '40');
    expect((await catalog.loadTable(ident))!.metadata['current-snapshot-id']).toBe(2n);
  });

  it('a commit to a missing table, a malformed commit and a bad name are CatalogErrors, not retriable', async () => {
    const { catalog } = await catalogOn();
    await expect(catalog.commit(ident, [], append(1n, 1, null))).rejects.toMatchObject({ code: 'CATALOG_NO_SUCH_TABLE', retriable: false });
    await catalog.createTable(ident, create);
    await expect(catalog.commit(ident, [], append(1n, 0, null))).rejects.toMatchObject({ code: 'CATALOG_BAD_COMMIT', retriable: false });
    await expect(catalog.loadTable({ namespace: ['..'], name: 'x' })).rejects.toBeInstanceOf(CatalogError);
  });

  it('drops expired snapshots at each commit, so the metadata stops growing; the chain goes on from the head', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lakeside-fscat-'));
    dirs.push(root);
    const store = new FileObjectStore(root);
    await store.start();
    const clock = { now: 1_700_000_000_000 };
    const catalog = new FileSystemCatalog({ store, rootPrefix: 'iceberg', now: () => clock.now, expiry: { maxAgeMs: 60_000, minToKeep: 3 } });
    await catalog.createTable(ident, create);
    let parent: bigint | null = null;
    for (let i = 1; i <= 30; i++) {
      clock.now += 10_000; // a commit every 10 s
      const updates = append(BigInt(i), i, parent);
      (updates[0] as { snapshot: { 'timestamp-ms': number } }).snapshot['timestamp-ms'] = clock.now;
      expect((await catalog.commit(ident, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': parent }], updates)).kind).toBe('committed');
      parent = BigInt(i);
    }
    const loaded = (await catalog.loadTable(ident))!;
    // Younger than 60 s at the last commit: 25..30 (24 is exactly 60 s old).
    expect(loaded.metadata.snapshots!.map((s) => Number(s['snapshot-id']))).toEqual([25, 26, 27, 28, 29, 30]);
    expect(loaded.metadata['current-snapshot-id']).toBe(30n);
    expect(loaded.metadata['snapshot-log']!.map((e) => Number(e['snapshot-id']))).toEqual([25, 26, 27, 28, 29, 30]);
    // On disk as well, and the count stays flat from commit to commit.
    const snapshotsIn = (version: number) => (parseIcebergJson(readFileSync(join(metaDir(root), `v${version}.metadata.json`), 'utf8')) as { snapshots: unknown[] }).snapshots.length;
    expect([snapshotsIn(11), snapshotsIn(21), snapshotsIn(31)]).toEqual([6, 6, 6]);
  });
});
