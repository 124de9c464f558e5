/**
 * Atomic publication of a file: after `writeFileAtomic` returns, the target holds
 * the complete new bytes and survives power loss; before, it holds nothing new.
 *
 * How: write `<dir>/.tmp-<random>-<name>`, fsync it, rename over the target, fsync
 * the directory (so the rename itself is durable). A crash leaves at most a `.tmp-`
 * file behind; `isTempName` lets recovery recognise and delete it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const TEMP_PREFIX = '.tmp-';

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `dir` and its missing parents, making each new entry durable in its parent. */
export function mkdirDurable(dir: string): void {
  const created = mkdirSync(dir, { recursive: true });
  if (created === undefined) return;
  // fsync every parent from the first directory created upward.
  let current = dir;
  while (current.length >= created.length) {
    fsyncDir(dirname(current));
    if (current === created) break;
    current = dirname(current);
  }
}

export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const dir = dirname(path);
  mkdirDurable(dir);
  const temp = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${basename(path)}`);
  const fd = openSync(temp, 'w', 0o640);
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
  closeSync(fd);
  renameSync(temp, path);
  fsyncDir(dir);
}
