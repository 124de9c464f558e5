/**
 * Iceberg table metadata (format v2), the parts lakeside reads and writes, and the
 * commit vocabulary of the REST protocol (requirements and updates), shared by the
 * REST catalog and the file-system catalog.
 *
 * Invariants:
 * - Snapshot ids are `bigint` everywhere in lakeside (json.ts explains why);
 *   `normalizeTableMetadata` makes them so after parsing, whatever their size.
 * - Field names are the spec's JSON names (kebab-case), so a parsed metadata file or
 *   a REST LoadTableResult is used as is, and an update is sent as is.
 */
import { toId } from './json.ts';

export type SnapshotId = bigint;

export type IcebergPrimitive =
  | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'date' | 'time'
  | 'timestamp' | 'timestamptz' | 'string' | 'uuid' | 'binary';

export interface IcebergField {
  id: number;
  name: string;
  required: boolean;
  /** lakeside writes primitives only; other engines' nested types are kept as read. */
  type: IcebergPrimitive | Record<string, unknown>;
  doc?: string;
}

export interface IcebergSchema {
  type: 'struct';
  'schema-id': number;
  fields: IcebergField[];
  'identifier-field-ids'?: number[];
}

export interface PartitionField {
  'source-id': number;
  'field-id': number;
  name: string;
  /** e.g. `identity`, `day`, `hour`. */
  transform: string;
}

export interface PartitionSpec {
  'spec-id': number;
  fields: PartitionField[];
}

export interface Snapshot {
  'snapshot-id': SnapshotId;
  'parent-snapshot-id'?: SnapshotId | null;
  'sequence-number': number;
  'timestamp-ms': number;
  'manifest-list': string;
  summary: { operation: 'append' | 'replace' | 'overwrite' | 'delete'; [key: string]: string };
  'schema-id'?: number;
}

export interface SnapshotRef {
  'snapshot-id': SnapshotId;
  type: 'branch' | 'tag';
  [key: string]: unknown;
}

export interface TableMetadata {
  'format-version': number;
  'table-uuid': string;
  location: string;
  'last-sequence-number': number;
  'last-updated-ms': number;
  'last-column-id': number;
  'current-schema-id': number;
  schemas: IcebergSchema[];
  'default-spec-id': number;
  'partition-specs': PartitionSpec[];
  'last-partition-id': number;
  'default-sort-order-id': number;
  'sort-orders': unknown[];
  properties?: Record<string, string>;
  'current-snapshot-id'?: SnapshotId | null;
  refs?: Record<string, SnapshotRef>;
  snapshots?: Snapshot[];
  'snapshot-log'?: { 'snapshot-id': SnapshotId; 'timestamp-ms': number }[];
  'metadata-log'?: { 'metadata-file': string; 'timestamp-ms': number }[];
  [key: string]: unknown;
}

/** A table as a catalog returns it. */
export interface LoadedTable {
  metadataLocation: string | null;
  metadata: TableMetadata;
  /** Table-level configuration the catalog returned (e.g. vended storage settings). */
  config: Record<string, string>;
}

export type TableRequirement =
  | { type: 'assert-create' }
  | { type: 'assert-table-uuid'; uuid: string }
  | { type: 'assert-ref-snapshot-id'; ref: string; 'snapshot-id': SnapshotId | null }
  | { type: 'assert-current-schema-id'; 'current-schema-id': number }
  | { type: 'assert-last-assigned-field-id'; 'last-assigned-field-id': number }
  | { type: 'assert-default-spec-id'; 'default-spec-id': number };

export type TableUpdate =
  | { action: 'add-schema'; schema: IcebergSchema; 'last-column-id'?: number }
  | { action: 'set-current-schema'; 'schema-id': number }
  | { action: 'add-spec'; spec: PartitionSpec }
  | { action: 'set-default-spec'; 'spec-id': number }
  | { action: 'add-snapshot'; snapshot: Snapshot }
  | { action: 'set-snapshot-ref'; 'ref-name': string; type: 'branch'; 'snapshot-id': SnapshotId }
  | { action: 'set-properties'; updates: Record<string, string> };

/** The snapshot a ref (default `main`) points at, or null for a table with no snapshot. */
export function refHead(metadata: TableMetadata, ref = 'main'): Snapshot | null {
  const id = metadata.refs?.[ref]?.['snapshot-id'] ?? (ref === 'main' ? metadata['current-snapshot-id'] : null);
  if (id === null || id === undefined || id === -1n) return null;
  return snapshotById(metadata, id) ?? null;
}

export function snapshotById(metadata: TableMetadata, id: SnapshotId): Snapshot | undefined {
  return metadata.snapshots?.find((s) => s['snapshot-id'] === id);
}

/** The head of `ref` and its ancestors, newest first (stops where a parent has expired). */
export function* ancestry(metadata: TableMetadata, ref = 'main'): Generator<Snapshot> {
  const byId = new Map((metadata.snapshots ?? []).map((s) => [s['snapshot-id'], s]));
  let snapshot = refHead(metadata, ref);
  const seen = new Set<SnapshotId>();
  while (snapshot && !seen.has(snapshot['snapshot-id'])) {
    seen.add(snapshot['snapshot-id']);
    yield snapshot;
    const parent = snapshot['parent-snapshot-id'];
    snapshot = parent === null || parent === undefined ? null : (byId.get(parent) ?? null);
  }
}

/** Snapshot ids as bigint (the catalogs call this on every metadata they parse). */
export function normalizeTableMetadata(metadata: TableMetadata): TableMetadata {
  const id = (v: unknown): SnapshotId | null => (v === null || v === undefined ? null : toId(v as number | bigint));
  for (const snapshot of metadata.snapshots ?? []) {
    snapshot['snapshot-id'] = id(snapshot['snapshot-id'])!;
    if (snapshot['parent-snapshot-id'] !== undefined) snapshot['parent-snapshot-id'] = id(snapshot['parent-snapshot-id']);
  }
  for (const ref of Object.values(metadata.refs ?? {})) ref['snapshot-id'] = id(ref['snapshot-id'])!;
  if (metadata['current-snapshot-id'] !== undefined) metadata['current-snapshot-id'] = id(metadata['current-snapshot-id']);
  for (const entry of metadata['snapshot-log'] ?? []) entry['snapshot-id'] = id(entry['snapshot-id'])!;
  return metadata;
}
