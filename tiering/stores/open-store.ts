/** Builds the object store a `tiering.warm` / `tiering.cold` config names. */
import type { StoreConfig } from '../../config/tiering-schema.ts';
import { FileObjectStore } from './file-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3ObjectStore } from './s3-store.ts';

export async function openStore(config: StoreConfig): Promise<ObjectStore> {
  if (config.url.startsWith('file:')) {
    const store = new FileObjectStore(config.url);
    await store.start();
    return store;
  }
  return new S3ObjectStore(config);
}
