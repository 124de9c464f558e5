/**
 * Iceberg v2 manifest lists: the Avro container of `manifest_file` records that a
 * snapshot's `manifest-list` names.
 *
 * What a list written here looks like:
 * - header metadata `snapshot-id`, `parent-snapshot-id` ("null" for the first
 *   snapshot), `sequence-number`, `format-version` "2", in that order;
 * - one record per manifest with the spec's field ids (500–519); a new manifest's
 *   sequence_number is the new snapshot's, the entries of the parent snapshot are
 *   copied as read (readManifestList), so an append only adds records;
 * - partition summaries (507): per partition field, contains_null, contains_nan and
 *   lower/upper bounds of the non-null values in single-value binary form of the
 *   partition field's type (day → date as 4-byte int, identity → the column's type);
 * - the bytes are a pure function of the input (avro-file.ts).
 *
 * Reading uses the writer schema in the file (Java and PyIceberg lists read too);
 * every long, snapshot ids included, comes back as an exact bigint.
 */
import { decodeAvroFile, encodeAvroFile, optional, type AvroSchema } from './avro-file.ts';
import type { PartitionValue } from './data-file.ts';
import { ENTRY_STATUS, partitionTypes, type ManifestEntry } from './manifest.ts';
import type { IcebergSchema, PartitionSpec } from './metadata.ts';
import { compareSingleValues, encodeSingleValue } from './single-value.ts';

export interface FieldSummary {
  contains_null: boolean;
  contains_nan: boolean | null;
  lower_bound: Buffer | null;
  upper_bound: Buffer | null;
}

/** The v2 `manifest_file` struct. */
export interface ManifestFile {
  manifest_path: string;
  manifest_length: bigint;
  partition_spec_id: number;
  /** 0 data, 1 deletes. */
  content: number;
  sequence_number: bigint;
  min_sequence_number: bigint;
  added_snapshot_id: bigint;
  added_files_count: number;
  existing_files_count: number;
  deleted_files_count: number;
  added_rows_count: bigint;
  existing_rows_count: bigint;
  deleted_rows_count: bigint;
  partitions: FieldSummary[] | null;
  key_metadata: Buffer | null;
}

export interface ManifestListHeader {
  snapshotId: bigint;
  parentSnapshotId: bigint | null;
  sequenceNumber: bigint;
}

export interface ManifestList {
  /** null where a (v1) writer left the header key out. */
  snapshotId: bigint | null;
  parentSnapshotId: bigint | null;
  sequenceNumber: bigint | null;
  formatVersion: number;
  manifests: ManifestFile[];
}

const fieldSummary = {
  type: 'record',
  name: 'r508',
  fields: [
    { name: 'contains_null', type: 'boolean', 'field-id': 509 },
    { name: 'contains_nan', type: optional('boolean'), default: null, 'field-id': 518 },
    { name: 'lower_bound', type: optional('bytes'), default: null, 'field-id': 510 },
    { name: 'upper_bound', type: optional('bytes'), default: null, 'field-id': 511 },
  ],
};

export const MANIFEST_LIST_AVRO_SCHEMA: AvroSchema = {
  type: 'record',
  name: 'manifest_file',
  fields: [
    { name: 'manifest_path', type: 'string', 'field-id': 500 },
    { name: 'manifest_length', type: 'long', 'field-id': 501 },
    { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
    { name: 'content', type: 'int', 'field-id': 517 },
    { name: 'sequence_number', type: 'long', 'field-id': 515 },
    { name: 'min_sequence_number', type: 'long', 'field-id': 516 },
    { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
    { name: 'added_files_count', type: 'int', 'field-id': 504 },
    { name: 'existing_files_count', type: 'int', 'field-id': 505 },
    { name: 'deleted_files_count', type: 'int', 'field-id': 506 },
    { name: 'added_rows_count', type: 'long', 'field-id': 512 },
    { name: 'existing_rows_count', type: 'long', 'field-id': 513 },
    { name: 'deleted_rows_count', type: 'long', 'field-id': 514 },
    { name: 'partitions', type: optional({ type: 'array', items: fieldSummary, 'element-id': 508 }), default: null, 'field-id': 507 },
    { name: 'key_metadata', type: optional('bytes'), default: null, 'field-id': 519 },
  ],
};

export interface NewManifest {
  /** Where the manifest is (absolute URI) and its size in bytes. */
  path: string;
  length: number;
  schema: IcebergSchema;
  spec: PartitionSpec;
  entries: ManifestEntry[];
  /** The snapshot that adds the manifest, and its sequence number. */
  snapshotId: bigint;
  sequenceNumber: bigint;
}

function summarize(values: PartitionValue[], type: ReturnType<typeof partitionTypes>[number]): FieldSummary {
  let lower: PartitionValue = null;
  let upper: PartitionValue = null;
  let containsNull = false;
  let containsNan = false;
  for (const value of values) {
    if (value === null) containsNull = true;
    else if (typeof value === 'number' && Number.isNaN(value)) containsNan = true;
    else {
      if (lower === null || compareSingleValues(value, lower) < 0) lower = value;
      if (upper === null || compareSingleValues(value, upper) > 0) upper = value;
    }
  }
  return {
    contains_null: containsNull,
    contains_nan: containsNan,
    lower_bound: lower === null ? null : encodeSingleValue(type, lower),
    upper_bound: upper === null ? null : encodeSingleValue(type, upper),
  };
}

/** The list entry of a manifest this snapshot writes: counts, rows, partition summaries. */
export function manifestListEntryFor(manifest: NewManifest): ManifestFile {
  const { entries, spec, sequenceNumber } = manifest;
  const files = [0, 0, 0];
  const rows = [0n, 0n, 0n];
  let minSequence: bigint | null = null;
  for (const entry of entries) {
    files[entry.status]!++;
    rows[entry.status]! += entry.data_file.record_count;
    if (entry.status === ENTRY_STATUS.DELETED) continue;
    const sequence = entry.sequence_number ?? sequenceNumber;
    if (minSequence === null || sequence < minSequence) minSequence = sequence;
  }
  const types = partitionTypes(manifest.schema, spec);
  return {
    manifest_path: manifest.path,
    manifest_length: BigInt(manifest.length),
    partition_spec_id: spec['spec-id'],
    content: 0,
    sequence_number: sequenceNumber,
    min_sequence_number: minSequence ?? sequenceNumber,
    added_snapshot_id: manifest.snapshotId,
    added_files_count: files[ENTRY_STATUS.ADDED]!,
    existing_files_count: files[ENTRY_STATUS.EXISTING]!,
    deleted_files_count: files[ENTRY_STATUS.DELETED]!,
    added_rows_count: rows[ENTRY_STATUS.ADDED]!,
    existing_rows_count: rows[ENTRY_STATUS.EXISTING]!,
    deleted_rows_count: rows[ENTRY_STATUS.DELETED]!,
    partitions: spec.fields.map((f, i) => summarize(entries.map((e) => e.data_file.partition[f.name] ?? null), types[i]!)),
    key_metadata: null,
  };
}

/** The bytes of a v2 manifest list. Same input, same bytes. */
export function writeManifestList(header: ManifestListHeader, manifests: ManifestFile[]): Buffer {
  const metadata = {
    'snapshot-id': header.snapshotId.toString(),
    'parent-snapshot-id': header.parentSnapshotId === null ? 'null' : header.parentSnapshotId.toString(),
    'sequence-number': header.sequenceNumber.toString(),
    'format-version': '2',
  };
  return encodeAvroFile(MANIFEST_LIST_AVRO_SCHEMA, metadata, manifests);
}

type Raw = Record<string, unknown>;

function required<T>(raw: Raw, name: string): T {
  const value = raw[name];
  if (value === undefined || value === null) throw new Error(`manifest list: ${String(raw.manifest_path)} has no ${name}`);
  return value as T;
}

function manifestFileOf(raw: Raw): ManifestFile {
  const summaries = raw.partitions as Raw[] | null | undefined;
  return {
    manifest_path: required(raw, 'manifest_path'),
    manifest_length: required(raw, 'manifest_length'),
    partition_spec_id: required(raw, 'partition_spec_id'),
    content: (raw.content as number | undefined) ?? 0,
    sequence_number: (raw.sequence_number as bigint | undefined) ?? 0n,
    min_sequence_number: (raw.min_sequence_number as bigint | undefined) ?? 0n,
    added_snapshot_id: required(raw, 'added_snapshot_id'),
    added_files_count: required(raw, 'added_files_count'),
    existing_files_count: required(raw, 'existing_files_count'),
    deleted_files_count: required(raw, 'deleted_files_count'),
    added_rows_count: required(raw, 'added_rows_count'),
    existing_rows_count: required(raw, 'existing_rows_count'),
    deleted_rows_count: required(raw, 'deleted_rows_count'),
    partitions: summaries
      ? summaries.map((s) => ({
          contains_null: s.contains_null as boolean,
          contains_nan: (s.contains_nan as boolean | null | undefined) ?? null,
          lower_bound: (s.lower_bound as Buffer | null | undefined) ?? null,
          upper_bound: (s.upper_bound as Buffer | null | undefined) ?? null,
        }))
      : null,
    key_metadata: (raw.key_metadata as Buffer | null | undefined) ?? null,
  };
}

const headerId = (text: string | undefined): bigint | null => (text === undefined || text === 'null' ? null : BigInt(text));

/** A manifest list's header and entries, whoever wrote it; ids and counts exact. */
export function readManifestList(bytes: Uint8Array): ManifestList {
  const file = decodeAvroFile(bytes);
  const { metadata } = file;
  return {
    snapshotId: headerId(metadata.get('snapshot-id')),
    parentSnapshotId: headerId(metadata.get('parent-snapshot-id')),
    sequenceNumber: headerId(metadata.get('sequence-number')),
    formatVersion: Number(metadata.get('format-version') ?? 1),
    manifests: (file.records as Raw[]).map(manifestFileOf),
  };
}
