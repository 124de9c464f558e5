/**
 * Content-addressed blob files (camera frames, binary payloads).
 *
 * Layout: `<state_dir>/blobs/<sha[0..2]>/<sha256 hex>`; temp files in
 * `<state_dir>/blobs/.tmp/`. A blob is written to a temp file, fsynced, renamed to its
 * hash and its directory fsynced **before** the row that references it is committed.
 * Identical content is stored once. A blob file with no `blobs` row after a crash is
 * an orphan that start-up recovery removes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDirectory, publishTempFile } from '../fs-durable.ts';
import type { BlobRef } from '../landing/types.ts';

const COPY_CHUNK_BYTES = 1024 * 1024;

export class BlobStore {
  readonly root: string;
  private readonly tempDir: string;

  constructor(root: string) {
    this.root = root;
    this.tempDir = join(root, '.tmp');
  }

  async start(): Promise<void> {
    await ensureDirectory(this.tempDir);
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async putBytes(bytes: Uint8Array, contentType: string | null): Promise<BlobRef> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (await this.has(sha256, bytes.byteLength)) return { sha256, sizeBytes: bytes.byteLength, contentType };
    const temp = this.tempName();
    const handle = await open(temp, 'wx', 0o640);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.publish(temp, sha256);
    return { sha256, sizeBytes: bytes.byteLength, contentType };
  }

  /**
   * Copies an open source file into the store while hashing it. Throws if the source
   * does not hold exactly `expectedBytes` (it changed while being read).
   */
  async putFromHandle(source: FileHandle, expectedBytes: number, contentType: string | null): Promise<BlobRef> {
    const hash = createHash('sha256');
    const temp = this.tempName();
    const target = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o640);
    let copied = 0;
    try {
      const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(expectedBytes, 1)));
      for (;;) {
        const { bytesRead } = await source.read(buffer, 0, buffer.length, copied);
        if (bytesRead === 0) break;
        copied += bytesRead;
        if (copied > expectedBytes) break;
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        await target.write(chunk);
      }
      if (copied !== expectedBytes) throw new Error(`file changed while being read: expected ${expectedBytes} bytes, read ${copied}`);
      await target.sync();
    } catch (error) {
      await target.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw error;
    }
    await target.close();
    const sha256 = hash.digest('hex');
    if (await this.has(sha256, copied)) {
      await unlink(temp);
    } else {
      await this.publish(temp, sha256);
    }
    return { sha256, sizeBytes: copied, contentType };
  }

  /** Removes temp files and blob files that no committed row references. */
  async recover(isKnown: (sha256: string) => boolean): Promise<{ tempRemoved: number; orphansRemoved: number }> {
    let tempRemoved = 0;
    let orphansRemoved = 0;
    await ensureDirectory(this.tempDir);
    for (const name of await readdir(this.tempDir)) {
      await unlink(join(this.tempDir, name)).catch(() => {});
      tempRemoved++;
    }
    for (const shard of await readdir(this.root)) {
      if (shard === '.tmp' || !/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of await readdir(join(this.root, shard))) {
        if (!isKnown(name)) {
          await unlink(join(this.root, shard, name)).catch(() => {});
          orphansRemoved++;
        }
      }
    }
    return { tempRemoved, orphansRemoved };
  }

  private tempName(): string {
    return join(this.tempDir, `${Date.now()}-${randomBytes(6).toString('hex')}`);
  }

  private async has(sha256: string, sizeBytes: number): Promise<boolean> {
    try {
      return (await stat(this.pathOf(sha256))).size === sizeBytes;
    } catch {
      return false;
    }
  }

  private async publish(temp: string, sha256: string): Promise<void> {
    const finalPath = this.pathOf(sha256);
    await ensureDirectory(join(this.root, sha256.slice(0, 2)));
    await publishTempFile(temp, finalPath);
  }
}
