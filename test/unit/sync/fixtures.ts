/** Shared test data for the catalog tests: a schema, a partition spec, snapshots. */
import type { IcebergSchema, PartitionSpec, Snapshot, TableUpdate } from '../../../sync/iceberg/metadata.ts';

export const schema: IcebergSchema = {
  type: 'struct',
  'schema-id': 0,
  fields: [
    { id: 1, name: 'ts', required: true, type: 'timestamptz' },
    { id: 2, name: 'line', required: true, type: 'string' },
    { id: 3, name: 'value', required: false, type: 'double' },
  ],
};

export const spec: PartitionSpec = {
  'spec-id': 0,
  fields: [
    { 'source-id': 1, 'field-id': 1000, name: 'ts_day', transform: 'day' },
    { 'source-id': 2, 'field-id': 1001, name: 'line', transform: 'identity' },
  ],
};

/** An id past 2^53: it must survive every round trip digit for digit. */
export const BIG_ID = 9_007_199_254_740_993n;

export function snapshot(id: bigint, sequence: number, parent: bigint | null, timestampMs = 1_700_000_000_000): Snapshot {
  return {
    'snapshot-id': id,
    ...(parent === null ? {} : { 'parent-snapshot-id': parent }),
    'sequence-number': sequence,
    'timestamp-ms': timestampMs,
    'manifest-list': `file:///nowhere/snap-${id}.avro`,
    summary: { operation: 'append', 'lakeside.agent': 'test' },
    'schema-id': 0,
  };
}

/** An append: add the snapshot and point main at it. */
export function append(id: bigint, sequence: number, parent: bigint | null): TableUpdate[] {
  return [
    { action: 'add-snapshot', snapshot: snapshot(id, sequence, parent) },
    { action: 'set-snapshot-ref', 'ref-name': 'main', type: 'branch', 'snapshot-id': id },
  ];
}
