// Self-test of the real-service harness behind the tiering and catalog tests: the S3
// server (versitygw), the Apache Iceberg REST fixture storing its metadata in that S3
// server, and PyIceberg reading through both. Each starts, answers, and stops cleanly,
// twice in a row; if this file fails, failures in the catalog tests say nothing about
// lakeside. (Mosquitto's own start/answer/stop twice is in harness.test.ts.)
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { provisionIcebergRest, startIcebergRest } from '../services/iceberg-rest.ts';
import { provisionPyiceberg, pyiceberg, pyicebergBatch, pyicebergClient, type PyDataFile, type PyScan, type PySnapshot } from '../services/pyiceberg.ts';
import { provisionVersitygw, startS3Server, type S3Server } from '../services/s3-server.ts';
import { folderNamedBy, keptFolder } from '../support/kept-logs.ts';
import { pidAlive, portAccepts } from '../support/liveness.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

// A cold cache builds or downloads for minutes: do it here, under the hook timeout,
// not inside a test's own timeout.
beforeAll(async () => {
  await Promise.all([provisionVersitygw(), provisionIcebergRest(), provisionPyiceberg()]);
});

async function s3Server(buckets: string[] = []): Promise<{ s3: S3Server; client: S3Client }> {
  const s3 = await startS3Server({ buckets });
  cleanups.push(() => s3.stop());
  const client = s3.client();
  cleanups.push(async () => client.destroy());
  return { s3, client };
}

async function getText(client: S3Client, bucket: string, key: string): Promise<string> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return res.Body!.transformToString();
}

/** The HTTP status of a rejected S3 call (the SDK puts it in `$metadata`). */
async function statusOf(call: Promise<unknown>): Promise<number | undefined> {
  try {
    await call;
    return 200;
  } catch (e) {
    return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  }
}

describe('S3 server (versitygw)', () => {
  for (const round of [1, 2]) {
    it(`starts, stores and serves objects, and stops cleanly (round ${round})`, async () => {
      const { s3, client } = await s3Server(['harness']);
      expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
      const pid = s3.pid!;
      expect(pidAlive(pid)).toBe(true);

      await client.send(new PutObjectCommand({ Bucket: 'harness', Key: 'a/b.json', Body: '{"round":' + round + '}' }));
      expect(await getText(client, 'harness', 'a/b.json')).toBe(`{"round":${round}}`);
      const listed = await client.send(new ListObjectsV2Command({ Bucket: 'harness', Prefix: 'a/' }));
      expect(listed.Contents?.map((o) => o.Key)).toEqual(['a/b.json']);

      // The second round keeps its log, as a failed test would: the stop is as clean.
      await s3.stop({ keepLogs: round === 2 });
      expect(pidAlive(pid)).toBe(false);
      expect(await portAccepts(s3.port)).toBe(false);
      expect(existsSync(s3.dir)).toBe(false);
      if (round === 1) expect(s3.keptLogs).toBeUndefined();
      else expect(readFileSync(join(keptFolder(s3.keptLogs, cleanups), 'versitygw.log'), 'utf8')).toMatch(/bound on host 127\.0\.0\.1 and port \d+/);
    });
  }

  it('a server that cannot bind its pinned port fails with its log kept in test-logs, named by the error', async () => {
    const { s3 } = await s3Server();
    const error: Error = await startS3Server({ port: s3.port, startTimeoutMs: 10_000 }).then(
      async (second) => {
        await second.stop();
        return new Error('a second server started on a taken port');
      },
      (e: Error) => e,
    );
    expect(error.message).toMatch(/versitygw exited during start[\s\S]*address already in use/);
    const folder = folderNamedBy(error, 'versitygw', cleanups);
    expect(readFileSync(join(folder, 'versitygw.log'), 'utf8')).toMatch(/address already in use/);
    expect(readFileSync(join(folder, 'start-error.txt'), 'utf8')).toContain('versitygw exited during start');
  });

  it('rejects a second conditional create (If-None-Match: *) with 412 and keeps the first object', async () => {
    const { client } = await s3Server(['cond']);
    const put = (body: string) => client.send(new PutObjectCommand({ Bucket: 'cond', Key: 'seg-1.parquet', Body: body, IfNoneMatch: '*' }));
    expect(await statusOf(put('first'))).toBe(200);
    expect(await statusOf(put('second'))).toBe(412);
    expect(await getText(client, 'cond', 'seg-1.parquet')).toBe('first');
  });

  it('does multipart uploads, with lib-storage and by hand, and a conditional complete answers 412 when the key exists', async () => {
    const { client } = await s3Server(['multipart']);
    const body = randomBytes(12 * 1024 * 1024);
    const upload = new Upload({ client, params: { Bucket: 'multipart', Key: 'big.bin', Body: body }, partSize: 5 * 1024 * 1024, queueSize: 2 });
    await upload.done();
    const got = await client.send(new GetObjectCommand({ Bucket: 'multipart', Key: 'big.bin' }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(bytes.length).toBe(body.length);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    // A multipart ETag is "<md5 of the part md5s>-<parts>": proof it went through three parts.
    expect(got.ETag).toMatch(/-3"$/);

    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'multipart', Key: 'big.bin' }));
    const part = await client.send(
      new UploadPartCommand({ Bucket: 'multipart', Key: 'big.bin', UploadId, PartNumber: 1, Body: Buffer.from('replacement') }),
    );
    const complete = client.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'multipart',
        Key: 'big.bin',
        UploadId,
        IfNoneMatch: '*',
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    );
    expect(await statusOf(complete)).toBe(412);
    await client.send(new AbortMultipartUploadCommand({ Bucket: 'multipart', Key: 'big.bin', UploadId })).catch(() => undefined);
    const after = await client.send(new HeadObjectCommand({ Bucket: 'multipart', Key: 'big.bin' }));
    expect(after.ContentLength).toBe(body.length);
  });

  it('stores and verifies checksums: a CRC32C is kept, a wrong SHA-256 is refused', async () => {
    const { client } = await s3Server(['sums']);
    await client.send(new PutObjectCommand({ Bucket: 'sums', Key: 'c.bin', Body: 'checksummed', ChecksumAlgorithm: 'CRC32C' }));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'sums', Key: 'c.bin', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32C).toMatch(/^[A-Za-z0-9+/]+=*$/);

    const wrong = createHash('sha256').update('something else').digest('base64');
    const status = await statusOf(client.send(new PutObjectCommand({ Bucket: 'sums', Key: 'bad.bin', Body: 'payload', ChecksumSHA256: wrong })));
    expect(status).toBe(400);
    expect(await statusOf(client.send(new HeadObjectCommand({ Bucket: 'sums', Key: 'bad.bin' })))).toBe(404);
  });

  it('keeps buckets and objects across a restart, also after SIGKILL, on the same port', async () => {
    const { s3, client } = await s3Server(['durable']);
    await client.send(new PutObjectCommand({ Bucket: 'durable', Key: 'k', Body: 'v1' }));
    const port = s3.port;
    const pid = s3.pid;
    await s3.restart();
    expect(s3.port).toBe(port);
    expect(s3.pid).not.toBe(pid);
    expect(await getText(client, 'durable', 'k')).toBe('v1');
    await s3.restart({ signal: 'SIGKILL' });
    expect(await getText(client, 'durable', 'k')).toBe('v1');
  });
});

interface RestTableResponse {
  'metadata-location': string;
  metadata: { 'format-version': number; location: string; 'current-snapshot-id'?: number | null };
}

async function restJson<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...init?.headers } });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

describe('Iceberg REST catalog fixture on S3, read by PyIceberg', () => {
  for (const round of [1, 2]) {
    it(`starts, creates a namespace and a table in S3, PyIceberg lists and reads it, and stops cleanly (round ${round})`, async () => {
      const { s3, client } = await s3Server();
      const rest = await startIcebergRest({ s3 });
      cleanups.push(() => rest.stop());
      expect(rest.warehouse).toBe('s3://warehouse/wh');
      const pid = rest.pid!;

      const config = await restJson<{ defaults: Record<string, string> }>(`${rest.uri}/v1/config`);
      expect(config.status).toBe(200);

      const ns = await restJson(`${rest.uri}/v1/namespaces`, {
        method: 'POST',
        body: JSON.stringify({ namespace: ['plant'], properties: {} }),
      });
      expect(ns.status).toBe(200);
      const created = await restJson<RestTableResponse>(`${rest.uri}/v1/namespaces/plant/tables`, {
        method: 'POST',
        body: JSON.stringify({
          name: 'readings',
          schema: {
            type: 'struct',
            'schema-id': 0,
            fields: [
              { id: 1, name: 'ts', required: true, type: 'timestamptz' },
              { id: 2, name: 'sensor', required: true, type: 'string' },
              { id: 3, name: 'value', required: false, type: 'double' },
            ],
          },
          properties: { 'format-version': '2' },
        }),
      });
      expect(created.status).toBe(200);
      expect(created.body.metadata['format-version']).toBe(2);
      // The metadata file was written to our S3 server, under the warehouse.
      const metaLocation = created.body['metadata-location'];
      expect(metaLocation).toMatch(/^s3:\/\/warehouse\/wh\/plant\/readings\/metadata\/.*\.metadata\.json$/);
      const metaKey = metaLocation.replace('s3://warehouse/', '');
      const metaJson = JSON.parse(await getText(client, 'warehouse', metaKey)) as { 'table-uuid': string };
      expect(metaJson['table-uuid']).toMatch(/^[0-9a-f-]{36}$/);

      const py = pyicebergClient(rest.clientProperties);
      expect(await py.namespaces()).toEqual([['plant']]);
      const [tables, md, snapshots, scan] = await pyicebergBatch<[string[][], Record<string, unknown>, PySnapshot[], PyScan]>(
        rest.clientProperties,
        [
          { op: 'tables', args: { namespace: 'plant' } },
          { op: 'metadata', args: { table: 'plant.readings' } },
          { op: 'snapshots', args: { table: 'plant.readings' } },
          { op: 'scan', args: { table: 'plant.readings' } },
        ],
      );
      expect(tables).toEqual([['plant', 'readings']]);
      expect(md.metadata_location).toBe(metaLocation);
      expect(md.table_uuid).toBe(metaJson['table-uuid']);
      expect(md.format_version).toBe(2);
      expect(snapshots).toEqual([]);
      expect(scan).toEqual({ row_count: 0, columns: ['ts', 'sensor', 'value'], rows: [] });

      await rest.stop({ keepLogs: round === 2 });
      expect(pidAlive(pid)).toBe(false);
      expect(await portAccepts(rest.port)).toBe(false);
      expect(existsSync(rest.dir)).toBe(false);
      if (round === 1) expect(rest.keptLogs).toBeUndefined();
      else expect(readFileSync(join(keptFolder(rest.keptLogs, cleanups), 'iceberg-rest.log'), 'utf8')).toMatch(/Started ServerConnector/);
    });
  }

  it('PyIceberg creates and appends through the REST catalog, reads its rows back, and the catalog survives a restart', async () => {
    const { s3, client } = await s3Server();
    const rest = await startIcebergRest({ s3 });
    cleanups.push(() => rest.stop());
    const py = pyicebergClient(rest.clientProperties);

    const rows = [
      { line: 'L1', seq: 1, value: 20.5 },
      { line: 'L2', seq: 2, value: 21.0 },
      { line: 'L1', seq: 3, value: null },
    ];
    const schema = [
      { name: 'line', type: 'string', required: true },
      { name: 'seq', type: 'long', required: true },
      { name: 'value', type: 'double' },
    ];
    const first = await py.createAndAppend('lab.samples', rows, schema);
    expect(first.snapshots).toHaveLength(1);
    expect(first.snapshots[0]).toMatchObject({ operation: 'append', parent_snapshot_id: null });
    expect(first.snapshots[0]!.summary['added-records']).toBe('3');
    const second = await py.createAndAppend('lab.samples', [{ line: 'L3', seq: 4, value: 1.5 }], schema);
    expect(second.snapshots).toHaveLength(2);
    expect(second.snapshots[1]!.parent_snapshot_id).toBe(first.snapshots[0]!.snapshot_id);

    const t = 'lab.samples';
    const [snaps, files, scan, asOfFirst, filtered] = await pyicebergBatch<[PySnapshot[], PyDataFile[], PyScan, PyScan, PyScan]>(
      rest.clientProperties,
      [
        { op: 'snapshots', args: { table: t } },
        { op: 'files', args: { table: t } },
        { op: 'scan', args: { table: t, order_by: ['seq'] } },
        { op: 'scan', args: { table: t, snapshot_id: first.snapshots[0]!.snapshot_id, with_rows: false } },
        { op: 'scan', args: { table: t, row_filter: "line = 'L1'", order_by: ['seq'] } },
      ],
    );
    // The snapshot ids keep every digit (they are longs beyond 2^53).
    expect(snaps.map((s) => s.snapshot_id)).toEqual(second.snapshots.map((s) => s.snapshot_id));
    expect(snaps[1]!.summary['total-records']).toBe('4');

    expect(files.map((f) => f.record_count).sort()).toEqual([1, 3]);
    for (const f of files) {
      expect(f.file_path).toMatch(/^s3:\/\/warehouse\/wh\/lab\/samples\/data\/.*\.parquet$/);
      const key = f.file_path.replace('s3://warehouse/', '');
      const head = await client.send(new HeadObjectCommand({ Bucket: 'warehouse', Key: key }));
      expect(head.ContentLength).toBe(f.file_size_in_bytes);
    }

    expect(scan.row_count).toBe(4);
    expect(scan.rows).toEqual([...rows, { line: 'L3', seq: 4, value: 1.5 }]);
    expect(asOfFirst).toEqual({ row_count: 3, columns: ['line', 'seq', 'value'] });
    expect(filtered.rows?.map((r) => r.seq)).toEqual([1, 3]);

    // The REST fixture's catalog is a SQLite file and the files are in S3: both restart.
    await rest.restart();
    await s3.restart();
    expect((await py.scan('lab.samples', { withRows: false })).row_count).toBe(4);

    // A script op for anything the fixed ops do not cover.
    const viaScript = await pyiceberg<number>(rest.clientProperties, {
      script: 'result = len(catalog.load_table(args["t"]).scan().to_arrow())',
    }, { t: 'lab.samples' });
    expect(viaScript).toBe(4);
  });

  it('fails loudly with the reader traceback when PyIceberg cannot load a table', async () => {
    const { s3 } = await s3Server();
    const rest = await startIcebergRest({ s3 });
    cleanups.push(() => rest.stop());
    await expect(pyicebergClient(rest.clientProperties).scan('nowhere.nothing')).rejects.toThrow(/pyiceberg scan failed[\s\S]*NoSuch/);
  });
});
