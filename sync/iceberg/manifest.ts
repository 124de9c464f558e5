/**
 * Iceberg v2 data manifests: an Avro container of `manifest_entry` records, one per
 * data file, all of one partition spec.
 *
 * What a manifest written here looks like:
 * - header metadata `schema` (table schema JSON), `schema-id`, `partition-spec` (JSON
 *   of the spec's fields array), `partition-spec-id`, `format-version` "2",
 *   `content` "data", in that order; the JSON with sorted keys;
 * - the Avro schema carries the spec's field ids (`field-id` on every field,
 *   `element-id` on lists, int-keyed maps as arrays of {key, value} records with
 *   `logicalType: map`); the partition struct (102) has one optional field per
 *   partition field, id = partition field id: day → int (logicalType date),
 *   identity → the source column's Avro type;
 * - entries: status 0 existing / 1 added / 2 deleted; a null snapshot_id or (for
 *   added entries only) null sequence numbers are inherited from the manifest list
 *   entry, which is what lets a retried commit reuse a manifest unchanged;
 * - the bytes are a pure function of the input (avro-file.ts), so a manifest can be
 *   written once and verified byte for byte on a retry.
 *
 * Reading takes the writer schema from the file, so manifests written by Java or
 * PyIceberg (with fields lakeside does not write, e.g. first_row_id,
 * referenced_data_file, content_offset) read too; unknown fields are dropped.
 */
import { decodeAvroFile, encodeAvroFile, optional, type AvroSchema } from './avro-file.ts';
import type { DataFile, MapEntry, PartitionValue } from './data-file.ts';
import { parseIcebergJson, stringifyIcebergJson } from './json.ts';
import type { IcebergPrimitive, IcebergSchema, PartitionField, PartitionSpec } from './metadata.ts';

export const ENTRY_STATUS = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;
export type EntryStatus = (typeof ENTRY_STATUS)[keyof typeof ENTRY_STATUS];

export interface ManifestEntry {
  status: EntryStatus;
  /** null: inherited from the manifest list entry's added_snapshot_id. */
  snapshot_id: bigint | null;
  /** Data sequence number; null (inherited) only for added entries. */
  sequence_number: bigint | null;
  file_sequence_number: bigint | null;
  data_file: DataFile;
}

export interface ManifestInput {
  schema: IcebergSchema;
  spec: PartitionSpec;
  entries: ManifestEntry[];
}

export interface Manifest {
  schema: IcebergSchema;
  schemaId: number;
  /** The spec as the header states it (id and fields). */
  spec: PartitionSpec;
  formatVersion: number;
  content: 'data' | 'deletes';
  entries: ManifestEntry[];
}

/** The Avro type of a value of an Iceberg primitive type. */
function avroTypeOf(type: IcebergPrimitive): unknown {
  switch (type) {
    case 'boolean':
    case 'int':
    case 'long':
    case 'float':
    case 'double':
    case 'string':
      return type;
    case 'binary':
      return 'bytes';
    case 'date':
      return { type: 'int', logicalType: 'date' };
    case 'timestamp':
    case 'timestamptz':
      return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': type === 'timestamptz' };
    default:
      throw new Error(`manifest: partition values of type ${type} are not supported`);
  }
}

function partitionFieldType(field: PartitionField, schema: IcebergSchema): IcebergPrimitive {
  if (field.transform === 'day') return 'date';
  const source = schema.fields.find((f) => f.id === field['source-id']);
  if (!source) throw new Error(`manifest: partition field ${field.name} has no source column ${field['source-id']} in the schema`);
  if (field.transform !== 'identity' || typeof source.type !== 'string') {
    throw new Error(`manifest: partition transform ${field.transform} of ${field.name} is not supported`);
  }
  return source.type;
}

/** The Iceberg type of each partition field's values (day → date, identity → source type). */
export function partitionTypes(schema: IcebergSchema, spec: PartitionSpec): IcebergPrimitive[] {
  return spec.fields.map((f) => partitionFieldType(f, schema));
}

function intMap(name: string, id: number, keyId: number, valueId: number, value: string): Record<string, unknown> {
  const entry = {
    type: 'record',
    name: `k${keyId}_v${valueId}`,
    fields: [
      { name: 'key', type: 'int', 'field-id': keyId },
      { name: 'value', type: value, 'field-id': valueId },
    ],
  };
  return { name, type: optional({ type: 'array', items: entry, logicalType: 'map' }), default: null, 'field-id': id };
}

function list(name: string, id: number, elementId: number, items: string): Record<string, unknown> {
  return { name, type: optional({ type: 'array', items, 'element-id': elementId }), default: null, 'field-id': id };
}

export function manifestAvroSchema(schema: IcebergSchema, spec: PartitionSpec): AvroSchema {
  const types = partitionTypes(schema, spec);
  const partition = {
    type: 'record',
    name: 'r102',
    fields: spec.fields.map((f, i) => ({ name: f.name, type: optional(avroTypeOf(types[i]!)), default: null, 'field-id': f['field-id'] })),
  };
  const dataFile = {
    type: 'record',
    name: 'r2',
    fields: [
      { name: 'content', type: 'int', 'field-id': 134 },
      { name: 'file_path', type: 'string', 'field-id': 100 },
      { name: 'file_format', type: 'string', 'field-id': 101 },
      { name: 'partition', type: partition, 'field-id': 102 },
      { name: 'record_count', type: 'long', 'field-id': 103 },
      { name: 'file_size_in_bytes', type: 'long', 'field-id': 104 },
      intMap('column_sizes', 108, 117, 118, 'long'),
      intMap('value_counts', 109, 119, 120, 'long'),
      intMap('null_value_counts', 110, 121, 122, 'long'),
      intMap('nan_value_counts', 137, 138, 139, 'long'),
      intMap('lower_bounds', 125, 126, 127, 'bytes'),
      intMap('upper_bounds', 128, 129, 130, 'bytes'),
      { name: 'key_metadata', type: optional('bytes'), default: null, 'field-id': 131 },
      list('split_offsets', 132, 133, 'long'),
      list('equality_ids', 135, 136, 'int'),
      { name: 'sort_order_id', type: optional('int'), default: null, 'field-id': 140 },
    ],
  };
  return {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      { name: 'status', type: 'int', 'field-id': 0 },
      { name: 'snapshot_id', type: optional('long'), default: null, 'field-id': 1 },
      { name: 'sequence_number', type: optional('long'), default: null, 'field-id': 3 },
      { name: 'file_sequence_number', type: optional('long'), default: null, 'field-id': 4 },
      { name: 'data_file', type: dataFile, 'field-id': 2 },
    ],
  };
}

function checkEntry(entry: ManifestEntry, spec: PartitionSpec): void {
  const path = entry.data_file.file_path;
  if (entry.status !== ENTRY_STATUS.ADDED && (entry.sequence_number === null || entry.file_sequence_number === null)) {
    throw new Error(`manifest: ${path}: an existing or deleted entry must carry both sequence numbers`);
  }
  for (const field of spec.fields) {
    if (!(field.name in entry.data_file.partition)) throw new Error(`manifest: ${path}: no value for partition field ${field.name}`);
  }
}

/**
 * JSON with every object's keys sorted: the header then depends on the schema's
 * content, not on the key order of whichever parse produced it (catalog or file).
 */
function canonicalJson(value: unknown): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  };
  return stringifyIcebergJson(sortKeys(value));
}

/** The bytes of a v2 data manifest. Same input (same content, whatever its key order), same bytes. */
export function writeManifest(input: ManifestInput): Buffer {
  const { schema, spec, entries } = input;
  for (const entry of entries) checkEntry(entry, spec);
  const metadata = {
    schema: canonicalJson(schema),
    'schema-id': String(schema['schema-id']),
    'partition-spec': canonicalJson(spec.fields),
    'partition-spec-id': String(spec['spec-id']),
    'format-version': '2',
    content: 'data',
  };
  const records = entries.map((e) => ({ ...e, data_file: { ...e.data_file, partition: partitionRecord(spec, e.data_file.partition) } }));
  return encodeAvroFile(manifestAvroSchema(schema, spec), metadata, records);
}

/** The partition values in spec order (the Avro record's field order), nothing else. */
function partitionRecord(spec: PartitionSpec, values: Record<string, PartitionValue>): Record<string, PartitionValue> {
  return Object.fromEntries(spec.fields.map((f) => [f.name, values[f.name] ?? null]));
}

type Raw = Record<string, unknown>;

const orNull = <T>(v: unknown): T | null => (v === undefined || v === null ? null : (v as T));

function mapEntries<V>(v: unknown): MapEntry<V>[] | null {
  if (v === undefined || v === null) return null;
  return (v as Raw[]).map((e) => ({ key: e.key as number, value: e.value as V }));
}

function dataFileOf(raw: Raw): DataFile {
  return {
    content: (raw.content as number | undefined) ?? 0,
    file_path: raw.file_path as string,
    file_format: raw.file_format as string,
    partition: { ...(raw.partition as Record<string, PartitionValue>) },
    record_count: raw.record_count as bigint,
    file_size_in_bytes: raw.file_size_in_bytes as bigint,
    column_sizes: mapEntries(raw.column_sizes),
    value_counts: mapEntries(raw.value_counts),
    null_value_counts: mapEntries(raw.null_value_counts),
    nan_value_counts: mapEntries(raw.nan_value_counts),
    lower_bounds: mapEntries(raw.lower_bounds),
    upper_bounds: mapEntries(raw.upper_bounds),
    key_metadata: orNull(raw.key_metadata),
    split_offsets: orNull(raw.split_offsets),
    equality_ids: orNull(raw.equality_ids),
    sort_order_id: orNull(raw.sort_order_id),
  };
}

function headerJson<T>(metadata: Map<string, string>, key: string): T {
  const text = metadata.get(key);
  if (text === undefined) throw new Error(`manifest: no ${key} in the header`);
  return parseIcebergJson(text) as T;
}

/** A manifest's header and entries (longs as bigint), whoever wrote it. */
export function readManifest(bytes: Uint8Array): Manifest {
  const file = decodeAvroFile(bytes);
  const { metadata } = file;
  const schema = headerJson<IcebergSchema>(metadata, 'schema');
  const specId = Number(metadata.get('partition-spec-id') ?? 0);
  const content = metadata.get('content') ?? 'data';
  if (content !== 'data' && content !== 'deletes') throw new Error(`manifest: unknown content ${content}`);
  return {
    schema,
    schemaId: Number(metadata.get('schema-id') ?? schema['schema-id'] ?? 0),
    spec: { 'spec-id': specId, fields: headerJson<PartitionField[]>(metadata, 'partition-spec') },
    formatVersion: Number(metadata.get('format-version') ?? 1),
    content,
    entries: (file.records as Raw[]).map((r) => ({
      status: r.status as EntryStatus,
      snapshot_id: orNull(r.snapshot_id),
      sequence_number: orNull(r.sequence_number),
      file_sequence_number: orNull(r.file_sequence_number),
      data_file: dataFileOf(r.data_file as Raw),
    })),
  };
}
