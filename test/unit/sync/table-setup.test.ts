// TableSetup against a table as a Java REST catalog leaves it: created with fresh field
// ids, so `plant` (sent as PLANT_FIELD_ID) has the next id after the dataset's columns.
// The table must be taken as it is (no schema commit, no error); a new dataset column
// whose id the catalog gave to plant is refused with an error naming both.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../agent/log.ts';
import { resolveDataset } from '../../../config/dataset.ts';
import { datasetSchema } from '../../../config/schema.ts';
import type { TableIdent } from '../../../sync/catalog.ts';
import { FileSystemCatalog } from '../../../sync/fs-catalog.ts';
import type { TableRequirement, TableUpdate } from '../../../sync/iceberg/metadata.ts';
import { partitionSpecFor, PLANT_FIELD_ID, tableSchemaFor } from '../../../sync/iceberg/table-schema.ts';
import { TableSetup } from '../../../sync/table-setup.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';

const dataset = (columns: string[]) =>
  resolveDataset(
    datasetSchema.parse({
      name: 'frames',
      time_column: 'ts',
      columns: columns.map((name) => ({ name, type: 'string', nullable: false })),
      partition_by: ['line'],
    }),
  );

class CountingCatalog extends FileSystemCatalog {
  commits = 0;
  override commit(t: TableIdent, r: TableRequirement[], u: TableUpdate[]) {
    this.commits++;
    return super.commit(t, r, u);
  }
}

describe('TableSetup on a table whose ids the catalog assigned', () => {
  let dir: string;
  let catalog: CountingCatalog;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lakeside-table-setup-'));
    const store = new FileObjectStore(pathToFileURL(dir).href);
    await store.start();
    catalog = new CountingCatalog({ store, rootPrefix: 'iceberg' });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The table as the Apache REST fixture creates it: plant renumbered to the next free id. */
  const createRenumbered = async (columns: string[]) => {
    const ds = dataset(columns);
    const schema = tableSchemaFor(ds, 0);
    const plantId = schema.fields.length; // ts, the columns, then plant
    const fields = schema.fields.map((f) => (f.id === PLANT_FIELD_ID ? { ...f, id: plantId } : f));
    const spec = partitionSpecFor(ds);
    await catalog.createTable(
      { namespace: ['lakeside'], name: 'frames' },
      { schema: { ...schema, fields }, spec: { ...spec, fields: spec.fields.map((f) => (f['source-id'] === PLANT_FIELD_ID ? { ...f, 'source-id': plantId } : f)) }, properties: {} },
    );
    return plantId;
  };

  it('takes the table as it is: no schema commit, plant found by name', async () => {
    const plantId = await createRenumbered(['line', 'file']);
    const setup = new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() });
    const table = await setup.ensure(dataset(['line', 'file']));
    expect(catalog.commits).toBe(0);
    const fields = table.metadata.schemas[0]!.fields;
    expect(fields.find((f) => f.name === 'plant')!.id).toBe(plantId);
  });

  it('refuses a new dataset column whose id the catalog gave to plant (an error naming it, no commit)', async () => {
    await createRenumbered(['line']);
    const setup = new TableSetup({ catalog, namespace: ['lakeside'], properties: {}, logger: silentLogger() });
    // `file` gets the dataset's id 3, which the catalog gave to plant: another column under that id.
    await expect(setup.ensure(dataset(['line', 'file']))).rejects.toThrow(/field id 3 is "plant"/);
    expect(catalog.commits).toBe(0);
  });
});
