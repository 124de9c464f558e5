// lakeside's manifests and manifest lists read by an independent implementation:
// PyIceberg builds a table from files written here (metadata JSON, manifest lists,
// manifests, Parquet data files from the hot-tier writer) and decodes them with its
// own classes: read_manifest_list, ManifestFile.fetch_manifest_entry, from_bytes, and
// a full table scan (StaticTable), which must show the `plant` column although no
// Parquet file holds it (identity partition values projected by the reader). Then Java
// Iceberg plans the same table and appends to it; lakeside reads Java's files back.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyIcebergJson } from '../../sync/iceberg/json.ts';
import { manifestListEntryFor, readManifestList, writeManifestList, type ManifestFile } from '../../sync/iceberg/manifest-list.ts';
import { readManifest, writeManifest, type ManifestEntry } from '../../sync/iceberg/manifest.ts';
import type { Snapshot, TableMetadata } from '../../sync/iceberg/metadata.ts';
import { lastColumnId, partitionSpecFor, tableSchemaFor } from '../../sync/iceberg/table-schema.ts';
import { icebergJavaLocal, type JavaLocalResult } from '../services/iceberg-java.ts';
import { pyicebergLocal } from '../services/pyiceberg.ts';
import { lineDataset, lineFile, T0, T0_DAY } from '../support/iceberg-files.ts';

interface PyEntry {
  status: number;
  snapshot_id: string | number;
  sequence_number: number;
  file_sequence_number: number;
  file_path: string;
  file_format: string;
  content: number;
  partition: unknown[];
  record_count: number;
  file_size_in_bytes: number;
  value_counts: Record<string, number>;
  null_value_counts: Record<string, number>;
  nan_value_counts: Record<string, number>;
  lower_bounds: Record<string, unknown>;
  upper_bounds: Record<string, unknown>;
  split_offsets: number[];
  sort_order_id: number | null;
}
interface PyManifest {
  manifest_path: string;
  manifest_length: number;
  sequence_number: number;
  min_sequence_number: number;
  added_snapshot_id: string | number;
  added_files_count: number;
  existing_files_count: number;
  added_rows_count: number;
  partitions: { contains_null: boolean; contains_nan: boolean | null; lower_bound: { base64: string } | null; upper_bound: { base64: string } | null }[];
  entries: PyEntry[];
}
interface PyTable {
  snapshot_id: string | number;
  sequence_number: number;
  manifests: PyManifest[];
  columns?: string[];
  rows?: Record<string, unknown>[];
  filtered_files?: string[];
}

// Past 2^53: a JS number would round them.
const SNAPSHOT_1 = 2n ** 62n + 12_345n;
const SNAPSHOT_2 = 2n ** 63n - 7n;
const SNAPSHOT_PY = 2n ** 63n - 1n;

const b64 = (b: Buffer): { base64: string } => ({ base64: b.toString('base64') });

describe('Iceberg manifests read by PyIceberg and Java Iceberg', () => {
  let dir: string;
  const url = (path: string): string => pathToFileURL(join(dir, path)).href;
  const schema = tableSchemaFor(lineDataset);
  const spec = partitionSpecFor(lineDataset);

  function write(path: string, bytes: Uint8Array | string): number {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), bytes);
    return typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  }

  function added(path: string, line: string, plant: string, offset: number): ManifestEntry {
    const file = lineFile(url(path), line, plant, offset);
    write(path, file.parquet.bytes);
    return { status: 1, snapshot_id: null, sequence_number: null, file_sequence_number: null, data_file: file.dataFile };
  }

  function metadata(snapshots: Snapshot[]): string {
    const head = snapshots.at(-1)!;
    const table: TableMetadata = {
      'format-version': 2,
      'table-uuid': '5d8f1d3e-2b7c-4a8e-9a51-0c6d2f1b7e42',
      location: url(''),
      'last-sequence-number': head['sequence-number'],
      'last-updated-ms': head['timestamp-ms'],
      'last-column-id': lastColumnId(schema),
      'current-schema-id': 0,
      schemas: [schema],
      'default-spec-id': 0,
      'partition-specs': [spec],
      'last-partition-id': Math.max(...spec.fields.map((f) => f['field-id'])),
      'default-sort-order-id': 0,
      'sort-orders': [{ 'order-id': 0, fields: [] }],
      properties: {},
      'current-snapshot-id': head['snapshot-id'],
      refs: { main: { 'snapshot-id': head['snapshot-id'], type: 'branch' } },
      snapshots,
      'snapshot-log': snapshots.map((s) => ({ 'snapshot-id': s['snapshot-id'], 'timestamp-ms': s['timestamp-ms'] })),
      'metadata-log': [],
    };
    const path = `metadata/v${snapshots.length}.metadata.json`;
    write(path, stringifyIcebergJson(table, 2));
    return join(dir, path);
  }

  let first: PyTable;
  let second: PyTable;
  let firstList: ManifestFile[];
  let written: ManifestEntry[];
  let ourList2: ManifestFile[];
  let java: JavaLocalResult;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lakeside-iceberg-manifests-'));
    // Snapshot 1: one manifest, two files of two plants; entries inherit id and sequence.
    const entries1 = [added('data/a.parquet', 'l1', 'plant_a', 0), added('data/b.parquet', 'l2', 'plant_b', 1_000)];
    const manifest1 = writeManifest({ schema, spec, entries: entries1 });
    write('metadata/m1.avro', manifest1);
    firstList = [manifestListEntryFor({ path: url('metadata/m1.avro'), length: manifest1.length, schema, spec, entries: entries1, snapshotId: SNAPSHOT_1, sequenceNumber: 1n })];
    write('metadata/snap-1.avro', writeManifestList({ snapshotId: SNAPSHOT_1, parentSnapshotId: null, sequenceNumber: 1n }, firstList));
    const snapshot1: Snapshot = {
      'snapshot-id': SNAPSHOT_1, 'sequence-number': 1, 'timestamp-ms': 1_700_000_000_000,
      'manifest-list': url('metadata/snap-1.avro'), summary: { operation: 'append' }, 'schema-id': 0,
    };
    first = await pyicebergLocal<PyTable>({ metadata: metadata([snapshot1]) });

    // Snapshot 2: the parent's list entries copied as read back, plus a new manifest.
    const entries2 = [added('data/c.parquet', 'l1', 'plant_a', 2_000)];
    const manifest2 = writeManifest({ schema, spec, entries: entries2 });
    write('metadata/m2.avro', manifest2);
    const parent = readManifestList(readFileSync(join(dir, 'metadata/snap-1.avro')));
    const list2 = [
      manifestListEntryFor({ path: url('metadata/m2.avro'), length: manifest2.length, schema, spec, entries: entries2, snapshotId: SNAPSHOT_2, sequenceNumber: 2n }),
      ...parent.manifests,
    ];
    write('metadata/snap-2.avro', writeManifestList({ snapshotId: SNAPSHOT_2, parentSnapshotId: SNAPSHOT_1, sequenceNumber: 2n }, list2));
    const snapshot2: Snapshot = {
      'snapshot-id': SNAPSHOT_2, 'parent-snapshot-id': SNAPSHOT_1, 'sequence-number': 2, 'timestamp-ms': 1_700_000_001_000,
      'manifest-list': url('metadata/snap-2.avro'), summary: { operation: 'append' }, 'schema-id': 0,
    };
    second = await pyicebergLocal<PyTable>({
      metadata: metadata([snapshot1, snapshot2]),
      scan: true,
      filter: "plant == 'plant_b'",
      rewrite: { manifest: join(dir, 'metadata/py-m.avro'), list: join(dir, 'metadata/py-snap.avro'), snapshot_id: SNAPSHOT_PY.toString(), codec: 'deflate' },
    });
    written = [...entries2, ...entries1];
    ourList2 = list2;

    // Java loads the same table (snapshot 2), plans it, and appends with its own writers.
    write('metadata/version-hint.text', '2');
    java = await icebergJavaLocal(url(''), url('data/java.parquet'), 1234);
  }, 180_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the manifest list: path, length, counts, sequence numbers, snapshot id exact', () => {
    expect(String(first.snapshot_id)).toBe(SNAPSHOT_1.toString());
    expect(first.manifests).toHaveLength(1);
    const m = first.manifests[0]!;
    expect(m.manifest_path).toBe(url('metadata/m1.avro'));
    expect(m.manifest_length).toBe(Number(firstList[0]!.manifest_length));
    expect(String(m.added_snapshot_id)).toBe(SNAPSHOT_1.toString());
    expect([m.sequence_number, m.min_sequence_number, m.added_files_count, m.existing_files_count, m.added_rows_count]).toEqual([1, 1, 2, 0, 8]);
    // Partition summaries: day, plant, line, in single-value binary form.
    const day = Buffer.alloc(4);
    day.writeInt32LE(T0_DAY);
    expect(m.partitions).toEqual([
      { contains_null: false, contains_nan: false, lower_bound: b64(day), upper_bound: b64(day) },
      { contains_null: false, contains_nan: false, lower_bound: b64(Buffer.from('plant_a')), upper_bound: b64(Buffer.from('plant_b')) },
      { contains_null: false, contains_nan: false, lower_bound: b64(Buffer.from('l1')), upper_bound: b64(Buffer.from('l2')) },
    ]);
  });

  it('reads the entries: inherited snapshot id and sequence numbers, partition values, counts', () => {
    const [a, b] = first.manifests[0]!.entries;
    expect(a!.file_path).toBe(url('data/a.parquet'));
    expect(b!.file_path).toBe(url('data/b.parquet'));
    for (const e of [a!, b!]) {
      expect([e.status, e.content, e.file_format, e.record_count, e.sequence_number, e.file_sequence_number, e.sort_order_id]).toEqual([1, 0, 'PARQUET', 4, 1, 1, 0]);
      expect(String(e.snapshot_id)).toBe(SNAPSHOT_1.toString());
      expect(e.split_offsets).toHaveLength(2);
      expect(e.value_counts['100000']).toBe(4);
      expect(e.null_value_counts['100000']).toBe(0);
      expect(e.nan_value_counts).toEqual({ '3': 1 });
    }
    expect(a!.partition).toEqual([T0_DAY, 'plant_a', 'l1']);
    expect(b!.partition).toEqual([T0_DAY, 'plant_b', 'l2']);
  });

  it('decodes the bounds to the values written, by the table schema types', () => {
    const a = first.manifests[0]!.entries[0]!;
    // lineRows: ts T0+1..T0+9, value -2.25..1.5 (NaN skipped), count -3..2^40, ok false..true, code -2..100.
    expect(a.lower_bounds).toMatchObject({ '2': 'l1', '3': -2.25, '4': -3, '5': false, '6': -2, '100000': 'plant_a' });
    expect(a.upper_bounds).toMatchObject({ '2': 'l1', '3': 1.5, '4': 2 ** 40, '5': true, '6': 100, '100000': 'plant_a' });
    expect([a.lower_bounds['1'], a.upper_bounds['1']]).toEqual([T0 + 1, T0 + 9]);
    expect(String(a.lower_bounds['7'])).toMatch(/^0{63}1$/);
  });

  it('keeps the parent snapshot\'s manifests, copied unchanged, beside the new one', () => {
    expect(String(second.snapshot_id)).toBe(SNAPSHOT_2.toString());
    expect(second.manifests.map((m) => [m.manifest_path, m.sequence_number, String(m.added_snapshot_id)])).toEqual([
      [url('metadata/m2.avro'), 2, SNAPSHOT_2.toString()],
      [url('metadata/m1.avro'), 1, SNAPSHOT_1.toString()],
    ]);
    const c = second.manifests[0]!.entries[0]!;
    expect([c.sequence_number, String(c.snapshot_id)]).toEqual([2, SNAPSHOT_2.toString()]);
    expect(second.manifests[1]!.entries.map((e) => [e.sequence_number, String(e.snapshot_id)])).toEqual([
      [1, SNAPSHOT_1.toString()],
      [1, SNAPSHOT_1.toString()],
    ]);
  });

  it('scans the table: every row, with the plant column projected from the identity partition', () => {
    expect(second.columns).toEqual(['ts', 'line', 'value', 'count', 'ok', 'code', 'image', 'plant']);
    const rows = second.rows!;
    expect(rows).toHaveLength(12);
    const plants = rows.map((r) => `${String(r.plant)}/${String(r.line)}`).sort();
    expect(plants).toEqual([...Array(8).fill('plant_a/l1'), ...Array(4).fill('plant_b/l2')]);
  });

  it('prunes by plant through the partition', () => {
    expect(second.filtered_files).toEqual([url('data/b.parquet')]);
  });

  it('reads a manifest list and a manifest that PyIceberg wrote (deflate, its own schema): ids exact, entries intact', () => {
    const listBytes = readFileSync(join(dir, 'metadata/py-snap.avro'));
    expect(listBytes.includes('avro.codec\x0edeflate')).toBe(true); // compressed blocks, not lakeside's null codec
    const list = readManifestList(listBytes);
    expect([list.snapshotId, list.parentSnapshotId, list.sequenceNumber, list.formatVersion]).toEqual([SNAPSHOT_PY, SNAPSHOT_2, 3n, 2]);
    expect(list.manifests).toHaveLength(1);
    const m = list.manifests[0]!;
    expect([m.manifest_path, m.added_snapshot_id, m.sequence_number, m.min_sequence_number]).toEqual([join(dir, 'metadata/py-m.avro'), SNAPSHOT_PY, 3n, 1n]);
    expect([m.added_files_count, m.existing_files_count, m.deleted_files_count, m.existing_rows_count]).toEqual([0, 3, 0, 12n]);

    const manifest = readManifest(readFileSync(join(dir, 'metadata/py-m.avro')));
    expect([manifest.formatVersion, manifest.content, manifest.spec.fields]).toEqual([2, 'data', spec.fields]);
    expect(manifest.schema.fields.map((f) => [f.id, f.name])).toEqual(schema.fields.map((f) => [f.id, f.name]));
    expect(manifest.entries.map((e) => [e.status, e.snapshot_id, e.sequence_number, e.file_sequence_number])).toEqual([
      [0, SNAPSHOT_2, 2n, 2n],
      [0, SNAPSHOT_1, 1n, 1n],
      [0, SNAPSHOT_1, 1n, 1n],
    ]);
    // The data_file of each entry reads back as lakeside wrote it, bounds byte for byte.
    for (const [i, entry] of manifest.entries.entries()) {
      const ours = written[i]!.data_file;
      const theirs = entry.data_file;
      expect(theirs.file_path).toBe(ours.file_path);
      expect(theirs.partition).toEqual(ours.partition);
      expect([theirs.record_count, theirs.file_size_in_bytes, theirs.split_offsets]).toEqual([ours.record_count, ours.file_size_in_bytes, ours.split_offsets]);
      for (const key of ['value_counts', 'null_value_counts', 'nan_value_counts', 'column_sizes', 'lower_bounds', 'upper_bounds'] as const) {
        expect(theirs[key], key).toEqual(ours[key]);
      }
    }
  });

  it('Java Iceberg plans the table from lakeside\'s manifests: partitions, inherited sequence numbers, plant bounds', () => {
    const files = [...java.files].sort((x, y) => x.path.localeCompare(y.path));
    expect(files.map((f) => [f.path, f.record_count, f.partition, f.data_sequence_number, f.file_sequence_number, f.plant_lower, f.plant_upper])).toEqual([
      [url('data/a.parquet'), 4, [String(T0_DAY), 'plant_a', 'l1'], 1, 1, 'plant_a', 'plant_a'],
      [url('data/b.parquet'), 4, [String(T0_DAY), 'plant_b', 'l2'], 1, 1, 'plant_b', 'plant_b'],
      [url('data/c.parquet'), 4, [String(T0_DAY), 'plant_a', 'l1'], 2, 2, 'plant_a', 'plant_a'],
    ]);
    expect(files[0]!.split_offsets).toMatch(/^\[4, \d+\]$/);
  });

  it('reads the manifest list and manifest Java wrote on top: its random 64-bit id exact, lakeside\'s entries kept', () => {
    const javaId = BigInt(java.snapshot_id);
    const list = readManifestList(readFileSync(new URL(java.manifest_list)));
    expect([list.snapshotId, list.parentSnapshotId, list.sequenceNumber, list.formatVersion]).toEqual([javaId, SNAPSHOT_2, 3n, 2]);
    expect(java.sequence_number).toBe(3);
    const [javas, ...kept] = list.manifests;
    // Java copies the parent's manifest list entries; they read back as lakeside wrote them.
    expect(kept).toEqual(ourList2);
    expect([javas!.added_snapshot_id, javas!.sequence_number, javas!.added_files_count, javas!.added_rows_count]).toEqual([javaId, 3n, 1, 4n]);

    const manifest = readManifest(readFileSync(new URL(javas!.manifest_path)));
    expect([manifest.formatVersion, manifest.content, manifest.spec]).toEqual([2, 'data', spec]);
    expect(manifest.entries).toHaveLength(1);
    const entry = manifest.entries[0]!;
    expect([entry.status, entry.snapshot_id, entry.sequence_number, entry.file_sequence_number]).toEqual([1, javaId, null, null]);
    expect(entry.data_file).toMatchObject({
      file_path: url('data/java.parquet'),
      file_format: 'PARQUET',
      partition: { ts_day: T0_DAY, plant: 'plant_java', line: 'l9' },
      record_count: 4n,
      file_size_in_bytes: 1234n,
    });
  });
});
