/**
 * The behaviour every object store must show (tiering/stores/object-store.ts), as a
 * vitest suite any store can run: the file:// store in the unit tests, S3 against the
 * real server in the integration tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { expect, it } from 'vitest';
import { ObjectConflictError, ObjectNotFoundError, type ObjectStore, type PutSource } from '../../tiering/stores/object-store.ts';

export function localFile(bytes: Uint8Array, dir = mkdtempSync(join(tmpdir(), 'lakeside-src-'))): PutSource {
  const path = join(dir, `f-${randomBytes(4).toString('hex')}`);
  writeFileSync(path, bytes);
  return { path, sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function listKeys(store: ObjectStore, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

/** Registers the contract's tests; `store()` gives a fresh, empty store per test. */
export function objectStoreContract(store: () => ObjectStore, options: { multipartBytes?: number } = {}): void {
  it('puts, heads, gets and lists an object', async () => {
    const s = store();
    const bytes = randomBytes(10_000);
    const source = localFile(bytes);
    const result = await s.put('plant/a/b/one.parquet', source);
    expect(result).toMatchObject({ created: true, sizeBytes: bytes.length, sha256: source.sha256 });
    const info = await s.head('plant/a/b/one.parquet');
    expect(info).toMatchObject({ key: 'plant/a/b/one.parquet', sizeBytes: bytes.length, sha256: source.sha256 });
    expect((await readAll(await s.get('plant/a/b/one.parquet'))).equals(bytes)).toBe(true);
    expect(await listKeys(s, 'plant/a/')).toEqual(['plant/a/b/one.parquet']);
    expect(await s.head('plant/a/b/absent')).toBeNull();
    await expect(s.get('plant/a/b/absent')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('a repeated put of the same content is a verified no-op, never a second object', async () => {
    const s = store();
    const source = localFile(randomBytes(5000));
    expect((await s.put('k/x', source)).created).toBe(true);
    expect((await s.put('k/x', source)).created).toBe(false);
    expect(await listKeys(s, 'k/')).toEqual(['k/x']);
  });

  it('refuses to overwrite a key holding different content', async () => {
    const s = store();
    const first = localFile(randomBytes(4000));
    const other = localFile(randomBytes(4000));
    await s.put('k/y', first);
    await expect(s.put('k/y', other)).rejects.toBeInstanceOf(ObjectConflictError);
    await expect(s.put('k/y', other)).rejects.toMatchObject({ retriable: false });
    expect((await s.head('k/y'))!.sha256).toBe(first.sha256);
  });

  it('refuses a file whose bytes do not match the expected checksum, leaving no object', async () => {
    const s = store();
    const source = localFile(randomBytes(3000));
    await expect(s.put('k/bad', { ...source, sha256: '0'.repeat(64) })).rejects.toMatchObject({ retriable: false });
    expect(await s.head('k/bad')).toBeNull();
  });

  it('passes the bytes through the throttle', async () => {
    const s = store();
    const source = localFile(randomBytes(70_000));
    let seen = 0;
    await s.put('k/t', {
      ...source,
      throttle: (input) =>
        input.map((chunk: Buffer) => {
          seen += chunk.length;
          return chunk;
        }),
    });
    expect(seen).toBe(70_000);
  });

  it('deletes (absent keys too)', async () => {
    const s = store();
    await s.put('d/1', localFile(randomBytes(10)));
    await s.delete('d/1');
    await s.delete('d/1');
    expect(await s.head('d/1')).toBeNull();
    expect(await listKeys(s, 'd/')).toEqual([]);
  });

  it('putBytes: conditional create from memory, same bytes again is a verified no-op, other bytes a conflict', async () => {
    const s = store();
    const bytes = randomBytes(2000);
    const result = await s.putBytes('b/meta.json', bytes, 'application/json');
    expect(result).toMatchObject({ created: true, sizeBytes: 2000, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect((await readAll(await s.get('b/meta.json'))).equals(bytes)).toBe(true);
    expect((await s.head('b/meta.json'))!.sha256).toBe(result.sha256);
    expect((await s.putBytes('b/meta.json', bytes)).created).toBe(false);
    await expect(s.putBytes('b/meta.json', randomBytes(2000))).rejects.toBeInstanceOf(ObjectConflictError);
    await expect(s.put('b/meta.json', localFile(randomBytes(10)))).rejects.toBeInstanceOf(ObjectConflictError);
    expect((await readAll(await s.get('b/meta.json'))).equals(bytes)).toBe(true);
  });

  it('putBytes: of writers racing on one key with different bytes, exactly one creates it', async () => {
    const s = store();
    for (let round = 0; round < 5; round += 1) {
      const candidates = [randomBytes(500), randomBytes(500), randomBytes(500)];
      const results = await Promise.allSettled(candidates.map((b) => s.putBytes(`race/v${round}`, b)));
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ObjectConflictError);
      expect((await readAll(await s.get(`race/v${round}`))).equals(candidates[won[0]!]!)).toBe(true);
    }
    // The same bytes racing: all succeed, one of them created the object.
    const same = randomBytes(500);
    const results = await Promise.all([s.putBytes('race/same', same), s.putBytes('race/same', same)]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  if (options.multipartBytes) {
    it('uploads in parts above the threshold, verified like a single put', async () => {
      const s = store();
      const source = localFile(randomBytes(options.multipartBytes!));
      const result = await s.put('m/big', source);
      expect(result).toMatchObject({ created: true, multipart: true, sha256: source.sha256 });
      expect((await s.head('m/big'))).toMatchObject({ sizeBytes: source.sizeBytes, sha256: source.sha256 });
      expect((await s.put('m/big', source)).created).toBe(false);
    });
  }
}
