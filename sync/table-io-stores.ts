/**
 * The table file IO (table-io.ts) over lakeside's object stores (tiering/stores/):
 * `file:///abs/path` and `s3://bucket/key` locations.
 *
 * Invariants:
 * - A location is served by the first mount whose base contains it (a store the
 *   caller owns, e.g. the warm store, so its temp files and lifecycle stay its own);
 *   the key is the rest of the location. An `s3://` location outside every mount gets
 *   a store of its own, one per bucket, opened on first use from the S3 settings
 *   template (endpoint, region, path style, credentials; normally the warm store's).
 *   A `file:` location outside every mount is refused: a local store needs a root it
 *   owns (its `.tmp/`), never `/`.
 * - `writeOnce` is the store's `putBytes`: conditional create, same bytes → `created:
 *   false`, different bytes → `ObjectConflictError`. Nothing is ever overwritten.
 * - `close` closes only the stores this IO opened, never a mounted one.
 */
import { isAbsolute, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { StoreConfig } from '../config/tiering-schema.ts';
import { FileObjectStore } from '../tiering/stores/file-store.ts';
import { joinKey, ObjectStoreError, type ObjectStore } from '../tiering/stores/object-store.ts';
import { parseS3Url, S3ObjectStore } from '../tiering/stores/s3-store.ts';
import type { TableFileIO } from './table-io.ts';

export interface StoreMount {
  /** The location of the store's root: `file:///dir` or `s3://bucket[/prefix]`. */
  base: string;
  store: ObjectStore;
}

export interface StoreTableFileIOOptions {
  mounts?: StoreMount[];
  /** S3 settings for buckets outside the mounts (its `url` is ignored). */
  s3Template?: StoreConfig;
}

/** The location of a store's root, in the form table locations use. */
export function storeLocation(store: ObjectStore): string {
  if (store instanceof FileObjectStore) return pathToFileURL(store.root).href.replace(/\/$/, '');
  if (store instanceof S3ObjectStore) return store.prefix ? `s3://${store.bucket}/${store.prefix}` : `s3://${store.bucket}`;
  throw new ObjectStoreError('BAD_LOCATION', `no location form for store ${store.description}`, false);
}

/** `base` + `/` + key. */
export function locationOf(base: string, key: string): string {
  return `${base.replace(/\/+$/, '')}/${key}`;
}

type Parsed = { kind: 'file'; path: string } | { kind: 's3'; bucket: string; key: string };

function parseLocation(location: string): Parsed {
  if (location.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(location);
    } catch (error) {
      throw new ObjectStoreError('BAD_LOCATION', `not a file URL: ${location}`, false, { cause: error });
    }
    return { kind: 'file', path };
  }
  if (location.startsWith('s3://') || location.startsWith('s3a://')) {
    const { bucket, prefix } = parseS3Url(location.replace(/^s3a:/, 's3:'));
    return { kind: 's3', bucket, key: prefix };
  }
  throw new ObjectStoreError('BAD_LOCATION', `unsupported location ${location} (expected file:// or s3://)`, false);
}

/** The key of `parsed` inside `base`, or null when it lies outside. */
function keyWithin(base: Parsed, parsed: Parsed): string | null {
  if (base.kind === 'file' && parsed.kind === 'file') {
    const rel = relative(base.path, parsed.path);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
    return rel.split(sep).join('/');
  }
  if (base.kind === 's3' && parsed.kind === 's3' && base.bucket === parsed.bucket) {
    if (base.key === '') return parsed.key;
    return parsed.key.startsWith(`${base.key}/`) ? parsed.key.slice(base.key.length + 1) : null;
  }
  return null;
}

/** A store object's bytes. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class StoreTableFileIO implements TableFileIO {
  private readonly mounts: { base: Parsed; store: ObjectStore }[];
  private readonly s3Template: StoreConfig | undefined;
  private readonly buckets = new Map<string, S3ObjectStore>();

  constructor(options: StoreTableFileIOOptions) {
    this.mounts = (options.mounts ?? []).map((m) => ({ base: parseLocation(m.base), store: m.store }));
    this.s3Template = options.s3Template;
  }

  private resolve(location: string): { store: ObjectStore; key: string } {
    const parsed = parseLocation(location);
    for (const mount of this.mounts) {
      const key = keyWithin(mount.base, parsed);
      if (key !== null) return { store: mount.store, key };
    }
    if (parsed.kind === 'file') {
      throw new ObjectStoreError('BAD_LOCATION', `${location} is outside every local store this agent writes to`, false);
    }
    if (!this.s3Template || !this.s3Template.url.startsWith('s3:')) {
      throw new ObjectStoreError('BAD_LOCATION', `no S3 settings to reach ${location} (the warm store is not on S3)`, false);
    }
    let store = this.buckets.get(parsed.bucket);
    if (!store) {
      store = new S3ObjectStore({ ...this.s3Template, url: `s3://${parsed.bucket}` });
      this.buckets.set(parsed.bucket, store);
    }
    return { store, key: joinKey(parsed.key) };
  }

  async writeOnce(location: string, bytes: Uint8Array, contentType?: string): Promise<{ created: boolean }> {
    const { store, key } = this.resolve(location);
    const result = await store.putBytes(key, bytes, contentType);
    return { created: result.created };
  }

  async read(location: string): Promise<Uint8Array> {
    const { store, key } = this.resolve(location);
    return readAll(await store.get(key));
  }

  async exists(location: string): Promise<boolean> {
    const { store, key } = this.resolve(location);
    return (await store.head(key)) !== null;
  }

  async delete(location: string): Promise<void> {
    const { store, key } = this.resolve(location);
    await store.delete(key);
  }

  async close(): Promise<void> {
    const stores = [...this.buckets.values()];
    this.buckets.clear();
    await Promise.all(stores.map((s) => s.close()));
  }
}
