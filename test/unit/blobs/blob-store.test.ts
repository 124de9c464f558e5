// The content-addressed blob store: what a put leaves on disk, de-duplication, a
// source that changes while being copied, and start-up recovery.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlobStore } from '../../../agent/blobs/blob-store.ts';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every file under `root`, relative, sorted. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

describe('BlobStore', () => {
  let dir: string;
  let store: BlobStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blob-store-'));
    store = new BlobStore(join(dir, 'blobs'));
    await store.start();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('does no I/O when constructed', () => {
    new BlobStore(join(dir, 'never'));
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('putBytes stores the bytes at their sha256, with no temp file left', async () => {
    const bytes = Buffer.from('a camera frame');
    const ref = await store.putBytes(bytes, 'image/jpeg');
    expect(ref).toEqual({ sha256: sha256(bytes), sizeBytes: bytes.length, contentType: 'image/jpeg' });
    expect(store.pathOf(ref.sha256)).toBe(join(dir, 'blobs', ref.sha256.slice(0, 2), ref.sha256));
    expect((await readFile(store.pathOf(ref.sha256))).equals(bytes)).toBe(true);
    expect(await filesUnder(store.root)).toEqual([`${ref.sha256.slice(0, 2)}/${ref.sha256}`]);
  });

  it('putFromHandle copies an open file (larger than one copy chunk) and returns its sha256', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const source = join(dir, 'frame.bin');
    await writeFile(source, bytes);
    const handle = await open(source, 'r');
    try {
      const ref = await store.putFromHandle(handle, bytes.length, null);
      expect(ref).toEqual({ sha256: sha256(bytes), sizeBytes: bytes.length, contentType: null });
      expect((await readFile(store.pathOf(ref.sha256))).equals(bytes)).toBe(true);
    } finally {
      await handle.close();
    }
    expect(await readdir(join(store.root, '.tmp'))).toEqual([]);
  });

  it('stores identical content once, whichever way it arrives', async () => {
    const bytes = Buffer.from('same bytes');
    const source = join(dir, 'same.bin');
    await writeFile(source, bytes);
    const a = await store.putBytes(bytes, null);
    const b = await store.putBytes(bytes, null);
    const handle = await open(source, 'r');
    const c = await store.putFromHandle(handle, bytes.length, null).finally(() => handle.close());
    const [d, e] = await Promise.all([store.putBytes(bytes, null), store.putBytes(bytes, null)]);
    expect(new Set([a, b, c, d, e].map((r) => r.sha256))).toEqual(new Set([sha256(bytes)]));
    expect(await filesUnder(store.root)).toEqual([`${a.sha256.slice(0, 2)}/${a.sha256}`]);
  });

  it('stores an empty file', async () => {
    const source = join(dir, 'empty.bin');
    await writeFile(source, '');
    const handle = await open(source, 'r');
    const ref = await store.putFromHandle(handle, 0, null).finally(() => handle.close());
    expect(ref.sha256).toBe(sha256(Buffer.alloc(0)));
    expect((await readFile(store.pathOf(ref.sha256))).equals(Buffer.alloc(0))).toBe(true);
  });

  it('throws "file changed" when the source grew or shrank since its size was taken, leaving nothing behind', async () => {
    const source = join(dir, 'moving.bin');
    await writeFile(source, Buffer.alloc(10_000, 1));
    const handle = await open(source, 'r');
    try {
      await appendFile(source, Buffer.alloc(100, 2)); // grew after the caller's stat
      await expect(store.putFromHandle(handle, 10_000, null)).rejects.toThrow(/^file changed/);
      await truncate(source, 5_000); // shrank
      await expect(store.putFromHandle(handle, 10_000, null)).rejects.toThrow(/^file changed/);
    } finally {
      await handle.close();
    }
    expect(await filesUnder(store.root)).toEqual([]);
  });

  it('recover() removes temp files and unknown blobs, and keeps known ones', async () => {
    const known = await store.putBytes(Buffer.from('committed'), null);
    const orphan = await store.putBytes(Buffer.from('never committed'), null);
    const sameShard = await store.putBytes(Buffer.from('another orphan'), null);
    await writeFile(join(store.root, '.tmp', 'half-written'), 'partial');
    await writeFile(join(store.root, '.tmp', 'another'), 'partial');
    // Not the store's: a file outside the shard layout is left alone.
    await mkdir(join(store.root, 'not-a-shard'), { recursive: true });
    await writeFile(join(store.root, 'not-a-shard', 'keep'), 'x');

    const result = await store.recover((sha) => sha === known.sha256);
    expect(result).toEqual({ tempRemoved: 2, orphansRemoved: 2 });
    expect(await readFile(store.pathOf(known.sha256), 'utf8')).toBe('committed');
    expect(existsSync(store.pathOf(orphan.sha256))).toBe(false);
    expect(existsSync(store.pathOf(sameShard.sha256))).toBe(false);
    expect(await readdir(join(store.root, '.tmp'))).toEqual([]);
    expect(existsSync(join(store.root, 'not-a-shard', 'keep'))).toBe(true);

    // Idempotent: a second pass finds nothing more to do.
    expect(await store.recover((sha) => sha === known.sha256)).toEqual({ tempRemoved: 0, orphansRemoved: 0 });
  });
});
