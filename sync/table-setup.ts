/**
 * One Iceberg table per dataset: created on first use, its schema evolved when the
 * dataset gains a column.
 *
 * - Created with the dataset's schema (its stable field ids, plus the `plant` column),
 *   the partition spec `day(time), identity(plant), identity(partition_by…)`, format
 *   version 2 and the configured properties. A catalog that renumbers fields on
 *   create (Iceberg Java's catalogs, hence any REST catalog) gets the table
 *   unpartitioned, and while it has no snapshot one commit sets the dataset's schema
 *   (its ids) and spec. Losing a creation race to another agent
 *   (another plant) is fine: the catalog returns the existing table.
 * - Evolution only adds columns, with the dataset's field ids (never reuses or
 *   renumbers one), as one commit guarded by the current schema id and the last
 *   assigned field id; a conflict reloads and tries again.
 * - A table whose existing columns disagree with the dataset (same field id, another
 *   type) is refused with an error naming the column; lakeside never rewrites a schema.
 */
import type { Dataset } from '../config/dataset.ts';
import type { Logger } from '../agent/log.ts';
import { CatalogError, type Catalog, type CommitOutcome, type TableIdent } from './catalog.ts';
import type { IcebergField, LoadedTable, PartitionField, TableMetadata, TableUpdate } from './iceberg/metadata.ts';
import { tableSchemaFor, partitionSpecFor } from './iceberg/table-schema.ts';

const EVOLVE_ATTEMPTS = 10;

export interface TableSetupOptions {
  catalog: Catalog;
  namespace: string[];
  properties: Record<string, string>;
  logger: Logger;
}

export function tableIdent(namespace: string[], dataset: string): TableIdent {
  return { namespace, name: dataset };
}

export class TableSetup {
  private readonly options: TableSetupOptions;
  private namespaceReady = false;

  constructor(options: TableSetupOptions) {
    this.options = options;
  }

  /** Loads (creating if needed) the dataset's table, with every dataset column in its current schema. */
  async ensure(dataset: Dataset): Promise<LoadedTable> {
    const { catalog, namespace } = this.options;
    const ident = tableIdent(namespace, dataset.name);
    if (!this.namespaceReady) {
      await catalog.ensureNamespace(namespace);
      this.namespaceReady = true;
    }
    let table = await catalog.loadTable(ident);
    if (table === null) {
      table = await catalog.createTable(ident, {
        schema: tableSchemaFor(dataset, 0),
        // A catalog that renumbers the fields gets the table unpartitioned; evolve()
        // then sets the dataset's ids and spec in one commit (with a spec on its own
        // ids, the corrected schema could not become current: the spec's identity
        // fields would point at other columns of the same names).
        spec: catalog.renumbersFieldsOnCreate ? { 'spec-id': 0, fields: [] } : partitionSpecFor(dataset),
        properties: { 'format-version': '2', 'write.parquet.compression-codec': 'zstd', 'lakeside.managed-by': 'lakeside', ...this.options.properties },
      });
      this.options.logger.info({ table: `${namespace.join('.')}.${dataset.name}`, location: table.metadata.location }, 'iceberg table created');
    }
    return this.evolve(dataset, ident, table);
  }

  private async evolve(dataset: Dataset, ident: TableIdent, loaded: LoadedTable): Promise<LoadedTable> {
    let table = loaded;
    for (let attempt = 0; attempt < EVOLVE_ATTEMPTS; attempt++) {
      const metadata = table.metadata;
      const current = metadata.schemas.find((s) => s['schema-id'] === metadata['current-schema-id']);
      if (!current) throw new CatalogError('CATALOG_BAD_METADATA', `table ${ident.name}: current schema ${metadata['current-schema-id']} missing from its metadata`, false);
      const wanted = tableSchemaFor(dataset, 0).fields;
      const byId = new Map(current.fields.map((f) => [f.id, f]));
      const byName = new Map(current.fields.map((f) => [f.name, f]));
      const renumbered = wanted.filter((f) => (byName.get(f.name)?.id ?? f.id) !== f.id || (byId.get(f.id)?.name ?? f.name) !== f.name);
      const spec = metadata['partition-specs'].find((s) => s['spec-id'] === metadata['default-spec-id']);
      const specDiffers = !sameSpecFields(spec?.fields ?? [], partitionSpecFor(dataset).fields);
      if ((renumbered.length > 0 || specDiffers) && isEmpty(metadata)) {
        // A new table: created unpartitioned, and Iceberg Java's catalogs (the Apache
        // REST fixture, Polaris, ...) assign their own field ids on create
        // (TableMetadata.newTableMetadata renumbers from 1). Nothing is written yet, so
        // the dataset's ids (the ones in its Parquet files) and its spec are set now.
        const outcome = await this.realign(dataset, ident, metadata, current['schema-id'], renumbered.length > 0);
        if (outcome.kind === 'committed') {
          this.options.logger.info({ table: ident.name, renumbered: renumbered.map((f) => f.name) }, 'iceberg table schema and partition spec set to the dataset\'s');
          table = outcome.table;
          continue;
        }
        table = await this.reload(ident, outcome);
        continue;
      }
      const missing: IcebergField[] = [];
      for (const field of wanted) {
        const have = byId.get(field.id);
        const named = byName.get(field.name);
        if (!have && named) {
          throw new CatalogError(
            'CATALOG_SCHEMA_MISMATCH',
            `table ${ident.name}: column "${field.name}" has field id ${named.id} in the catalog but ${field.id} in dataset ${dataset.name}, and the table already has snapshots`,
            false,
          );
        }
        if (!have) {
          missing.push({ ...field, required: false });
          continue;
        }
        if (JSON.stringify(have.type) !== JSON.stringify(field.type) || have.name !== field.name) {
          throw new CatalogError(
            'CATALOG_SCHEMA_MISMATCH',
            `table ${ident.name}: field id ${field.id} is "${have.name}" (${JSON.stringify(have.type)}) in the catalog but "${field.name}" (${JSON.stringify(field.type)}) in dataset ${dataset.name}`,
            false,
          );
        }
      }
      if (missing.length === 0) return table;
      const schemaId = Math.max(...metadata.schemas.map((s) => s['schema-id'])) + 1;
      const lastColumnId = Math.max(metadata['last-column-id'], ...missing.map((f) => f.id));
      const outcome = await this.options.catalog.commit(
        ident,
        [
          { type: 'assert-table-uuid', uuid: metadata['table-uuid'] },
          { type: 'assert-current-schema-id', 'current-schema-id': current['schema-id'] },
          { type: 'assert-last-assigned-field-id', 'last-assigned-field-id': metadata['last-column-id'] },
        ],
        [
          { action: 'add-schema', schema: { type: 'struct', 'schema-id': schemaId, fields: [...current.fields, ...missing] }, 'last-column-id': lastColumnId },
          { action: 'set-current-schema', 'schema-id': -1 },
        ],
      );
      if (outcome.kind === 'committed') {
        this.options.logger.info({ table: ident.name, added: missing.map((f) => f.name) }, 'iceberg table schema evolved');
        return outcome.table;
      }
      table = await this.reload(ident, outcome);
    }
    throw new CatalogError('CATALOG_SCHEMA_CONFLICT', `table ${ident.name}: schema evolution kept conflicting`, true);
  }

  /** After a commit that did not go through: waits if the catalog asked to, and loads the table again. */
  private async reload(ident: TableIdent, outcome: CommitOutcome): Promise<LoadedTable> {
    if (outcome.kind === 'retry-later') await new Promise((r) => setTimeout(r, Math.min(outcome.afterMs, 30_000)));
    const reloaded = await this.options.catalog.loadTable(ident);
    if (!reloaded) throw new CatalogError('CATALOG_TABLE_GONE', `table ${ident.name} disappeared while its schema was evolved`, true);
    return reloaded;
  }

  /**
   * Replaces an empty table's schema and default spec with the dataset's (its field
   * ids), guarded by the table still having no snapshot and the schema and spec it had.
   */
  private realign(dataset: Dataset, ident: TableIdent, metadata: TableMetadata, currentSchemaId: number, newSchema: boolean): Promise<CommitOutcome> {
    const schema = tableSchemaFor(dataset, Math.max(...metadata.schemas.map((s) => s['schema-id'])) + 1);
    const spec = partitionSpecFor(dataset);
    const schemaUpdates: TableUpdate[] = newSchema
      ? [
          { action: 'add-schema', schema, 'last-column-id': Math.max(metadata['last-column-id'], ...schema.fields.map((f) => f.id)) },
          { action: 'set-current-schema', 'schema-id': -1 },
        ]
      : [];
    return this.options.catalog.commit(
      ident,
      [
        { type: 'assert-table-uuid', uuid: metadata['table-uuid'] },
        { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null },
        { type: 'assert-current-schema-id', 'current-schema-id': currentSchemaId },
        { type: 'assert-default-spec-id', 'default-spec-id': metadata['default-spec-id'] },
      ],
      [
        ...schemaUpdates,
        { action: 'add-spec', spec: { 'spec-id': Math.max(...metadata['partition-specs'].map((s) => s['spec-id'])) + 1, fields: spec.fields } },
        { action: 'set-default-spec', 'spec-id': -1 },
      ],
    );
  }
}

function sameSpecFields(a: PartitionField[], b: PartitionField[]): boolean {
  return a.length === b.length && a.every((f, i) => f['source-id'] === b[i]!['source-id'] && f.transform === b[i]!.transform && f.name === b[i]!.name);
}

/** No snapshot at all: nothing was ever written with the table's current field ids. */
function isEmpty(metadata: TableMetadata): boolean {
  return (metadata.snapshots?.length ?? 0) === 0;
}
