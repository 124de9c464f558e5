import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { listKeys, localFile, objectStoreContract } from '../../support/object-store-contract.ts';

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'lakeside-store-'));
}

describe('FileObjectStore', () => {
  objectStoreContract(() => new FileObjectStore(pathToFileURL(freshDir()).href));

  it('keeps uploads in progress out of listings and removes them at start', async () => {
    const dir = freshDir();
    const store = new FileObjectStore(dir);
    await store.start();
    // What a crash mid-put leaves behind.
    writeFileSync(join(dir, '.tmp', '.tmp-k_x.abcd'), randomBytes(100));
    await store.put('k/x', localFile(randomBytes(10)));
    expect(await listKeys(store)).toEqual(['k/x']);
    await store.start();
    expect(readdirSync(join(dir, '.tmp'))).toEqual([]);
  });

  it('refuses keys that would escape the directory', async () => {
    const store = new FileObjectStore(freshDir());
    await expect(store.put('../x', localFile(randomBytes(1)))).rejects.toMatchObject({ code: 'BAD_KEY' });
    await expect(store.put('a//b', localFile(randomBytes(1)))).rejects.toMatchObject({ code: 'BAD_KEY' });
    await expect(store.put('.tmp/x', localFile(randomBytes(1)))).rejects.toMatchObject({ code: 'BAD_KEY' });
  });

  it('a put into a read-only directory fails without retrying forever', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, 'ro'));
    const store = new FileObjectStore(join(dir, 'ro'));
    await store.start();
    const { chmodSync } = await import('node:fs');
    chmodSync(join(dir, 'ro'), 0o500);
    try {
      if (process.getuid?.() === 0) return; // root ignores the mode
      await expect(store.put('a/b', localFile(randomBytes(1)))).rejects.toMatchObject({ retriable: false });
      expect(existsSync(join(dir, 'ro', 'a', 'b'))).toBe(false);
    } finally {
      chmodSync(join(dir, 'ro'), 0o700);
    }
  });
});
