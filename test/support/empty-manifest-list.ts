// An empty Iceberg v2 manifest list for catalog tests: a valid Avro object container
// file (magic, header metadata with the manifest_file schema and the snapshot keys,
// sync marker) with no data block. A snapshot that points at it is a real, readable
// snapshot of no files, so catalog tests can commit appends before lakeside's own
// manifest writer exists, and PyIceberg can scan them (0 rows).
//
// Invariant: the schema carries the spec's field ids (manifest_path 500 …), so readers
// that resolve by id accept it.
import { randomBytes } from 'node:crypto';

const optional = (type: unknown) => ['null', type];

const MANIFEST_FILE_SCHEMA = {
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
    {
      name: 'partitions',
      type: optional({
        type: 'array',
        'element-id': 508,
        items: {
          type: 'record',
          name: 'r508',
          fields: [
            { name: 'contains_null', type: 'boolean', 'field-id': 509 },
            { name: 'contains_nan', type: optional('boolean'), default: null, 'field-id': 518 },
            { name: 'lower_bound', type: optional('bytes'), default: null, 'field-id': 510 },
            { name: 'upper_bound', type: optional('bytes'), default: null, 'field-id': 511 },
          ],
        },
      }),
      default: null,
      'field-id': 507,
    },
    { name: 'key_metadata', type: optional('bytes'), default: null, 'field-id': 519 },
  ],
};

/** Avro `long`: zig-zag, then base-128 varint. */
function long(n: number): Buffer {
  let z = BigInt(n) >= 0n ? BigInt(n) << 1n : (-BigInt(n) << 1n) - 1n;
  const out: number[] = [];
  do {
    let b = Number(z & 0x7fn);
    z >>= 7n;
    if (z > 0n) b |= 0x80;
    out.push(b);
  } while (z > 0n);
  return Buffer.from(out);
}

function bytes(value: string): Buffer {
  const b = Buffer.from(value, 'utf8');
  return Buffer.concat([long(b.length), b]);
}

export function emptyManifestList(snapshot: { snapshotId: bigint; parentSnapshotId: bigint | null; sequenceNumber: number }): Uint8Array {
  const meta: Record<string, string> = {
    'avro.schema': JSON.stringify(MANIFEST_FILE_SCHEMA),
    'avro.codec': 'null',
    'snapshot-id': snapshot.snapshotId.toString(),
    'parent-snapshot-id': snapshot.parentSnapshotId === null ? 'null' : snapshot.parentSnapshotId.toString(),
    'sequence-number': String(snapshot.sequenceNumber),
    'format-version': '2',
  };
  const entries = Object.entries(meta);
  return Buffer.concat([
    Buffer.from([0x4f, 0x62, 0x6a, 0x01]),
    long(entries.length),
    ...entries.flatMap(([k, v]) => [bytes(k), bytes(v)]),
    long(0),
    randomBytes(16),
  ]);
}
