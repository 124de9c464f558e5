/**
 * Camera-folder source (chokidar): each file dropped in the folder becomes a blob plus
 * one row.
 *
 * Invariants:
 * - Only regular files with one link, inside the folder, no larger than the cap, are
 *   read. Symlinks (to files or folders), hardlinks, devices, FIFOs and oversized files
 *   are refused: one quarantine entry with the reason, the file is left untouched, and
 *   nothing outside the folder is ever opened. The file is opened with O_NOFOLLOW and
 *   re-checked through its descriptor, so a swap after the check is caught.
 * - A file is taken only once its size and mtime have been stable for `stable_ms`; if
 *   it still changes while being copied it is put back and taken later.
 * - The source file is deleted (or moved to `done_dir`) only after the commit that
 *   holds its row. Each file lands under a source key (relative path + sha256) in the
 *   same transaction, so a crash between commit and delete never duplicates a row.
 */
import { constants, type Stats } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, realpath, rename, unlink } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { FolderSourceConfig } from '../../config/schema.ts';
import { ErrorCode, type Logger } from '../log.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { LandingLog } from '../landing/landing-log.ts';
import type { LandingItem, QuarantineEntry } from '../landing/types.ts';
import type { FolderMapper } from '../mapping/mapper.ts';
import { PauseGate } from './pause-gate.ts';

export interface FolderSourceOptions {
  config: FolderSourceConfig;
  mapper: FolderMapper;
  landing: LandingLog;
  blobs: BlobStore;
  logger: Logger;
}

export interface FolderSourceStats {
  ingested: number;
  refused: number;
  duplicates: number;
  retried: number;
}

const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.webp': 'image/webp',
  '.json': 'application/json',
};

/** Why a file was not ingested; `retry` means "not yet", the rest are final. */
type Refusal = { code: string; reason: string; retry?: boolean };

export class FolderSource implements Component {
  readonly name: string;
  readonly stats: FolderSourceStats = { ingested: 0, refused: 0, duplicates: 0, retried: 0 };
  private watcher: FSWatcher | null = null;
  private root = '';
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  /** Files refused once, by path and identity, so they are not quarantined again every scan. */
  private readonly refused = new Set<string>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private stopping = false;
  private readonly gate = new PauseGate();
  private readonly include: RegExp;
  private readonly options: FolderSourceOptions;
  private readonly log: Logger;

  constructor(options: FolderSourceOptions) {
    this.options = options;
    this.name = `folder:${options.config.name}`;
    this.include = new RegExp(options.config.include);
    this.log = options.logger.child({ source: this.name });
  }

  pause(): void {
    this.gate.pause();
  }

  resume(): void {
    this.gate.resume();
    this.pump();
  }

  async start(): Promise<void> {
    const { config } = this.options;
    await mkdir(config.path, { recursive: true });
    this.root = await realpath(config.path);
    const doneDir = config.done_dir ? resolve(config.done_dir) : null;
    if (doneDir) await mkdir(doneDir, { recursive: true });
    const watcher = chokidar.watch(this.root, {
      followSymlinks: false,
      alwaysStat: true,
      ignoreInitial: false,
      awaitWriteFinish: { stabilityThreshold: config.stable_ms, pollInterval: Math.min(100, config.stable_ms) },
      ignored: (path: string) => (doneDir !== null && (path === doneDir || path.startsWith(doneDir + sep))) || /(^|\/)\.tmp-/.test(path),
    });
    this.watcher = watcher;
    let scanned = false;
    watcher.on('add', (path) => (scanned ? this.enqueue(path) : this.enqueueWhenStable(path)));
    watcher.on('change', (path) => this.enqueue(path));
    watcher.on('addDir', (path) => this.recheckDirectoryLater(path));
    watcher.on('error', (error) => this.log.error({ code: ErrorCode.folderError, err: String(error) }, 'folder watch error'));
    await new Promise<void>((ready) => watcher.once('ready', () => ready()));
    scanned = true;
    this.log.info({ path: this.root }, 'watching folder');
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    this.gate.resume();
    await this.watcher?.close();
    this.queue.length = 0;
    if (this.active > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  });

  private enqueue(path: string): void {
    if (this.stopping || this.queued.has(path)) return;
    this.queued.add(path);
    this.queue.push(path);
    this.pump();
  }

  /**
   * chokidar's awaitWriteFinish only covers files that appear after its initial scan: a
   * file the scan finds (say, one a camera is still writing while the daemon starts) is
   * emitted at once. Such a file is queued only once two looks `stable_ms` apart see the
   * same size and mtime; otherwise a half-written file would land and be removed.
   */
  private enqueueWhenStable(path: string, previous: string | null = null): void {
    if (this.stopping) return;
    lstat(path).then(
      (stats) => {
        const signature = `${stats.size}:${stats.mtimeMs}`;
        if (signature === previous) return this.enqueue(path);
        const timer = setTimeout(() => this.enqueueWhenStable(path, signature), this.options.config.stable_ms);
        timer.unref();
      },
      () => {}, // gone already
    );
  }

  /**
   * chokidar reads a new directory and only then watches it, so an entry created in
   * between (`mkdir -p` and an immediate write, as camera software does) is never
   * reported, and the file would sit in the folder until a restart. Once the directory
   * has settled, it is read again and whatever chokidar does not know is handed to it.
   */
  private recheckDirectoryLater(directory: string): void {
    const timer = setTimeout(() => {
      void readdir(directory)
        .then((names) => {
          const watcher = this.watcher;
          if (this.stopping || !watcher) return; // add() would reopen a closed watcher
          const known = new Set(watcher.getWatched()[directory] ?? []);
          for (const name of names) if (!known.has(name)) watcher.add(join(directory, name));
        })
        .catch(() => {}); // gone already
    }, this.options.config.stable_ms);
    timer.unref();
  }

  private pump(): void {
    while (!this.stopping && !this.gate.isPaused && this.active < this.options.config.concurrency && this.queue.length > 0) {
      const path = this.queue.shift()!;
      this.active++;
      void this.ingest(path)
        .catch((error: Error) => {
          this.log.error({ code: ErrorCode.folderError, file: this.relativeOf(path), err: error.message }, 'file not ingested; will retry');
          this.retryLater(path);
        })
        .finally(() => {
          this.queued.delete(path);
          this.active--;
          if (this.active === 0) for (const wake of this.idleWaiters.splice(0)) wake();
          this.pump();
        });
    }
  }

  private retryLater(path: string): void {
    this.stats.retried++;
    const timer = setTimeout(() => this.enqueue(path), Math.max(1000, this.options.config.stable_ms));
    timer.unref();
  }

  private relativeOf(path: string): string {
    return relative(this.root, path).split(sep).join('/');
  }

  private async ingest(path: string): Promise<void> {
    await this.gate.wait();
    if (this.stopping) return;
    const relativePath = this.relativeOf(path);
    if (relativePath.startsWith('..') || relativePath === '') return;
    if (!this.include.test(relativePath.slice(relativePath.lastIndexOf('/') + 1))) return;
    let stats: Stats;
    try {
      stats = await lstat(path);
    } catch {
      return; // gone already
    }
    const identity = `${relativePath}:${stats.ino}:${stats.mtimeMs}:${stats.size}`;
    if (this.refused.has(identity)) return;
    const refusal = (await this.checkPlacement(path)) ?? this.checkFile(stats);
    if (refusal) return this.refuse(relativePath, identity, refusal, path);
    const match = this.options.mapper.match(relativePath);
    if (!match.ok) return this.refuse(relativePath, identity, { code: 'path_mismatch', reason: match.reason }, path);

    // Open without following links, then check the descriptor is the file we checked.
    // O_NONBLOCK: a FIFO swapped in after the checks must not block the open.
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    let blob;
    try {
      const opened = await handle.stat();
      if (opened.ino !== stats.ino || opened.dev !== stats.dev) return this.retryLater(path);
      const again = this.checkFile(opened);
      if (again) return this.refuse(relativePath, identity, again, path);
      try {
        blob = await this.options.blobs.putFromHandle(handle, opened.size, CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream');
      } catch (error) {
        if ((error as Error).message.startsWith('file changed')) return this.retryLater(path);
        throw error;
      }
      const after = await handle.stat();
      if (after.size !== opened.size || after.mtimeMs !== opened.mtimeMs) return this.retryLater(path);
    } finally {
      await handle.close();
    }
    const mapped = this.options.mapper.map(relativePath, Date.now() * 1000, Math.round(stats.mtimeMs * 1000));
    const item: LandingItem = { rows: [], quarantine: [], blobs: [blob] };
    if (mapped.kind === 'row') {
      mapped.row.values[mapped.blobColumn] = blob.sha256;
      item.rows.push(mapped.row);
    } else {
      item.quarantine.push(mapped.entry);
    }
    const result = await this.options.landing.append({ ...item, sourceKey: { source: this.name, key: `${relativePath}:${blob.sha256}` } });
    if (result.sourceDuplicate) this.stats.duplicates++;
    else this.stats.ingested++;
    await this.removeSource(path, relativePath);
  }

  /** The file must sit in a real directory under the root: no symlinked directory on the way. */
  private async checkPlacement(path: string): Promise<Refusal | null> {
    try {
      const parent = await realpath(dirname(path));
      if (parent !== this.root && !parent.startsWith(this.root + sep)) {
        return { code: 'outside_folder', reason: `the file's directory resolves outside ${this.root}` };
      }
      if (parent !== dirname(path)) return { code: 'symlink', reason: 'the file is reached through a symlinked directory' };
    } catch {
      return { code: 'unreadable', reason: 'the directory could not be resolved' };
    }
    return null;
  }

  private checkFile(stats: Stats): Refusal | null {
    if (stats.isSymbolicLink()) return { code: 'symlink', reason: 'symlinks are not followed' };
    if (!stats.isFile()) return { code: 'not_regular_file', reason: 'not a regular file' };
    if (stats.nlink > 1) return { code: 'hardlink', reason: `the file has ${stats.nlink} links; hardlinks are refused` };
    if (stats.size > this.options.config.max_file_bytes) {
      return { code: 'file_too_large', reason: `${stats.size} bytes is over max_file_bytes (${this.options.config.max_file_bytes})` };
    }
    return null;
  }

  private async refuse(relativePath: string, identity: string, refusal: Refusal, path: string): Promise<void> {
    if (refusal.retry) return this.retryLater(path);
    this.refused.add(identity);
    const entry: QuarantineEntry = {
      source: this.name,
      coordinates: JSON.stringify({ path: relativePath }),
      dataset: this.options.config.dataset,
      reasonCode: refusal.code,
      reason: `${relativePath}: ${refusal.reason}`,
      payload: new Uint8Array(0),
      payloadBytes: 0,
      receivedAtUs: Date.now() * 1000,
    };
    // The source key makes the refusal land once, across restarts too; count and log it once.
    const result = await this.options.landing.append({ rows: [], quarantine: [entry], blobs: [], sourceKey: { source: this.name, key: `refused:${identity}` } });
    if (result.sourceDuplicate) return;
    this.stats.refused++;
    this.log.warn({ code: ErrorCode.folderRefused, file: relativePath, reason: refusal.code }, `file refused: ${refusal.reason}`);
  }

  private async removeSource(path: string, relativePath: string): Promise<void> {
    const doneDir = this.options.config.done_dir;
    if (doneDir) {
      const target = join(resolve(doneDir), relativePath);
      await mkdir(dirname(target), { recursive: true });
      try {
        await rename(path, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
        // done_dir on another filesystem: copy, then remove (the row is committed already).
        await copyFile(path, target);
        await unlink(path);
      }
    } else {
      await unlink(path);
    }
  }
}
