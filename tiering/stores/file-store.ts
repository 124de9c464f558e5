/**
 * A local directory as an object store (`file:///dir`): the embedded default the demo
 * uses for its warm and cold "buckets", and the store of every unit test.
 *
 * Layout: `<dir>/<key>` (the key's `/` are directories); uploads in progress under
 * `<dir>/.tmp/` (never listed; removed at `start`).
 *
 * Invariants:
 * - An object appears whole or not at all: bytes go to a temp file, which is fsynced,
 *   hashed while written, checked against the expected SHA-256 and size, then linked to
 *   its key with `link(2)` (fails if the key exists: conditional create) and the
 *   directory fsynced. A crash leaves at most a temp file.
 * - An existing key is verified by hashing its content: same → `created: false`,
 *   different → `ObjectConflictError`.
 * - `put` (a local file) and `putBytes` (bytes in memory) share that create, so two
 *   racing writers of one key never both succeed with different bytes: the
 *   file-system Iceberg catalog's commit (sync/fs-catalog.ts) rests on this.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, open, readdir, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { ensureDirectory, fsyncDirectory, tempPathFor } from '../../agent/fs-durable.ts';
import { hashingStream } from './hashing.ts';
import {
  assertValidKey,
  ObjectConflictError,
  ObjectNotFoundError,
  ObjectStoreError,
  type ObjectInfo,
  type ObjectStore,
  type PutResult,
  type PutSource,
} from './object-store.ts';

const TEMP_DIR = '.tmp';

/** What a put must find at its key to count as a retry of itself. */
type Expected = Pick<PutSource, 'sizeBytes' | 'sha256'>;

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function sha256OfFile(path: string): Promise<{ sha256: string; sizeBytes: number }> {
  const hashing = hashingStream();
  await pipeline(createReadStream(path), hashing.stream, new Writable({ write: (_chunk, _encoding, done) => done() }));
  return { sha256: hashing.digest(), sizeBytes: hashing.bytes() };
}

function fsError(error: unknown, what: string): ObjectStoreError {
  const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
  // Full disk or I/O trouble may pass; a permission problem needs an operator.
  const retriable = !['EACCES', 'EPERM', 'EROFS'].includes(code);
  return new ObjectStoreError(`FS_${code}`, `${what}: ${code}`, retriable, { cause: error });
}

export class FileObjectStore implements ObjectStore {
  readonly description: string;
  readonly root: string;

  constructor(urlOrDir: string) {
    this.root = urlOrDir.startsWith('file:') ? fileURLToPath(urlOrDir) : urlOrDir;
    this.description = `file://${this.root}`;
  }

  /** Creates the directory and removes uploads a crash cut short. */
  async start(): Promise<void> {
    await rm(join(this.root, TEMP_DIR), { recursive: true, force: true });
    await ensureDirectory(join(this.root, TEMP_DIR));
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    if (key === TEMP_DIR || key.startsWith(`${TEMP_DIR}/`)) throw new ObjectStoreError('BAD_KEY', `key ${key} is reserved`, false);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, source: PutSource): Promise<PutResult> {
    return this.create(key, source, async (temp) => {
      const hashing = hashingStream();
      const input: Readable = createReadStream(source.path);
      const out = createWriteStream(temp, { flags: 'wx', mode: 0o640 });
      await pipeline(source.throttle ? source.throttle(input) : input, hashing.stream, out);
      await fsyncFile(temp);
      const written = hashing.bytes();
      const sha256 = hashing.digest();
      if (sha256 !== source.sha256 || written !== source.sizeBytes) {
        throw new ObjectStoreError('CHECKSUM_MISMATCH', `${key}: read ${written} bytes with sha256 ${sha256}, expected ${source.sizeBytes} bytes ${source.sha256} (the local file changed)`, false);
      }
    });
  }

  async putBytes(key: string, bytes: Uint8Array, _contentType?: string): Promise<PutResult> {
    const expected = { sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    return this.create(key, expected, async (temp) => {
      const handle = await open(temp, 'wx', 0o640);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  /**
   * The conditional create both puts share: `writeTemp` fills a fresh temp file (whole
   * and fsynced), which `link(2)` then publishes under the key. link fails with EEXIST
   * if the key exists, so of two racing writers exactly one creates the object; the
   * other verifies what it found (same bytes → `created: false`, else a conflict).
   */
  private async create(key: string, expected: Expected, writeTemp: (temp: string) => Promise<void>): Promise<PutResult> {
    const finalPath = this.pathOf(key);
    const existing = await this.verifyExisting(key, finalPath, expected);
    if (existing) return existing;
    await ensureDirectory(join(this.root, TEMP_DIR));
    const temp = tempPathFor(join(this.root, TEMP_DIR, key.replaceAll('/', '_')));
    try {
      await writeTemp(temp);
      await ensureDirectory(dirname(finalPath));
      try {
        await link(temp, finalPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        // Another put of the same key won the race: verify it holds our content.
        const raced = await this.verifyExisting(key, finalPath, expected);
        if (raced) return raced;
        throw error;
      }
      await fsyncDirectory(dirname(finalPath));
      return { created: true, sizeBytes: expected.sizeBytes, sha256: expected.sha256, multipart: false };
    } catch (error) {
      if (error instanceof ObjectStoreError) throw error;
      throw fsError(error, `put ${key}`);
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  private async verifyExisting(key: string, finalPath: string, source: Expected): Promise<PutResult | null> {
    let size: number;
    try {
      size = (await stat(finalPath)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(error, `stat ${key}`);
    }
    if (size !== source.sizeBytes) throw new ObjectConflictError(key, `${size} bytes, expected ${source.sizeBytes}`);
    const { sha256 } = await sha256OfFile(finalPath);
    if (sha256 !== source.sha256) throw new ObjectConflictError(key, `sha256 ${sha256}, expected ${source.sha256}`);
    return { created: false, sizeBytes: size, sha256, multipart: false };
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    try {
      const handle = await open(path, 'r');
      return handle.createReadStream();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key);
      throw fsError(error, `get ${key}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const path = this.pathOf(key);
    try {
      const stats = await stat(path);
      if (!stats.isFile()) return null;
      const { sha256 } = await sha256OfFile(path);
      return { key, sizeBytes: stats.size, sha256, lastModifiedMs: stats.mtimeMs };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(error, `head ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const keys: { key: string; size: number; mtime: number }[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw fsError(error, `list ${prefix}`);
      }
      for (const entry of entries) {
        const key = keyPrefix ? `${keyPrefix}/${entry.name}` : entry.name;
        if (key === TEMP_DIR) continue;
        if (entry.isDirectory()) {
          if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || prefix === '') await walk(join(dir, entry.name), key);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const stats = await stat(join(dir, entry.name));
          keys.push({ key, size: stats.size, mtime: stats.mtimeMs });
        }
      }
    };
    await walk(this.root, '');
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const k of keys) yield { key: k.key, sizeBytes: k.size, sha256: null, lastModifiedMs: k.mtime };
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
      await fsyncDirectory(dirname(path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw fsError(error, `delete ${key}`);
    }
  }

  async close(): Promise<void> {}
}

