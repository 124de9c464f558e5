// TableSetup against a catalog that renumbers fields on create, the way Iceberg Java's
// catalogs do (TableMetadata.newTableMetadata assigns ids from 1, the spec follows by
// column name): the table must end up with the dataset's ids and spec before anything
// is written, and a table already written under other ids is refused, not looped on.
// The file-system catalog underneath does the storing; integration/iceberg-e2e proves
// the same against the Apache REST fixture.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { silentLogger } from '../../../agent/log.ts';
import type { Catalog, CommitOptions, CreateTableRequest, TableIdent } from '../../../sync/catalog.ts';
import { FileSystemCatalog } from '../../../sync/fs-catalog.ts';
import type { TableRequirement, TableUpdate } from '../../../sync/iceberg/metadata.ts';
import { partitionSpecFor, tableSchemaFor } from '../../../sync/iceberg/table-schema.ts';
import { TableSetup } from '../../../sync/table-setup.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { append } from './fixtures.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The file-system catalog, but creating tables with fresh ids 1..n like Iceberg Java; counts commits. */
class RenumberingCatalog implements Catalog {
  readonly description = 'renumbering';
  readonly renumbersFieldsOnCreate = true;
  readonly inner: Catalog;
  commits = 0;
  constructor(inner: Catalog) {
    this.inner = inner;
  }
  ensureNamespace(ns: string[]) {
    return this.inner.ensureNamespace(ns);
  }
  loadTable(t: TableIdent) {
    return this.inner.loadTable(t);
  }
  createTable(t: TableIdent, r: CreateTableRequest) {
    const fresh = new Map(r.schema.fields.map((f, i) => [f.id, i + 1]));
    return this.inner.createTable(t, {
      ...r,
      schema: { ...r.schema, fields: r.schema.fields.map((f) => ({ ...f, id: fresh.get(f.id)! })) },
      spec: { ...r.spec, fields: r.spec.fields.map((f) => ({ ...f, 'source-id': fresh.get(f['source-id'])! })) },
    });
  }
  commit(t: TableIdent, req: TableRequirement[], upd: TableUpdate[], options?: CommitOptions) {
    this.commits++;
    return this.inner.commit(t, req, upd, options);
  }
  close() {
    return this.inner.close();
  }
}

/** The readings dataset (field ids 10-12), with `extra` columns after its own. */
function readings(extra: object[] = []) {
  return resolveDataset(
    datasetSchema.parse({
      name: 'readings',
      time_column: 'ts',
      time_field_id: 10,
      columns: [{ name: 'line', type: 'string', nullable: false, field_id: 11 }, { name: 'value', type: 'double', field_id: 12 }, ...extra],
      partition_by: ['line'],
    }),
  );
}
const dataset = readings();

async function setUp() {
  const root = mkdtempSync(join(tmpdir(), 'lakeside-table-setup-'));
  dirs.push(root);
  const store = new FileObjectStore(root);
  await store.start();
  const catalog = new RenumberingCatalog(new FileSystemCatalog({ store, rootPrefix: 'iceberg' }));
  return { catalog, setup: new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() }) };
}

describe('TableSetup with a catalog that renumbers fields on create', () => {
  it("gives the new table the dataset's field ids and partition spec in one commit, and leaves it alone after", async () => {
    const { catalog, setup } = await setUp();
    const table = await setup.ensure(dataset);
    const m = table.metadata;
    const current = m.schemas.find((s) => s['schema-id'] === m['current-schema-id'])!;
    expect(current.fields).toEqual(tableSchemaFor(dataset).fields);
    const spec = m['partition-specs'].find((s) => s['spec-id'] === m['default-spec-id'])!;
    expect(spec.fields.map((f) => [f['source-id'], f.transform, f.name])).toEqual(partitionSpecFor(dataset).fields.map((f) => [f['source-id'], f.transform, f.name]));
    expect(m.snapshots ?? []).toEqual([]);
    expect(catalog.commits).toBe(1);
    // Aligned: a second setup (another start) commits nothing.
    await new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() }).ensure(dataset);
    expect(catalog.commits).toBe(1);
  });

  it('refuses a table that already has snapshots under other field ids', async () => {
    const { catalog } = await setUp();
    const ident = { namespace: ['lakeside'], name: 'readings' };
    await catalog.ensureNamespace(['lakeside']);
    const created = await catalog.createTable(ident, { schema: tableSchemaFor(dataset), spec: { 'spec-id': 0, fields: [] }, properties: {} });
    expect((await catalog.commit(ident, [], append(1n, 1, null))).kind).toBe('committed');
    expect(created.metadata.schemas[0]!.fields[0]!.id).toBe(1);
    const setup = new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() });
    await expect(setup.ensure(dataset)).rejects.toMatchObject({ code: 'CATALOG_SCHEMA_MISMATCH' });
  });
});

describe('TableSetup schema evolution', () => {
  it('adds a column the dataset gained, with its field id and optional, keeping every existing id; then commits nothing more', async () => {
    const { catalog, setup } = await setUp();
    const ident = { namespace: ['lakeside'], name: 'readings' };
    const first = await setup.ensure(dataset);
    // Data written under the first schema (a snapshot), so the new column must be optional.
    expect((await catalog.commit(ident, [], append(1n, 1, null))).kind).toBe('committed');
    const commitsBefore = catalog.commits;
    const grown = readings([{ name: 'unit', type: 'string', nullable: false, field_id: 13 }]);
    const evolved = await new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() }).ensure(grown);
    const m = evolved.metadata;
    const current = m.schemas.find((s) => s['schema-id'] === m['current-schema-id'])!;
    expect(m['current-schema-id']).not.toBe(first.metadata['current-schema-id']);
    expect(current.fields.find((f) => f.name === 'unit')).toEqual({ id: 13, name: 'unit', required: false, type: 'string' });
    const before = first.metadata.schemas.find((s) => s['schema-id'] === first.metadata['current-schema-id'])!;
    for (const f of before.fields) expect(current.fields.find((g) => g.id === f.id)).toEqual(f);
    expect(catalog.commits).toBe(commitsBefore + 1);
    await new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() }).ensure(grown);
    expect(catalog.commits).toBe(commitsBefore + 1);
  });
});
