// Uploads to a real S3 server (versitygw) through the TCP fault proxy: resets, a
// connection cut in the middle of a multipart upload, a request whose response is
// lost after the server handled it, and a blackhole that times requests out. Each
// fault is injected for a pass of the uploader, then lifted. Throughout:
//   - no file is marked uploaded unless its whole object is in the bucket with its sha256;
//   - nothing is deleted locally;
// and at the end every file is uploaded exactly once (the bucket holds exactly the tier
// map's keys). (A put whose object landed but whose outcome was lost is the crash case:
// tiering-crash.test.ts, and the uploader's unit tests.)
// A second test puts the HTTP fault proxy in front of the server for the faults a TCP
// proxy cannot make: S3 answering 503 and 500 in the middle of a multipart upload (a
// part refused), and 500 for a CompleteMultipartUpload the server applied; beside them
// a poison file (its bytes changed after registration: the server refuses its checksum)
// is set aside with its reason while the queue goes on.
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeSchema } from '../../config/tiering-schema.ts';
import { NO_CATALOG } from '../../tiering/catalog-handoff.ts';
import { discoverNewFiles } from '../../tiering/layout.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { tiersReport } from '../../tiering/tiers-report.ts';
import { TokenBucket } from '../../tiering/token-bucket.ts';
import { Uploader } from '../../tiering/uploader.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { startHttpFaultProxy, type HttpFaultProxy } from '../support/http-fault-proxy.ts';
import { startFaultProxy, type FaultProxy } from '../support/tcp-fault-proxy.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from '../unit/tiering/fixture.ts';

const MIB = 1024 * 1024;

describe('uploads to S3 through network faults', () => {
  let server: S3Server;
  let proxy: FaultProxy;
  let f: TieringFixture;
  let g: TieringFixture | undefined;
  let http: HttpFaultProxy | undefined;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['warm'] });
    proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: server.port } });
  }, 120_000);
  afterAll(async () => {
    f?.close();
    g?.close();
    await http?.close();
    await proxy?.close();
    await server?.stop();
  });

  async function bucketKeys(prefix?: string): Promise<string[]> {
    const client = server.client();
    try {
      const page = await client.send(new ListObjectsV2Command({ Bucket: 'warm', ...(prefix ? { Prefix: prefix } : {}) }));
      return (page.Contents ?? []).map((o) => o.Key!).sort();
    } finally {
      client.destroy();
    }
  }

  it('retries through resets, cuts and timeouts; never counts a partial object; uploads each file once', async () => {
    f = await createTieringFixture();
    const files = [
      f.addL1('inspections', { bytes: 14 * MIB, ageHours: 9 }), // multipart: 3 parts
      f.addL1('inspections', { bytes: 12 * MIB, ageHours: 8 }),
      f.addL1('readings', { bytes: 200_000, ageHours: 7 }),
      f.addL1('readings', { bytes: 300_000, ageHours: 6 }),
    ];
    const blob = f.addBlob({ bytes: 500_000 });
    const storeConfig = storeSchema.parse({
      url: 's3://warm',
      endpoint: proxy.url('http'),
      region: server.region,
      force_path_style: true,
      multipart_threshold_bytes: 6 * MIB,
      part_size_bytes: 5 * MIB,
      request_timeout_ms: 1500,
    });
    // As the loader leaves a config whose keys are secret references: resolved values.
    const credentials = { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey };
    const store = new S3ObjectStore({ ...storeConfig, credentials });
    // The test's own view of the bucket, around the proxy.
    // The test's checks are not under test: a long timeout, so a loaded machine cannot fail them.
    const direct = new S3ObjectStore({ ...storeConfig, endpoint: server.endpoint, credentials, request_timeout_ms: 60_000 });
    const log = recordingLogger();
    const config = f.config({ upload_concurrency: 2, retry_initial_ms: 10, retry_max_ms: 20, max_attempts: 1000, datasets: { inspections: { priority: 1 } } });
    // 8 MiB/s: a 14 MiB multipart upload takes long enough to be cut in the middle.
    const bucket = new TokenBucket(8 * MIB);
    const uploader = new Uploader({ db: f.db, map: f.map, store, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: log.logger, bucket });

    /** After every faulty pass: whatever the map says is uploaded is whole in the bucket; nothing local is gone. */
    const checkInvariants = async () => {
      const keys = new Set(await bucketKeys());
      for (const row of f.map.all()) {
        if (row.state !== 'local') {
          expect(keys.has(row.object_key)).toBe(true);
          expect(await direct.head(row.object_key)).toMatchObject({ sizeBytes: row.size_bytes, sha256: row.sha256 });
        }
      }
      for (const file of files) expect(existsSync(join(f.stateDir, file.path))).toBe(true);
      expect(existsSync(blob.path)).toBe(true);
    };
    const pass = async () => {
      await uploader.pass();
      await new Promise((resolve) => setTimeout(resolve, 30)); // past the backoff
    };

    // 1. Every connection reset.
    proxy.setFault({ kind: 'reset' });
    await pass();
    expect(f.map.all().every((r) => r.state === 'local' && r.attempts >= 1)).toBe(true);
    expect(await bucketKeys()).toEqual([]);
    await checkInvariants();

    // 2. Each connection cut after 3 MiB upstream: inside a 5 MiB part of every multipart
    //    upload (the small files fit and go through).
    proxy.setFault({ kind: 'close-after-bytes', bytes: 3 * MIB, direction: 'upstream' });
    await pass();
    await checkInvariants();
    const big = f.map.byPath(files[0]!.path)!;
    expect(big.state).toBe('local');
    expect(await direct.head(big.object_key)).toBeNull();

    // 3. Requests time out (nothing comes back).
    proxy.setFault({ kind: 'blackhole' });
    await pass();
    await checkInvariants();
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_FAILED' && /Timeout|timed out|socket/i.test(String(r.obj.err)))).toBe(true);

    // 4. The server handles each request, the client never hears back (outcome unknown).
    proxy.setFault({ kind: 'reset-after-response' });
    await pass();
    await checkInvariants();

    // 5. The network goes black in the middle of the multipart uploads.
    proxy.setFault({ kind: 'pass' });
    const running = uploader.pass();
    await new Promise((resolve) => setTimeout(resolve, 700));
    proxy.setFault({ kind: 'blackhole' });
    await running;
    await checkInvariants();
    expect(f.map.byPath(files[0]!.path)!.state).toBe('local');

    // 6. The network heals: everything goes, each object once.
    proxy.setFault({ kind: 'pass' });
    for (let i = 0; i < 20 && f.map.all().some((r) => r.state !== 'committed'); i++) await pass();
    const rows = f.map.all();
    expect(rows.map((r) => r.state)).toEqual(rows.map(() => 'committed'));
    expect(await bucketKeys()).toEqual(rows.map((r) => r.object_key).sort());
    await checkInvariants();
    expect(f.map.setAside()).toEqual([]);
    // Multipart uploads a fault left open (their abort lost on the same dead connection)
    // were aborted by the next attempt at the same key.
    const client = server.client();
    try {
      const open = await client.send(new ListMultipartUploadsCommand({ Bucket: 'warm' }));
      expect(open.Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
    await store.close();
    await direct.close();
  });

  it('S3 5xx in the middle of a multipart upload and after an applied complete: retried, never counted partial, one object each; a poison file is set aside', async () => {
    g = await createTieringFixture();
    const fx = g;
    const poison = fx.addL1('inspections', { bytes: 300_000, ageHours: 10 }); // oldest: first in line
    const files = [
      fx.addL1('inspections', { bytes: 14 * MIB, ageHours: 9 }), // multipart: parts of 5, 5 and 4 MiB
      fx.addL1('inspections', { bytes: 12 * MIB, ageHours: 8 }),
      fx.addL1('readings', { bytes: 200_000, ageHours: 7 }),
    ];
    // Registered with its sha256, then its bytes change on disk (same size).
    await discoverNewFiles(fx.db, fx.map, fx.stateDir, { plant: 'p', agentId: 'a' }, fx.clock.ms * 1000);
    writeFileSync(join(fx.stateDir, poison.path), randomBytes(300_000));
    const poisoned = () => fx.map.byPath(poison.path)!;
    http = await startHttpFaultProxy({ upstream: server.endpoint, keepHost: true });
    const proxy5xx = http;
    const storeConfig = storeSchema.parse({
      url: 's3://warm/http5xx',
      endpoint: proxy5xx.url,
      region: server.region,
      force_path_style: true,
      multipart_threshold_bytes: 6 * MIB,
      part_size_bytes: 5 * MIB,
      part_concurrency: 1, // parts in order: the script below hits a known part
      request_timeout_ms: 30_000,
    });
    const credentials = { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey };
    const store = new S3ObjectStore({ ...storeConfig, credentials });
    const direct = new S3ObjectStore({ ...storeConfig, endpoint: server.endpoint, credentials });
    const log = recordingLogger();
    // One upload at a time, the oldest (the 14 MiB file) first; the clock is the fixture's, so backoff waits on nothing.
    const config = fx.config({ upload_concurrency: 1, retry_initial_ms: 1000, retry_max_ms: 1000, max_attempts: 100 });
    const uploader = new Uploader({ db: fx.db, map: fx.map, store, catalog: NO_CATALOG, config, stateDir: fx.stateDir, context: { plant: 'p', agentId: 'a' }, logger: log.logger, nowMs: fx.nowMs });
    const big = () => fx.map.byPath(files[0]!.path)!;
    const isUploadPart = (method: string, path: string) => method === 'PUT' && /[?&]partNumber=/.test(path);
    const isComplete = (method: string, path: string) => method === 'POST' && /[?&]uploadId=/.test(path);
    /** An S3 error answer, as S3 sends it. */
    const s3Error = (status: 500 | 503) => ({
      kind: 'status' as const,
      status,
      contentType: 'application/xml',
      body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>injected by the test</Message></Error>`,
    });

    const checkInvariants = async () => {
      for (const row of fx.map.all()) {
        if (row.state !== 'local') expect(await direct.head(row.object_key)).toMatchObject({ sizeBytes: row.size_bytes, sha256: row.sha256 });
      }
      for (const file of files) expect(existsSync(join(fx.stateDir, file.path))).toBe(true);
    };

    // 1. The first multipart upload: part 1 goes through, part 2 is answered 503 (SlowDown).
    proxy5xx.script(isUploadPart, [{ kind: 'pass' }, s3Error(503)]);
    await uploader.pass();
    expect(proxy5xx.remaining()).toBe(0);
    expect(proxy5xx.exchanges.filter((e) => isUploadPart(e.method, e.path) && e.clientGot === 503)).toHaveLength(1);
    expect(big()).toMatchObject({ state: 'local', attempts: 1 });
    expect(await direct.head(big().object_key)).toBeNull();
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_FAILED' && r.obj.key === big().object_key && /SlowDown \(HTTP 503\)/.test(String(r.obj.err)))).toBe(true);
    // The poison file was refused by the server's checksum and set aside at once (a retry cannot help), with its reason.
    expect(poisoned()).toMatchObject({ state: 'local', attempts: 1 });
    expect(poisoned().set_aside_us).not.toBeNull();
    expect(poisoned().last_error).toMatch(/^CHECKSUM_MISMATCH: .*the local file's sha256 is not .* \(it changed\); not uploaded$/);
    expect(log.records.filter((r) => r.obj.code === 'UPLOAD_SET_ASIDE').map((r) => r.obj.key)).toEqual([poisoned().object_key]);
    expect(await direct.head(poisoned().object_key)).toBeNull();
    // The others went on meanwhile.
    expect(fx.map.all().filter((r) => r.id !== big().id && r.id !== poisoned().id).every((r) => r.state === 'committed')).toBe(true);
    await checkInvariants();

    // 2. The retry: its first part is answered 500.
    fx.clock.ms += 2000;
    proxy5xx.script(isUploadPart, [s3Error(500)]);
    await uploader.pass();
    expect(big()).toMatchObject({ state: 'local', attempts: 2 });
    expect(await direct.head(big().object_key)).toBeNull();
    await checkInvariants();

    // 3. Every part goes through; the server completes the object, but the client is answered 500.
    fx.clock.ms += 2000;
    proxy5xx.script(isComplete, [s3Error(500)]);
    await uploader.pass();
    const completed = proxy5xx.exchanges.filter((e) => isComplete(e.method, e.path) && e.clientGot === 500);
    expect(completed).toHaveLength(1);
    expect(completed[0]!.upstreamStatus).toBe(200);
    expect(big()).toMatchObject({ state: 'local', attempts: 3 }); // not counted: its outcome was a 500
    await checkInvariants();

    // 4. The next attempt finds the whole object, verifies it by size and sha256 and writes nothing.
    fx.clock.ms += 2000;
    const putsBefore = proxy5xx.exchanges.filter((e) => e.method === 'PUT').length;
    await uploader.pass();
    expect(big().state).toBe('committed');
    expect(uploader.stats.alreadyThere).toBe(1);
    expect(proxy5xx.exchanges.filter((e) => e.method === 'PUT').length).toBe(putsBefore);
    const rows = fx.map.all().filter((r) => r.id !== poisoned().id);
    expect(rows.map((r) => r.state)).toEqual(rows.map(() => 'committed'));
    expect(await bucketKeys('http5xx/')).toEqual(rows.map((r) => `http5xx/${r.object_key}`).sort());
    await checkInvariants();
    // Never tried again, reported as set aside.
    expect(fx.map.setAside().map((r) => r.local_path)).toEqual([poison.path]);
    expect(poisoned().attempts).toBe(1);
    expect(tiersReport(fx.db, fx.clock.ms * 1000).setAside).toEqual([{ dataset: 'inspections', path: poison.path, attempts: 1, reason: poisoned().last_error }]);
    const client = server.client();
    try {
      const open = await client.send(new ListMultipartUploadsCommand({ Bucket: 'warm', Prefix: 'http5xx/' }));
      expect(open.Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
    await store.close();
    await direct.close();
  });
});
