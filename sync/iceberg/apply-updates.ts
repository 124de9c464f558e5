/**
 * Commit requirements and updates applied to table metadata, as pure functions: what
 * an Iceberg REST server does with a commit request, done by the file-system catalog
 * itself (fs-catalog.ts). Also the metadata of a new table.
 *
 * Invariants:
 * - `failedRequirement` says which requirement the head does not meet (a conflict:
 *   the commit must be rebuilt on the new head), or null when all hold.
 * - `applyUpdates` never mutates its input; it returns new metadata or throws
 *   `UpdateRejected` (a malformed commit, never a conflict): an add-snapshot whose id
 *   exists or whose sequence number is not above `last-sequence-number`, a ref to an
 *   unknown snapshot, an unknown schema id, an unknown update.
 * - The result is complete format-v2 metadata: `last-updated-ms` never goes back and
 *   is at least every added snapshot's timestamp; setting `main` moves
 *   `current-snapshot-id` and appends to `snapshot-log`; `last-column-id` covers every
 *   field id; the previous metadata file goes into `metadata-log` (the newest
 *   `METADATA_LOG_MAX` entries are kept).
 */
import { randomUUID } from 'node:crypto';
import type { IcebergField, IcebergSchema, PartitionSpec, TableMetadata, TableRequirement, TableUpdate } from './metadata.ts';

export const METADATA_LOG_MAX = 100;

export class UpdateRejected extends Error {}

function refSnapshotId(metadata: TableMetadata, ref: string): bigint | null {
  const id = metadata.refs?.[ref]?.['snapshot-id'] ?? (ref === 'main' ? metadata['current-snapshot-id'] : null);
  return id === undefined || id === null || id === -1n ? null : id;
}

/** The first requirement `metadata` does not meet, described; null when all hold. */
export function failedRequirement(metadata: TableMetadata, requirements: TableRequirement[]): string | null {
  for (const r of requirements) {
    switch (r.type) {
      case 'assert-create':
        return 'assert-create: the table already exists';
      case 'assert-table-uuid':
        if (metadata['table-uuid'].toLowerCase() !== r.uuid.toLowerCase()) return `assert-table-uuid: the table's uuid is ${metadata['table-uuid']}, not ${r.uuid}`;
        break;
      case 'assert-ref-snapshot-id': {
        const actual = refSnapshotId(metadata, r.ref);
        const expected = r['snapshot-id'] === null ? null : BigInt(r['snapshot-id']);
        if (actual !== expected) return `assert-ref-snapshot-id: ref ${r.ref} is at ${actual ?? 'no snapshot'}, not ${expected ?? 'no snapshot'}`;
        break;
      }
      case 'assert-current-schema-id':
        if (metadata['current-schema-id'] !== r['current-schema-id']) return `assert-current-schema-id: current schema is ${metadata['current-schema-id']}, not ${r['current-schema-id']}`;
        break;
      case 'assert-last-assigned-field-id':
        if (metadata['last-column-id'] !== r['last-assigned-field-id']) return `assert-last-assigned-field-id: last column id is ${metadata['last-column-id']}, not ${r['last-assigned-field-id']}`;
        break;
      case 'assert-default-spec-id':
        if (metadata['default-spec-id'] !== r['default-spec-id']) return `assert-default-spec-id: default spec is ${metadata['default-spec-id']}, not ${r['default-spec-id']}`;
        break;
      default:
        throw new UpdateRejected(`unknown requirement ${JSON.stringify((r as { type: unknown }).type)}`);
    }
  }
  return null;
}

/** The highest field id in a schema, nested types included. */
export function maxFieldId(fields: IcebergField[] | unknown): number {
  let max = 0;
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (value === null || typeof value !== 'object') return;
    const o = value as Record<string, unknown>;
    for (const key of ['id', 'element-id', 'key-id', 'value-id']) {
      if (typeof o[key] === 'number') max = Math.max(max, o[key]);
    }
    for (const key of ['fields', 'type', 'element', 'key', 'value']) visit(o[key]);
  };
  visit(fields);
  return max;
}

function sameSchema(a: IcebergSchema, b: IcebergSchema): boolean {
  return JSON.stringify(a.fields) === JSON.stringify(b.fields) && JSON.stringify(a['identifier-field-ids'] ?? []) === JSON.stringify(b['identifier-field-ids'] ?? []);
}

export interface ApplyOptions {
  nowMs: number;
  /** Where the base metadata was read from; it goes into the metadata log. */
  baseLocation: string | null;
}

export function applyUpdates(base: TableMetadata, updates: TableUpdate[], options: ApplyOptions): TableMetadata {
  const m = structuredClone(base);
  m.snapshots ??= [];
  m.refs ??= {};
  m['snapshot-log'] ??= [];
  m['metadata-log'] ??= [];
  m.properties ??= {};
  let lastUpdated = Math.max(options.nowMs, base['last-updated-ms']);
  for (const u of updates) if (u.action === 'add-snapshot') lastUpdated = Math.max(lastUpdated, u.snapshot['timestamp-ms']);
  let lastAddedSchemaId: number | null = null;
  let lastAddedSpecId: number | null = null;

  for (const u of updates) {
    switch (u.action) {
      case 'add-schema': {
        const existing = m.schemas.find((s) => sameSchema(s, u.schema));
        if (existing) {
          lastAddedSchemaId = existing['schema-id'];
          break;
        }
        const taken = m.schemas.some((s) => s['schema-id'] === u.schema['schema-id']);
        const id = taken ? Math.max(...m.schemas.map((s) => s['schema-id'])) + 1 : u.schema['schema-id'];
        m.schemas.push({ ...structuredClone(u.schema), 'schema-id': id });
        m['last-column-id'] = Math.max(m['last-column-id'], u['last-column-id'] ?? 0, maxFieldId(u.schema.fields));
        lastAddedSchemaId = id;
        break;
      }
      case 'set-current-schema': {
        const id = u['schema-id'] === -1 ? lastAddedSchemaId : u['schema-id'];
        if (id === null) throw new UpdateRejected('set-current-schema -1: no schema was added in this commit');
        if (!m.schemas.some((s) => s['schema-id'] === id)) throw new UpdateRejected(`set-current-schema: no schema with id ${id}`);
        m['current-schema-id'] = id;
        break;
      }
      case 'add-spec': {
        const fields = u.spec.fields;
        const existing = m['partition-specs'].find((s) => JSON.stringify(s.fields) === JSON.stringify(fields));
        if (existing) {
          lastAddedSpecId = existing['spec-id'];
          break;
        }
        const current = m.schemas.find((s) => s['schema-id'] === m['current-schema-id']);
        for (const f of fields) {
          if (!current?.fields.some((c) => c.id === f['source-id'])) throw new UpdateRejected(`add-spec: partition field ${f.name} has source id ${f['source-id']}, not in the current schema`);
        }
        const id = Math.max(-1, ...m['partition-specs'].map((s) => s['spec-id'])) + 1;
        m['partition-specs'].push({ 'spec-id': id, fields: structuredClone(fields) });
        m['last-partition-id'] = Math.max(m['last-partition-id'], ...fields.map((f) => f['field-id']));
        lastAddedSpecId = id;
        break;
      }
      case 'set-default-spec': {
        const id = u['spec-id'] === -1 ? lastAddedSpecId : u['spec-id'];
        if (id === null) throw new UpdateRejected('set-default-spec -1: no spec was added in this commit');
        if (!m['partition-specs'].some((s) => s['spec-id'] === id)) throw new UpdateRejected(`set-default-spec: no spec with id ${id}`);
        m['default-spec-id'] = id;
        break;
      }
      case 'add-snapshot': {
        const s = structuredClone(u.snapshot);
        const id = BigInt(s['snapshot-id']);
        s['snapshot-id'] = id;
        if (s['parent-snapshot-id'] !== undefined && s['parent-snapshot-id'] !== null) s['parent-snapshot-id'] = BigInt(s['parent-snapshot-id']);
        if (m.snapshots.some((x) => x['snapshot-id'] === id)) throw new UpdateRejected(`add-snapshot: snapshot ${id} already exists`);
        if (!(s['sequence-number'] > m['last-sequence-number'])) {
          throw new UpdateRejected(`add-snapshot: sequence number ${s['sequence-number']} is not above the table's last sequence number ${m['last-sequence-number']}`);
        }
        m.snapshots.push(s);
        m['last-sequence-number'] = s['sequence-number'];
        break;
      }
      case 'set-snapshot-ref': {
        const id = BigInt(u['snapshot-id']);
        if (!m.snapshots.some((x) => x['snapshot-id'] === id)) throw new UpdateRejected(`set-snapshot-ref: no snapshot ${id}`);
        const previous = m.refs[u['ref-name']];
        m.refs[u['ref-name']] = { ...(previous ?? {}), 'snapshot-id': id, type: u.type };
        if (u['ref-name'] === 'main' && m['current-snapshot-id'] !== id) {
          m['current-snapshot-id'] = id;
          m['snapshot-log'].push({ 'snapshot-id': id, 'timestamp-ms': lastUpdated });
        }
        break;
      }
      case 'set-properties':
        Object.assign(m.properties, u.updates);
        break;
      default:
        throw new UpdateRejected(`unsupported update ${JSON.stringify((u as { action: unknown }).action)}`);
    }
  }

  if (options.baseLocation !== null) {
    m['metadata-log'].push({ 'metadata-file': options.baseLocation, 'timestamp-ms': base['last-updated-ms'] });
    m['metadata-log'] = m['metadata-log'].slice(-METADATA_LOG_MAX);
  }
  m['last-updated-ms'] = lastUpdated;
  return m;
}

export interface NewTableOptions {
  location: string;
  schema: IcebergSchema;
  spec: PartitionSpec;
  properties: Record<string, string>;
  nowMs: number;
  tableUuid?: string;
}

/** Complete format-v2 metadata of a table with no snapshot yet (unsorted). */
export function newTableMetadata(o: NewTableOptions): TableMetadata {
  return {
    'format-version': 2,
    'table-uuid': o.tableUuid ?? randomUUID(),
    location: o.location.replace(/\/+$/, ''),
    'last-sequence-number': 0,
    'last-updated-ms': o.nowMs,
    'last-column-id': maxFieldId(o.schema.fields),
    'current-schema-id': o.schema['schema-id'],
    schemas: [structuredClone(o.schema)],
    'default-spec-id': o.spec['spec-id'],
    'partition-specs': [structuredClone(o.spec)],
    // Partition field ids start at 1000; an unpartitioned table has assigned none.
    'last-partition-id': Math.max(999, ...o.spec.fields.map((f) => f['field-id'])),
    'default-sort-order-id': 0,
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    properties: { ...o.properties },
    refs: {},
    snapshots: [],
    'snapshot-log': [],
    'metadata-log': [],
  };
}
