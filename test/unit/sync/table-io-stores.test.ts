import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { storeLocation, StoreTableFileIO } from '../../../sync/table-io-stores.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';
import { ObjectConflictError, ObjectNotFoundError } from '../../../tiering/stores/object-store.ts';

const root = mkdtempSync(join(tmpdir(), 'lakeside-tableio-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('StoreTableFileIO', () => {
  it('writes once, reads, checks and deletes file:// locations through the mounted store', async () => {
    const store = new FileObjectStore(root);
    await store.start();
    const io = new StoreTableFileIO({ mounts: [{ base: storeLocation(store), store }] });
    expect(storeLocation(store)).toBe(pathToFileURL(root).href);
    const location = `${storeLocation(store)}/iceberg/ns/t/metadata/m0.avro`;
    const bytes = new TextEncoder().encode('manifest bytes');
    expect(await io.writeOnce(location, bytes)).toEqual({ created: true });
    expect(readFileSync(join(root, 'iceberg', 'ns', 't', 'metadata', 'm0.avro'), 'utf8')).toBe('manifest bytes');
    expect(await io.writeOnce(location, bytes)).toEqual({ created: false });
    await expect(io.writeOnce(location, new TextEncoder().encode('other'))).rejects.toBeInstanceOf(ObjectConflictError);
    expect(Buffer.from(await io.read(location)).toString()).toBe('manifest bytes');
    expect(await io.exists(location)).toBe(true);
    await io.delete(location);
    await io.delete(location);
    expect(await io.exists(location)).toBe(false);
    await expect(io.read(location)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await io.close();
  });

  it('refuses file locations outside every mount, and s3 locations without S3 settings', async () => {
    const io = new StoreTableFileIO({});
    await expect(io.read('file:///etc/passwd')).rejects.toMatchObject({ code: 'BAD_LOCATION', retriable: false });
    await expect(io.read('s3://bucket/key')).rejects.toMatchObject({ code: 'BAD_LOCATION' });
    await expect(io.read('hdfs://nn/x')).rejects.toMatchObject({ code: 'BAD_LOCATION' });
  });
});
