// GET /v1/blobs/:sha256 against a real BlobStore on disk: content type, ETag and 304,
// ranges (206, 416), and refusal of traversal and unknown hashes.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../../agent/blobs/blob-store.ts';
import { parseRange } from '../../../agent/api/range.ts';
import { testServer } from './fakes.ts';

let dir: string;
let store: BlobStore;
const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
const sha = createHash('sha256').update(bytes).digest('hex');
const missingOnDisk = 'f'.repeat(64);
const infos = new Map<string, { sizeBytes: number; contentType: string | null }>();
let app: FastifyInstance;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'api-blobs-'));
  store = new BlobStore(join(dir, 'blobs'));
  await store.start();
  expect((await store.putBytes(bytes, 'image/png')).sha256).toBe(sha);
  infos.set(sha, { sizeBytes: bytes.length, contentType: 'image/png' });
  infos.set(missingOnDisk, { sizeBytes: 10, contentType: null });
  app = testServer({ blobs: { blobPath: (s) => store.pathOf(s), blobInfo: (s) => infos.get(s) ?? null } });
});
afterAll(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('GET /v1/blobs/:sha256', () => {
  it('streams the blob with its content type, a strong ETag and immutable private caching', async () => {
    const res = await app.inject(`/v1/blobs/${sha}`);
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(bytes)).toBe(true);
    expect(res.headers).toMatchObject({
      'content-type': 'image/png',
      'content-length': '1000',
      etag: `"${sha}"`,
      'accept-ranges': 'bytes',
      'cache-control': 'private, max-age=31536000, immutable',
    });
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await app.inject({ method: 'HEAD', url: `/v1/blobs/${sha}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('1000');
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.body).toBe('');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    for (const tag of [`"${sha}"`, `"other", "${sha}"`, '*', `W/"${sha}"`]) {
      const res = await app.inject({ url: `/v1/blobs/${sha}`, headers: { 'if-none-match': tag } });
      expect(res.statusCode).toBe(304);
      expect(res.body).toBe('');
      expect(res.headers.etag).toBe(`"${sha}"`);
    }
    expect((await app.inject({ url: `/v1/blobs/${sha}`, headers: { 'if-none-match': '"other"' } })).statusCode).toBe(200);
  });

  it.each([
    ['bytes=0-99', 0, 99],
    ['bytes=900-', 900, 999],
    ['bytes=-10', 990, 999],
    ['bytes=990-5000', 990, 999],
  ])('answers 206 for %s', async (range, start, end) => {
    const res = await app.inject({ url: `/v1/blobs/${sha}`, headers: { range } });
    expect(res.statusCode).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/1000`);
    expect(res.headers['content-length']).toBe(String(end - start + 1));
    expect(res.rawPayload.equals(bytes.subarray(start, end + 1))).toBe(true);
  });

  it('answers 416 with the size for an unsatisfiable range', async () => {
    const res = await app.inject({ url: `/v1/blobs/${sha}`, headers: { range: 'bytes=1000-1010' } });
    expect(res.statusCode).toBe(416);
    expect(res.headers['content-range']).toBe('bytes */1000');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json().error.code).toBe('RANGE_NOT_SATISFIABLE');
  });

  it('sends the whole blob for several ranges or a stale If-Range', async () => {
    const multi = await app.inject({ url: `/v1/blobs/${sha}`, headers: { range: 'bytes=0-1,5-6' } });
    expect(multi.statusCode).toBe(200);
    const stale = await app.inject({ url: `/v1/blobs/${sha}`, headers: { range: 'bytes=0-1', 'if-range': '"other"' } });
    expect(stale.statusCode).toBe(200);
    expect(stale.rawPayload.length).toBe(1000);
  });

  it.each([
    '..%2F..%2Fetc%2Fpasswd',
    '..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd',
    '%2Fetc%2Fpasswd',
    sha.toUpperCase(),
    `${sha}0`,
    sha.slice(1),
    `${sha.slice(0, 63)}%00`,
  ])('refuses the id %s with 400 BAD_BLOB_ID', async (id) => {
    const res = await app.inject(`/v1/blobs/${id}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('BAD_BLOB_ID');
  });

  it('answers 404 BLOB_NOT_FOUND for an unknown hash and for a known one missing on disk', async () => {
    const unknown = await app.inject(`/v1/blobs/${'0'.repeat(64)}`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('BLOB_NOT_FOUND');
    const gone = await app.inject(`/v1/blobs/${missingOnDisk}`);
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('BLOB_NOT_FOUND');
    expect(gone.headers.etag).toBeUndefined();
    expect(gone.headers['cache-control']).toBe('no-store');
  });
});

describe('parseRange', () => {
  it('reads one byte range and ignores what it cannot honour', () => {
    expect(parseRange(undefined, 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=2-4', 10)).toEqual({ kind: 'partial', start: 2, end: 4 });
    expect(parseRange('bytes=-20', 10)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(parseRange('bytes=5-2', 10)).toEqual({ kind: 'full' });
    expect(parseRange('items=0-1', 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=-0', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=10-', 10)).toEqual({ kind: 'unsatisfiable' });
  });
});
