// Both catalogs against real services, with PyIceberg as the independent reader:
// - the REST client against the Apache Iceberg REST fixture (tables in versitygw S3):
//   namespace, create (schema with field ids, day(ts) + identity(line)), load, an
//   append commit, a stale commit → conflict, and a commit whose answer the network
//   loses (TCP fault proxy, reset after the response) → unknown, then a reload shows it
//   applied;
// - the file-system catalog on a local directory and on S3: PyIceberg reads its
//   metadata files with StaticTable.from_metadata.
// Services are started for real; a missing one fails the suite (never skips).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogSchema } from '../../config/catalog-schema.ts';
import { storeSchema, type StoreConfig } from '../../config/tiering-schema.ts';
import type { Catalog, TableIdent } from '../../sync/catalog.ts';
import { FileSystemCatalog } from '../../sync/fs-catalog.ts';
import { refHead, type LoadedTable, type TableUpdate } from '../../sync/iceberg/metadata.ts';
import { RestCatalog } from '../../sync/rest-catalog.ts';
import { storeLocation, StoreTableFileIO } from '../../sync/table-io-stores.ts';
import { FileObjectStore } from '../../tiering/stores/file-store.ts';
import type { ObjectStore } from '../../tiering/stores/object-store.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startIcebergRest, type IcebergRest } from '../services/iceberg-rest.ts';
import { pyiceberg, pyicebergBatch, type PySnapshot, type PyScan } from '../services/pyiceberg.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { emptyManifestList } from '../support/empty-manifest-list.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';
import { schema, spec } from '../unit/sync/fixtures.ts';

let s3: S3Server;
let rest: IcebergRest;
let proxy: FaultProxy;
let io: StoreTableFileIO;
let s3Template: StoreConfig;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['warehouse', 'warm'] });
  cleanups.push(() => s3.stop());
  rest = await startIcebergRest({ s3 });
  cleanups.push(() => rest.stop());
  proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: rest.port } });
  cleanups.push(() => proxy.close());
  s3Template = {
    ...storeSchema.parse({ url: 's3://warm', endpoint: s3.endpoint, region: s3.region, force_path_style: true }),
    credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
  };
  io = new StoreTableFileIO({ s3Template });
  cleanups.push(() => io.close());
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function restCatalog(uri: string): RestCatalog {
  const config = catalogSchema.parse({ type: 'rest', rest: { uri, request_timeout_ms: 20_000 } }).rest!;
  const catalog = new RestCatalog({ config });
  cleanups.push(() => catalog.close());
  return catalog;
}

/** A random positive snapshot id past 2^53, as other engines pick them. */
function snapshotId(): bigint {
  return (randomBytes(8).readBigUInt64BE() >> 1n) | (1n << 60n);
}

/** Builds an append of no files on `table`'s head (writing its empty manifest list); returns the requirement and updates. */
async function emptyAppend(table: LoadedTable, marker: string) {
  const m = table.metadata;
  const head = refHead(m);
  const id = snapshotId();
  const sequenceNumber = m['last-sequence-number'] + 1;
  const manifestList = `${m.location}/metadata/snap-${id}-${marker}.avro`;
  await io.writeOnce(manifestList, emptyManifestList({ snapshotId: id, parentSnapshotId: head?.['snapshot-id'] ?? null, sequenceNumber }));
  const updates: TableUpdate[] = [
    {
      action: 'add-snapshot',
      snapshot: {
        'snapshot-id': id,
        ...(head ? { 'parent-snapshot-id': head['snapshot-id'] } : {}),
        'sequence-number': sequenceNumber,
        'timestamp-ms': Date.now(),
        'manifest-list': manifestList,
        summary: { operation: 'append', 'lakeside.marker': marker },
        'schema-id': m['current-schema-id'],
      },
    },
    { action: 'set-snapshot-ref', 'ref-name': 'main', type: 'branch', 'snapshot-id': id },
  ];
  const requirements = [
    { type: 'assert-table-uuid' as const, uuid: m['table-uuid'] },
    { type: 'assert-ref-snapshot-id' as const, ref: 'main', 'snapshot-id': head?.['snapshot-id'] ?? null },
  ];
  return { id, requirements, updates };
}

const PY_STATIC = `
import json
from pyiceberg.table import StaticTable
t = StaticTable.from_metadata(args["location"], properties=args["properties"])
result = {
    "uuid": str(t.metadata.table_uuid),
    "schema": json.loads(t.schema().model_dump_json()),
    "spec": json.loads(t.spec().model_dump_json()),
    "snapshots": [{"snapshot_id": str(s.snapshot_id), "sequence_number": s.sequence_number, "summary": dict(s.summary.additional_properties)} for s in t.metadata.snapshots],
    "current": None if t.metadata.current_snapshot_id is None else str(t.metadata.current_snapshot_id),
    "rows": t.scan().to_arrow().num_rows,
}
`;

interface PyStatic {
  uuid: string;
  schema: { fields: { id: number; name: string; type: string; required: boolean }[] };
  spec: { 'spec-id': number; fields: { 'source-id': number; 'field-id': number; transform: string; name: string }[] };
  snapshots: { snapshot_id: string; sequence_number: number; summary: Record<string, string> }[];
  current: string | null;
  rows: number;
}

function expectSchemaAndSpec(got: { schema: PyStatic['schema']; spec: PyStatic['spec'] }): void {
  expect(got.schema.fields.map((f) => [f.id, f.name, f.type, f.required])).toEqual([
    [1, 'ts', 'timestamptz', true],
    [2, 'line', 'string', true],
    [3, 'value', 'double', false],
  ]);
  expect(got.spec.fields.map((f) => [f['source-id'], f.transform, f.name])).toEqual([
    [1, 'day', 'ts_day'],
    [2, 'identity', 'line'],
  ]);
}

describe('REST catalog (Apache Iceberg REST fixture)', () => {
  const ident: TableIdent = { namespace: ['plant', 'line3'], name: 'readings' };

  it('creates, loads, commits an append, turns a stale commit into a conflict; PyIceberg reads it', async () => {
    const catalog = restCatalog(rest.uri);
    await catalog.ensureNamespace(ident.namespace);
    await catalog.ensureNamespace(ident.namespace);
    expect(await catalog.loadTable(ident)).toBeNull();
    const created = await catalog.createTable(ident, { schema, spec, properties: { 'lakeside.dataset': 'readings' } });
    expect(created.metadataLocation).toMatch(/^s3:\/\/warehouse\/wh\/plant\/line3\/readings\/metadata\/.*\.metadata\.json$/);
    expect(created.metadata.schemas[0]!.fields.map((f) => [f.id, f.name])).toEqual([[1, 'ts'], [2, 'line'], [3, 'value']]);
    // A second agent's create loads the winner's table.
    const again = await catalog.createTable(ident, { schema, spec, properties: {} });
    expect(again.metadata['table-uuid']).toBe(created.metadata['table-uuid']);

    const loaded = (await catalog.loadTable(ident))!;
    const first = await emptyAppend(loaded, 'seq-1');
    const outcome = await catalog.commit(ident, first.requirements, first.updates);
    expect(outcome.kind).toBe('committed');
    if (outcome.kind !== 'committed') throw new Error('unreachable');
    expect(outcome.table.metadata['current-snapshot-id']).toBe(first.id);

    // Built on the same (now stale) head: the catalog refuses it.
    const stale = await emptyAppend(loaded, 'stale');
    expect(await catalog.commit(ident, stale.requirements, stale.updates)).toMatchObject({ kind: 'conflict' });
    expect((await catalog.loadTable(ident))!.metadata['current-snapshot-id']).toBe(first.id);

    const [md, snapshots, scan] = await pyicebergBatch<[PyStatic & { current_snapshot_id: string; partition_spec: PyStatic['spec'] }, PySnapshot[], PyScan]>(rest.clientProperties, [
      { op: 'metadata', args: { table: 'plant.line3.readings' } },
      { op: 'snapshots', args: { table: 'plant.line3.readings' } },
      { op: 'scan', args: { table: 'plant.line3.readings' } },
    ]);
    expectSchemaAndSpec({ schema: md.schema, spec: md.partition_spec });
    expect(md.current_snapshot_id).toBe(first.id.toString());
    expect(snapshots.map((s) => [s.snapshot_id, s.operation, s.summary['lakeside.marker']])).toEqual([[first.id.toString(), 'append', 'seq-1']]);
    expect(scan.row_count).toBe(0);
  });

  it('a commit whose answer is lost after the catalog handled it is unknown; a reload shows it applied', async () => {
    const catalog = restCatalog(proxy.url('http'));
    const t: TableIdent = { namespace: ['plant'], name: 'lost_answer' };
    await catalog.ensureNamespace(t.namespace);
    const table = await catalog.createTable(t, { schema, spec, properties: {} });
    const append = await emptyAppend(table, 'lost');
    proxy.setFault({ kind: 'reset-after-response' });
    let outcome;
    try {
      outcome = await catalog.commit(t, append.requirements, append.updates);
    } finally {
      proxy.setFault({ kind: 'pass' });
    }
    expect(outcome).toMatchObject({ kind: 'unknown' });
    expect(proxy.stats().responsesWithheld).toBeGreaterThan(0);
    const reloaded = (await catalog.loadTable(t))!;
    expect(reloaded.metadata['current-snapshot-id']).toBe(append.id);
    expect(refHead(reloaded.metadata)!.summary['lakeside.marker']).toBe('lost');
  });
});

describe('file-system catalog', () => {
  async function roundTrip(catalog: Catalog, pyProperties: Record<string, string>) {
    const ident: TableIdent = { namespace: ['plant', 'line3'], name: 'readings' };
    await catalog.ensureNamespace(ident.namespace);
    const created = await catalog.createTable(ident, { schema, spec, properties: { 'lakeside.dataset': 'readings' } });
    const first = await emptyAppend(created, 'fs-1');
    expect((await catalog.commit(ident, first.requirements, first.updates)).kind).toBe('committed');
    const stale = await emptyAppend(created, 'fs-stale');
    expect((await catalog.commit(ident, stale.requirements, stale.updates)).kind).toBe('conflict');
    const head = (await catalog.loadTable(ident))!;
    const second = await emptyAppend(head, 'fs-2');
    const outcome = await catalog.commit(ident, second.requirements, second.updates);
    if (outcome.kind !== 'committed') throw new Error(`expected committed, got ${JSON.stringify(outcome)}`);
    expect(outcome.table.metadataLocation).toMatch(/\/plant\/line3\/readings\/metadata\/v3\.metadata\.json$/);

    const py = await pyiceberg<PyStatic>(rest.clientProperties, { script: PY_STATIC }, { location: outcome.table.metadataLocation, properties: pyProperties });
    expect(py.uuid).toBe(created.metadata['table-uuid']);
    expectSchemaAndSpec(py);
    expect(py.spec.fields.map((f) => f['field-id'])).toEqual([1000, 1001]);
    expect(py.snapshots.map((s) => [s.snapshot_id, s.sequence_number, s.summary['lakeside.marker']])).toEqual([
      [first.id.toString(), 1, 'fs-1'],
      [second.id.toString(), 2, 'fs-2'],
    ]);
    expect(py.current).toBe(second.id.toString());
    expect(py.rows).toBe(0);
  }

  it('on a local directory: PyIceberg reads the metadata files it writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lakeside-fs-catalog-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new FileObjectStore(dir);
    await store.start();
    const local = new StoreTableFileIO({ mounts: [{ base: storeLocation(store), store }] });
    const previous = io;
    io = local;
    try {
      await roundTrip(new FileSystemCatalog({ store, rootPrefix: 'iceberg' }), {});
    } finally {
      io = previous;
    }
  });

  it('on S3: the conditional create of the next version is the commit; PyIceberg reads it', async () => {
    const store: ObjectStore = new S3ObjectStore({ ...s3Template, url: 's3://warm/site' });
    const rival: ObjectStore = new S3ObjectStore({ ...s3Template, url: 's3://warm/site' });
    cleanups.push(() => store.close(), () => rival.close());
    const catalog = new FileSystemCatalog({ store, rootPrefix: 'iceberg' });
    // Two agents commit on the same head at once: If-None-Match lets exactly one create the version.
    const raced: TableIdent = { namespace: ['plant'], name: 'raced' };
    const base = await catalog.createTable(raced, { schema, spec, properties: {} });
    const mine = await emptyAppend(base, 'mine');
    const theirs = await emptyAppend(base, 'theirs');
    const outcomes = await Promise.all([
      catalog.commit(raced, mine.requirements, mine.updates),
      new FileSystemCatalog({ store: rival, rootPrefix: 'iceberg' }).commit(raced, theirs.requirements, theirs.updates),
    ]);
    expect(outcomes.map((o) => o.kind).sort()).toEqual(['committed', 'conflict']);
    expect((await catalog.loadTable(raced))!.metadata.snapshots).toHaveLength(1);

    await roundTrip(catalog, {
      's3.endpoint': s3.endpoint,
      's3.access-key-id': s3.accessKeyId,
      's3.secret-access-key': s3.secretAccessKey,
      's3.region': s3.region,
      's3.path-style-access': 'true',
    });
  });
});
