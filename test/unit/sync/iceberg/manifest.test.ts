import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { avroType, decodeAvroFile, type AvroSchema } from '../../../../sync/iceberg/avro-file.ts';
import type { DataFile } from '../../../../sync/iceberg/data-file.ts';
import { manifestListEntryFor, MANIFEST_LIST_AVRO_SCHEMA, readManifestList, writeManifestList, type ManifestFile } from '../../../../sync/iceberg/manifest-list.ts';
import { manifestAvroSchema, readManifest, writeManifest, type ManifestEntry } from '../../../../sync/iceberg/manifest.ts';
import { partitionSpecFor, tableSchemaFor } from '../../../../sync/iceberg/table-schema.ts';
import { lineDataset, lineFile, T0_DAY } from '../../../support/iceberg-files.ts';

const schema = tableSchemaFor(lineDataset);
const spec = partitionSpecFor(lineDataset);
// Ids past 2^53, as other engines pick them; a JS number would change them.
const BIG_ID = 2n ** 63n - 1n;
const OTHER_ID = 2n ** 53n + 1n;

/** Built afresh on each call: equal values, no shared objects. */
function makeEntries(): ManifestEntry[] {
  const a = lineFile('s3://warm/readings/a.parquet', 'l1', 'plant_a').dataFile;
  const b = lineFile('s3://warm/readings/b.parquet', 'l2', 'plant_b', 1000).dataFile;
  return [
    { status: 1, snapshot_id: null, sequence_number: null, file_sequence_number: null, data_file: a },
    { status: 0, snapshot_id: OTHER_ID, sequence_number: 2n ** 60n, file_sequence_number: 2n ** 60n + 1n, data_file: b },
    { status: 2, snapshot_id: BIG_ID, sequence_number: 3n, file_sequence_number: 3n, data_file: a },
  ];
}
const entries = makeEntries();
const fileA = entries[0]!.data_file;

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A container file written by avsc's own stream encoder (deflate, random sync marker), as another engine would. */
async function foreignFile(avroSchema: AvroSchema, metadata: Record<string, string>, records: unknown[]): Promise<Buffer> {
  const meta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Buffer.from(v)]));
  // avsc's typings omit the documented `metadata` option.
  const options = { codec: 'deflate', metadata: meta } as ConstructorParameters<typeof avro.streams.BlockEncoder>[1];
  const encoder = new avro.streams.BlockEncoder(avroType(avroSchema), options);
  const done = collect(encoder);
  for (const record of records) encoder.write(record);
  encoder.end();
  return done;
}

/** `schema` with extra fields added to the record `name` (wherever it is nested). */
function withExtraFields(schema: unknown, name: string, extra: Record<string, unknown>[]): AvroSchema {
  const copy = structuredClone(schema) as Record<string, unknown>;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      if (record.type === 'record' && record.name === name) (record.fields as unknown[]).push(...extra);
      for (const value of Object.values(record)) visit(value);
    }
  };
  visit(copy);
  return copy;
}

describe('manifest', () => {
  const bytes = writeManifest({ schema, spec, entries });

  it('round-trips every entry, 64-bit ids and sequence numbers exact', () => {
    const back = readManifest(bytes);
    expect(back.entries).toEqual(entries);
    expect(back.entries[1]!.snapshot_id).toBe(OTHER_ID);
    expect(back.entries[2]!.snapshot_id).toBe(BIG_ID);
    expect([back.schema, back.schemaId, back.spec, back.formatVersion, back.content]).toEqual([schema, 0, spec, 2, 'data']);
  });

  it('writes the header keys the spec requires, in order', () => {
    const file = decodeAvroFile(bytes);
    expect([...file.metadata.keys()]).toEqual(['schema', 'schema-id', 'partition-spec', 'partition-spec-id', 'format-version', 'content']);
    expect(JSON.parse(file.metadata.get('partition-spec')!)).toEqual(spec.fields);
    expect([file.metadata.get('format-version'), file.metadata.get('content'), file.metadata.get('schema-id')]).toEqual(['2', 'data', '0']);
  });

  it('puts a field id on every Avro field, and types the partition from the spec', () => {
    const file = decodeAvroFile(bytes);
    const ids: number[] = [];
    const visit = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(visit);
      else if (node && typeof node === 'object') {
        const o = node as Record<string, unknown>;
        if (o.type === 'record') {
          for (const field of o.fields as Record<string, unknown>[]) {
            expect(field['field-id'], String(field.name)).toBeTypeOf('number');
            ids.push(field['field-id'] as number);
          }
        }
        Object.values(o).forEach(visit);
      }
    };
    visit(file.schema);
    expect(ids).toEqual(expect.arrayContaining([0, 1, 2, 3, 4, 134, 100, 101, 102, 103, 104, 108, 117, 118, 109, 119, 120, 110, 121, 122, 137, 138, 139, 125, 126, 127, 128, 129, 130, 131, 132, 135, 140, 1000, 1001, 1002]));
    expect(JSON.stringify(file.schema)).toContain('"element-id":133');
    const partition = JSON.stringify(file.schema).match(/"name":"r102".*?\]\}/)![0];
    expect(partition).toContain('{"name":"ts_day","type":["null",{"type":"int","logicalType":"date"}],"default":null,"field-id":1000}');
    expect(partition).toContain('{"name":"plant","type":["null","string"],"default":null,"field-id":1001}');
  });

  it('is deterministic: the same input gives the same bytes, another input others', () => {
    const again = writeManifest({ schema, spec, entries: makeEntries() });
    expect(again.equals(bytes)).toBe(true);
    // A schema parsed from elsewhere, keys in another order: same bytes.
    const reordered = JSON.parse(JSON.stringify(schema, ['fields', 'type', 'schema-id', 'name', 'id', 'required']));
    expect(Object.keys(reordered)).toEqual(['fields', 'type', 'schema-id']);
    expect(writeManifest({ schema: reordered, spec, entries }).equals(bytes)).toBe(true);
    const other = writeManifest({ schema, spec, entries: entries.slice(0, 2) });
    expect(other.equals(bytes)).toBe(false);
    // The sync marker (16 bytes after the header) is derived from the content.
    expect(other.subarray(-16).equals(bytes.subarray(-16))).toBe(false);
  });

  it('refuses a damaged file: bad magic, a cut block, a wrong sync marker', () => {
    expect(() => readManifest(Buffer.from('PAR1xxxx'))).toThrow(/not an Avro container file/);
    expect(() => readManifest(bytes.subarray(0, bytes.length - 20))).toThrow(/truncated/);
    const wrongSync = Buffer.from(bytes);
    wrongSync[wrongSync.length - 1]! ^= 0xff;
    expect(() => readManifest(wrongSync)).toThrow(/sync marker/);
  });

  it('refuses an existing entry without sequence numbers, and a wrongly typed value, by name', () => {
    const bad = { ...entries[1]!, sequence_number: null };
    expect(() => writeManifest({ schema, spec, entries: [bad] })).toThrow(/must carry both sequence numbers/);
    const wrong: DataFile = { ...fileA, partition: { ...fileA.partition, ts_day: 'monday' } };
    expect(() => writeManifest({ schema, spec, entries: [{ ...entries[0]!, data_file: wrong }] })).toThrow(/partition\.ts_day/);
  });

  it('reads a manifest another writer made: deflate blocks, random sync marker, fields it does not know', async () => {
    const extended = withExtraFields(manifestAvroSchema(schema, spec), 'r2', [
      { name: 'first_row_id', type: ['null', 'long'], default: null, 'field-id': 142 },
      { name: 'referenced_data_file', type: ['null', 'string'], default: null, 'field-id': 143 },
      { name: 'content_offset', type: ['null', 'long'], default: null, 'field-id': 144 },
      { name: 'content_size_in_bytes', type: ['null', 'long'], default: null, 'field-id': 145 },
    ]);
    const records = entries.map((e) => ({ ...e, data_file: { ...e.data_file, first_row_id: BIG_ID, referenced_data_file: null, content_offset: 12n, content_size_in_bytes: 34n } }));
    const metadata = Object.fromEntries(decodeAvroFile(bytes).metadata);
    const foreign = await foreignFile(extended, metadata, records);
    expect(foreign.includes('deflate')).toBe(true);
    const back = readManifest(foreign);
    expect(back.entries).toEqual(entries);
  });
});

describe('manifest list', () => {
  const manifestBytes = writeManifest({ schema, spec, entries });
  const entry = manifestListEntryFor({ path: 's3://warm/m.avro', length: manifestBytes.length, schema, spec, entries, snapshotId: BIG_ID, sequenceNumber: 7n });

  it('computes a new manifest\'s entry: counts, rows, sequence numbers, partition summaries', () => {
    const day = Buffer.alloc(4);
    day.writeInt32LE(T0_DAY);
    expect(entry).toEqual({
      manifest_path: 's3://warm/m.avro',
      manifest_length: BigInt(manifestBytes.length),
      partition_spec_id: 0,
      content: 0,
      sequence_number: 7n,
      // The added entry's inherited 7 (the existing one has 2^60; the deleted one's 3 does not count).
      min_sequence_number: 7n,
      added_snapshot_id: BIG_ID,
      added_files_count: 1,
      existing_files_count: 1,
      deleted_files_count: 1,
      added_rows_count: 4n,
      existing_rows_count: 4n,
      deleted_rows_count: 4n,
      partitions: [
        { contains_null: false, contains_nan: false, lower_bound: day, upper_bound: day },
        { contains_null: false, contains_nan: false, lower_bound: Buffer.from('plant_a'), upper_bound: Buffer.from('plant_b') },
        { contains_null: false, contains_nan: false, lower_bound: Buffer.from('l1'), upper_bound: Buffer.from('l2') },
      ],
      key_metadata: null,
    });
    const older = manifestListEntryFor({ path: 'x', length: 1, schema, spec, entries: [{ ...entries[1]!, sequence_number: 2n }, entries[0]!], snapshotId: 1n, sequenceNumber: 9n });
    expect(older.min_sequence_number).toBe(2n);
  });

  it('summarizes null partition values without bounds', () => {
    const nullLine: ManifestEntry = { ...entries[0]!, data_file: { ...fileA, partition: { ...fileA.partition, line: null } } };
    const summary = manifestListEntryFor({ path: 'x', length: 1, schema, spec, entries: [nullLine], snapshotId: 1n, sequenceNumber: 1n }).partitions![2];
    expect(summary).toEqual({ contains_null: true, contains_nan: false, lower_bound: null, upper_bound: null });
  });

  const header = { snapshotId: BIG_ID, parentSnapshotId: OTHER_ID, sequenceNumber: 7n };
  const parentEntry: ManifestFile = { ...entry, manifest_path: 's3://warm/old.avro', added_snapshot_id: OTHER_ID, sequence_number: 6n, min_sequence_number: 1n, partitions: null };
  const listBytes = writeManifestList(header, [entry, parentEntry]);

  it('round-trips header and entries, ids exact, and copies read entries unchanged', () => {
    const back = readManifestList(listBytes);
    expect(back).toEqual({ ...header, formatVersion: 2, manifests: [entry, parentEntry] });
    expect([...decodeAvroFile(listBytes).metadata.keys()]).toEqual(['snapshot-id', 'parent-snapshot-id', 'sequence-number', 'format-version']);
    // What the committer does: the parent's entries, read and written again, are the same bytes.
    expect(writeManifestList(header, back.manifests).equals(listBytes)).toBe(true);
    const first = readManifestList(writeManifestList({ ...header, parentSnapshotId: null }, []));
    expect([first.parentSnapshotId, first.manifests]).toEqual([null, []]);
  });

  it('is deterministic', () => {
    const fresh = manifestListEntryFor({ path: 's3://warm/m.avro', length: manifestBytes.length, schema, spec, entries: makeEntries(), snapshotId: BIG_ID, sequenceNumber: 7n });
    expect(writeManifestList(header, [fresh, { ...parentEntry }]).equals(listBytes)).toBe(true);
    expect(writeManifestList({ ...header, sequenceNumber: 8n }, [entry, parentEntry]).equals(listBytes)).toBe(false);
  });

  it('reads a list another writer made (deflate, an unknown v3 field)', async () => {
    const extended = withExtraFields(MANIFEST_LIST_AVRO_SCHEMA, 'manifest_file', [{ name: 'first_row_id', type: ['null', 'long'], default: null, 'field-id': 520 }]);
    const foreign = await foreignFile(extended, { 'snapshot-id': BIG_ID.toString(), 'parent-snapshot-id': 'null', 'sequence-number': '7', 'format-version': '2' }, [
      { ...entry, first_row_id: 5n },
    ]);
    const back = readManifestList(foreign);
    expect(back).toEqual({ snapshotId: BIG_ID, parentSnapshotId: null, sequenceNumber: 7n, formatVersion: 2, manifests: [entry] });
  });
});
