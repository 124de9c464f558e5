/**
 * Durable file publication, the one way lakeside makes a file appear: write under a
 * `.tmp-` name in the target directory, fsync the file, rename it into place, fsync
 * the directory. A reader (or a crash) sees either no file or the whole file; a
 * leftover `.tmp-` file is garbage that start-up recovery removes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const TEMP_PREFIX = '.tmp-';

export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `${TEMP_PREFIX}${basename(finalPath)}.${randomBytes(4).toString('hex')}`);
}

export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates a directory (and parents) and makes the new entries durable. */
export async function ensureDirectory(directory: string): Promise<void> {
  const created = await mkdir(directory, { recursive: true });
  if (created !== undefined) {
    // fsync every directory from the first created one's parent down, so the new entries survive power loss.
    let current = directory;
    const chain: string[] = [];
    while (current.length >= created.length) {
      chain.push(current);
      current = dirname(current);
    }
    chain.push(dirname(created));
    for (const dir of chain.reverse()) await fsyncDirectory(dir);
  }
}

/** Moves a fully written temp file into place durably. */
export async function publishTempFile(tempPath: string, finalPath: string): Promise<void> {
  await rename(tempPath, finalPath);
  await fsyncDirectory(dirname(finalPath));
}

/** Writes `data` to `finalPath` atomically and durably. */
export async function writeFileDurably(finalPath: string, data: Uint8Array): Promise<void> {
  await ensureDirectory(dirname(finalPath));
  const temp = tempPathFor(finalPath);
  const handle = await open(temp, 'wx', 0o640);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw error;
  }
  await handle.close();
  await publishTempFile(temp, finalPath);
}
