// TableSetup against a table whose columns were renumbered by the catalog (Java REST
// catalogs reassign ids on a plain create): refused by name, never evolved in a loop.
import { describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import { silentLogger } from '../../../agent/log.ts';
import { CatalogError, type Catalog } from '../../../sync/catalog.ts';
import { newTableMetadata } from '../../../sync/iceberg/apply-updates.ts';
import { partitionSpecFor, tableSchemaFor } from '../../../sync/iceberg/table-schema.ts';
import type { LoadedTable } from '../../../sync/iceberg/metadata.ts';
import { TableSetup } from '../../../sync/table-setup.ts';

const dataset = resolveDataset(datasetSchema.parse({ name: 'readings', time_column: 'ts', columns: [{ name: 'line', type: 'string', nullable: false }, { name: 'value', type: 'double' }] }));

function catalogWith(table: LoadedTable): Catalog & { commits: number } {
  return {
    description: 'fake',
    commits: 0,
    ensureNamespace: async () => {},
    loadTable: async () => table,
    createTable: async () => table,
    async commit() {
      this.commits++;
      return { kind: 'conflict', detail: 'fake' };
    },
    close: async () => {},
  };
}

describe('TableSetup', () => {
  it('accepts a table with the dataset ids, and refuses one whose plant column was renumbered', async () => {
    const schema = tableSchemaFor(dataset, 0);
    const good = { metadataLocation: null, config: {}, metadata: newTableMetadata({ location: 'file:///t', schema, spec: partitionSpecFor(dataset), properties: {}, nowMs: 0 }) };
    expect(await new TableSetup({ catalog: catalogWith(good), namespace: ['ns'], properties: {}, logger: silentLogger() }).ensure(dataset)).toBe(good);

    const renumbered = structuredClone(schema);
    const plant = renumbered.fields.find((f) => f.name === 'plant')!;
    plant.id = renumbered.fields.length;
    const bad = { metadataLocation: null, config: {}, metadata: newTableMetadata({ location: 'file:///t', schema: renumbered, spec: { 'spec-id': 0, fields: [] }, properties: {}, nowMs: 0 }) };
    const catalog = catalogWith(bad);
    const refused = await new TableSetup({ catalog, namespace: ['ns'], properties: {}, logger: silentLogger() }).ensure(dataset).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CatalogError);
    expect(refused).toMatchObject({ code: 'CATALOG_SCHEMA_MISMATCH', retriable: false });
    expect((refused as Error).message).toMatch(/column "plant" has field id 4 in the catalog but 100000/);
    expect(catalog.commits).toBe(0);
  });
});
