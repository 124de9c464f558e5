/**
 * The Iceberg table of a dataset: its schema and partition spec.
 *
 * Invariants:
 * - Field ids are the dataset's own stable ids (config/dataset.ts); the table adds one
 *   column, `plant` (string; optional, see plantField), with the reserved id
 *   PLANT_FIELD_ID. Config validation keeps datasets off that name and off ids
 *   ≥ PLANT_FIELD_ID. A REST catalog may assign fresh ids when it creates the table
 *   (the Apache fixture and every catalog built on Java's TableMetadata do: `plant`
 *   becomes the next id after the dataset's columns); `plant` is found by its reserved
 *   name in a table (plantFieldIdIn), never assumed to be PLANT_FIELD_ID.
 * - `plant` is never stored in the Parquet files: every file holds one plant's rows,
 *   and the value lives in the file's identity partition (readers project it).
 * - Column types: timestamp → timestamptz (µs, UTC), blob (sha256 hex) → string,
 *   the others by name.
 * - Partition spec 0: day(time) as `<time>_day` (1000), identity(plant) as `plant`
 *   (1001), then identity(col) for each `partition_by` column (1002, …), named as the
 *   column. Ids never change; schema evolution only appends the columns a table lacks.
 */
import type { Dataset, DatasetColumn, StoredType } from '../../config/dataset.ts';
import type { IcebergField, IcebergPrimitive, IcebergSchema, PartitionField, PartitionSpec } from './metadata.ts';

export const PLANT_COLUMN = 'plant';
export const PLANT_FIELD_ID = 100_000;
export const FIRST_PARTITION_FIELD_ID = 1000;

const ICEBERG_TYPES: Record<StoredType, IcebergPrimitive> = {
  timestamp: 'timestamptz',
  long: 'long',
  int: 'int',
  double: 'double',
  boolean: 'boolean',
  string: 'string',
  blob: 'string',
};

export function icebergTypeOf(column: DatasetColumn): IcebergPrimitive {
  return ICEBERG_TYPES[column.type];
}

/**
 * Why a dataset cannot get a table (the plant column's name or id taken), or null.
 * config/schema.ts refuses such configs; this guards datasets built in code.
 */
export function plantColumnConflict(dataset: Pick<Dataset, 'name' | 'columns'>): string | null {
  for (const column of dataset.columns) {
    if (column.name === PLANT_COLUMN) return `dataset ${dataset.name}: the column name "${PLANT_COLUMN}" is reserved (the table's plant column)`;
    if (column.fieldId >= PLANT_FIELD_ID) return `dataset ${dataset.name}: column ${column.name} has field_id ${column.fieldId}; ids from ${PLANT_FIELD_ID} are reserved`;
  }
  return null;
}

function fieldOf(column: DatasetColumn, index: number): IcebergField {
  return { id: column.fieldId, name: column.name, required: index === 0 || !column.nullable, type: icebergTypeOf(column) };
}

/**
 * Optional, though every row has a plant: the column is not in the Parquet files, and
 * PyIceberg 0.12 projects identity partition values only into optional missing
 * columns (a required one fails the scan: "Field is required, and could not be found
 * in the file"). Java/Spark/Trino project either way.
 */
const plantField: IcebergField = { id: PLANT_FIELD_ID, name: PLANT_COLUMN, required: false, type: 'string' };

/** The id of the `plant` column in a table schema (by its reserved name), or PLANT_FIELD_ID if it has none. */
export function plantFieldIdIn(schema: IcebergSchema | undefined): number {
  return schema?.fields.find((f) => f.name === PLANT_COLUMN)?.id ?? PLANT_FIELD_ID;
}

export function tableSchemaFor(dataset: Dataset, schemaId = 0): IcebergSchema {
  const conflict = plantColumnConflict(dataset);
  if (conflict) throw new Error(conflict);
  return { type: 'struct', 'schema-id': schemaId, fields: [...dataset.columns.map(fieldOf), plantField] };
}

export function partitionSpecFor(dataset: Dataset): PartitionSpec {
  const time = dataset.columns[0]!;
  const fields: PartitionField[] = [
    { 'source-id': time.fieldId, 'field-id': FIRST_PARTITION_FIELD_ID, name: `${time.name}_day`, transform: 'day' },
    { 'source-id': PLANT_FIELD_ID, 'field-id': FIRST_PARTITION_FIELD_ID + 1, name: PLANT_COLUMN, transform: 'identity' },
  ];
  dataset.partitionBy.forEach((index, i) => {
    const column = dataset.columns[index]!;
    fields.push({ 'source-id': column.fieldId, 'field-id': FIRST_PARTITION_FIELD_ID + 2 + i, name: column.name, transform: 'identity' });
  });
  return { 'spec-id': 0, fields };
}

/** The largest field id in a schema (the table's `last-column-id` once it is added). */
export function lastColumnId(schema: IcebergSchema): number {
  return Math.max(0, ...schema.fields.map((f) => f.id));
}

/**
 * The fields of the dataset's columns that `schema` lacks (matched by field id), in
 * dataset order: append them, as a new schema, to evolve the table.
 */
export function missingFields(dataset: Dataset, schema: IcebergSchema): IcebergField[] {
  const present = new Set(schema.fields.map((f) => f.id));
  // A column added later is optional in the table: older files do not have it.
  return dataset.columns
    .map(fieldOf)
    .filter((f) => !present.has(f.id))
    .map((f) => ({ ...f, required: false }));
}
