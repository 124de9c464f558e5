// The camera-folder source against a real landing log, a real blob store and a real
// drop folder: what lands, what is refused (and that refused files are never opened),
// and that the source keeps flowing. Waits are on conditions, never on fixed sleeps.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, existsSync, lstatSync } from 'node:fs';
import { appendFile, link, mkdir, mkdtemp, open, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FolderSourceConfig } from '../../../config/schema.ts';
import { BlobStore } from '../../../agent/blobs/blob-store.ts';
import type { LandingLog } from '../../../agent/landing/landing-log.ts';
import type { LandingItem, LandingItemResult } from '../../../agent/landing/types.ts';
import type { FolderSource } from '../../../agent/sources/folder-source.ts';
import { cameraFolderConfig, framesDataset, newFolderSource, testLandingLog } from '../../support/folder-source.ts';
import { waitFor } from '../../support/wait-for.ts';

const frames = framesDataset({ fileColumn: true });
const MAX_FILE_BYTES = 1024 * 1024;
const STABLE_MS = 300;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Distinct, incompressible-looking content of `size` bytes. */
function content(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

interface LandedRow {
  line: string;
  camera: string;
  file: string;
  image: string;
}
interface QuarantineRow {
  reason_code: string;
  coordinates: string;
  reason: string;
}

/** Opens the pipe for writing without blocking: ENXIO means no one has (or is opening) its read end. */
async function fifoHasReader(path: string): Promise<boolean> {
  try {
    const handle = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') return false;
    throw error;
  }
}

describe('FolderSource', () => {
  let dir: string;
  let drop: string;
  let outside: string;
  let landing: LandingLog;
  let blobs: BlobStore;
  let sources: FolderSource[];
  /** Sizes passed to putFromHandle: every file the source actually copied. */
  let copies: number[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'folder-source-'));
    drop = join(dir, 'drop');
    outside = join(dir, 'outside');
    await mkdir(join(dir, 'state'), { recursive: true });
    await mkdir(outside, { recursive: true });
    landing = testLandingLog(join(dir, 'state', 'landing.db'), [frames]);
    await landing.start();
    blobs = new BlobStore(join(dir, 'state', 'blobs'));
    await blobs.start();
    copies = [];
    const put = blobs.putFromHandle.bind(blobs);
    blobs.putFromHandle = (handle, expectedBytes, contentType) => {
      copies.push(expectedBytes);
      return put(handle, expectedBytes, contentType);
    };
    sources = [];
  });

  afterEach(async () => {
    for (const source of sources) await source.stop();
    await landing.stop();
    await rm(dir, { recursive: true, force: true });
  });

  function config(overrides: Partial<FolderSourceConfig> = {}): FolderSourceConfig {
    return cameraFolderConfig(drop, frames, { max_file_bytes: MAX_FILE_BYTES, stable_ms: STABLE_MS, ...overrides });
  }

  async function startSource(overrides: Partial<FolderSourceConfig> = {}, landingLog: LandingLog = landing): Promise<FolderSource> {
    const cfg = config(overrides);
    const source = newFolderSource(cfg, frames, landingLog, blobs);
    sources.push(source);
    await source.start();
    return source;
  }

  function query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(join(dir, 'state', 'landing.db'), { readonly: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }
  const rowsOf = (file: string) => query<LandedRow>('SELECT line, camera, file, image FROM landed_frames WHERE file = ?', file);
  const allRows = () => query<LandedRow>('SELECT line, camera, file, image FROM landed_frames ORDER BY id');
  const quarantineOf = (relativePath: string) =>
    query<QuarantineRow>('SELECT reason_code, coordinates, reason FROM quarantine WHERE coordinates = ?', JSON.stringify({ path: relativePath }));
  const blobRows = (sha: string) => query<{ sha256: string }>('SELECT sha256 FROM blobs WHERE sha256 = ?', sha);

  /** Writes a file in one go, creating its directories. */
  async function dropFile(relativePath: string, bytes: Uint8Array): Promise<string> {
    const path = join(drop, relativePath);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
    return path;
  }

  /** A good file dropped after bad ones: once it has landed, the source has been past them. */
  async function sentinel(name: string): Promise<void> {
    const path = await dropFile(`l9/c9/${name}`, content(1000, name));
    await waitFor(() => rowsOf(name).length === 1 && !existsSync(path), `sentinel ${name}`);
  }

  it('lands a dropped file as one row whose blob is the sha256 of its bytes, and removes the file only after the commit', async () => {
    const bytes = content(200 * 1024, 'frame-1');
    const sha = sha256(bytes);
    // Hold the commit until the test lets it go, to see the file still there meanwhile.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let appendCalled = false;
    const append = landing.append.bind(landing);
    landing.append = async (item: LandingItem): Promise<LandingItemResult> => {
      appendCalled = true;
      await released;
      return append(item);
    };
    await startSource();
    const path = await dropFile('l1/cam1/frame-1.jpg', bytes);

    await waitFor(() => appendCalled, 'the source to hand the file to the landing log');
    expect(existsSync(path)).toBe(true);
    expect(allRows()).toEqual([]);
    // The blob is durable before its row is committed.
    expect((await readFile(blobs.pathOf(sha))).equals(bytes)).toBe(true);

    release();
    await waitFor(() => !existsSync(path), 'the file to be removed');
    expect(allRows()).toEqual([{ line: 'l1', camera: 'cam1', file: 'frame-1.jpg', image: sha }]);
    expect(blobs.pathOf(sha)).toBe(join(dir, 'state', 'blobs', sha.slice(0, 2), sha));
    expect((await readFile(blobs.pathOf(sha))).equals(bytes)).toBe(true);
    expect(blobRows(sha)).toHaveLength(1);
    expect(query('SELECT * FROM quarantine')).toEqual([]);
  });

  it('moves the file to done_dir after the commit when one is configured', async () => {
    const doneDir = join(dir, 'done');
    const bytes = content(50_000, 'frame-done');
    await startSource({ done_dir: doneDir });
    const path = await dropFile('l1/cam2/frame-2.png', bytes);
    await waitFor(() => !existsSync(path), 'the file to leave the drop folder');
    expect(rowsOf('frame-2.png')).toEqual([{ line: 'l1', camera: 'cam2', file: 'frame-2.png', image: sha256(bytes) }]);
    expect((await readFile(join(doneDir, 'l1', 'cam2', 'frame-2.png'))).equals(bytes)).toBe(true);
  });

  it('refuses a symlink to a file outside the folder without reading its target, and leaves the link', async () => {
    const secret = content(4096, 'secret');
    const target = join(outside, 'secret.jpg');
    await writeFile(target, secret);
    const pipe = join(outside, 'pipe');
    execFileSync('mkfifo', [pipe]);
    await startSource();
    await mkdir(join(drop, 'l1', 'cam1'), { recursive: true });
    const fileLink = join(drop, 'l1', 'cam1', 'secret.jpg');
    const pipeLink = join(drop, 'l1', 'cam1', 'pipe.jpg');
    await symlink(target, fileLink);
    await symlink(pipe, pipeLink);

    await waitFor(() => quarantineOf('l1/cam1/secret.jpg').length === 1, 'the file symlink to be quarantined');
    await waitFor(() => quarantineOf('l1/cam1/pipe.jpg').length === 1, 'the FIFO symlink to be quarantined');
    await sentinel('after-symlinks.jpg');

    expect(quarantineOf('l1/cam1/secret.jpg')[0]!.reason_code).toBe('symlink');
    expect(quarantineOf('l1/cam1/pipe.jpg')[0]!.reason_code).toBe('symlink');
    // The target's content never became a blob, and the pipe was never opened.
    expect(existsSync(blobs.pathOf(sha256(secret)))).toBe(false);
    expect(blobRows(sha256(secret))).toEqual([]);
    expect(await fifoHasReader(pipe)).toBe(false);
    expect(copies).toEqual([1000]); // only the sentinel was copied
    expect(lstatSync(fileLink).isSymbolicLink()).toBe(true);
    expect(lstatSync(pipeLink).isSymbolicLink()).toBe(true);
    expect((await readFile(target)).equals(secret)).toBe(true);
    expect(rowsOf('secret.jpg')).toEqual([]);
  });

  it('ingests nothing through a symlinked directory that points outside the folder', async () => {
    const elsewhere = join(outside, 'line7');
    const before = content(3000, 'outside-before');
    await mkdir(join(elsewhere, 'cam1'), { recursive: true });
    await writeFile(join(elsewhere, 'cam1', 'before.jpg'), before);
    await mkdir(drop, { recursive: true });
    await symlink(elsewhere, join(drop, 'line7'));
    await startSource();
    // A file appearing in the linked directory after the start is not picked up either.
    const after = content(3000, 'outside-after');
    await writeFile(join(elsewhere, 'cam1', 'after.jpg'), after);

    await waitFor(() => quarantineOf('line7').length === 1, 'the directory symlink to be quarantined');
    await sentinel('after-dir-link.jpg');
    expect(quarantineOf('line7')[0]!.reason_code).toBe('symlink');
    expect(allRows().map((r) => r.file)).toEqual(['after-dir-link.jpg']);
    expect(existsSync(blobs.pathOf(sha256(before)))).toBe(false);
    expect(existsSync(blobs.pathOf(sha256(after)))).toBe(false);
    expect(existsSync(join(elsewhere, 'cam1', 'before.jpg'))).toBe(true);
    expect(existsSync(join(elsewhere, 'cam1', 'after.jpg'))).toBe(true);
  });

  it('refuses a hardlinked file', async () => {
    const bytes = content(2000, 'hardlinked');
    const original = join(outside, 'hard.jpg');
    await writeFile(original, bytes);
    await startSource();
    await mkdir(join(drop, 'l1', 'cam1'), { recursive: true });
    await link(original, join(drop, 'l1', 'cam1', 'hard.jpg'));

    await waitFor(() => quarantineOf('l1/cam1/hard.jpg').length === 1, 'the hardlink to be quarantined');
    expect(quarantineOf('l1/cam1/hard.jpg')[0]!.reason_code).toBe('hardlink');
    expect(existsSync(join(drop, 'l1', 'cam1', 'hard.jpg'))).toBe(true);
    expect(existsSync(blobs.pathOf(sha256(bytes)))).toBe(false);
    expect(copies).toEqual([]);
  });

  it('refuses a FIFO in the folder without opening it or blocking the source', async () => {
    await startSource();
    await mkdir(join(drop, 'l1', 'cam1'), { recursive: true });
    const pipe = join(drop, 'l1', 'cam1', 'pipe.jpg');
    execFileSync('mkfifo', [pipe]);
    await sentinel('after-fifo.jpg');
    // Refused (quarantined) or ignored are both fine; opened is not.
    await waitFor(() => quarantineOf('l1/cam1/pipe.jpg').length > 0, 'the FIFO to be refused');
    expect(quarantineOf('l1/cam1/pipe.jpg').map((e) => e.reason_code)).toEqual(['not_regular_file']);
    expect(await fifoHasReader(pipe)).toBe(false);
    expect(lstatSync(pipe).isFIFO()).toBe(true);
  });

  it('refuses a file over max_file_bytes without reading it', async () => {
    await startSource();
    const path = join(drop, 'l1', 'cam1', 'huge.jpg');
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '');
    await truncate(path, MAX_FILE_BYTES + 1);
    await waitFor(() => quarantineOf('l1/cam1/huge.jpg').length === 1, 'the big file to be quarantined');
    const [entry] = quarantineOf('l1/cam1/huge.jpg');
    expect(entry!.reason_code).toBe('file_too_large');
    expect(copies).toEqual([]);
    expect(existsSync(blobs.pathOf(sha256(Buffer.alloc(MAX_FILE_BYTES + 1))))).toBe(false);
    expect(existsSync(path)).toBe(true);
  });

  /** Writes `bytes` in `steps` appends, each sooner after the last than stable_ms. */
  async function writeSlowly(path: string, bytes: Buffer, steps: number): Promise<void> {
    const step = Math.ceil(bytes.length / steps);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes.subarray(0, step));
    for (let offset = step; offset < bytes.length; offset += step) {
      await new Promise((resolve) => setTimeout(resolve, STABLE_MS / 4));
      // The file must still be there: taking it early would have removed it.
      expect(existsSync(path)).toBe(true);
      await appendFile(path, bytes.subarray(offset, offset + step));
    }
  }

  it('takes a file still being written only once it is complete', async () => {
    await startSource();
    const bytes = content(120_000, 'slow');
    const path = join(drop, 'l2', 'cam1', 'slow.jpg');
    await writeSlowly(path, bytes, 8);
    await waitFor(() => rowsOf('slow.jpg').length === 1 && !existsSync(path), 'the slow file to land');
    expect(rowsOf('slow.jpg')).toEqual([{ line: 'l2', camera: 'cam1', file: 'slow.jpg', image: sha256(bytes) }]);
    expect((await readFile(blobs.pathOf(sha256(bytes)))).equals(bytes)).toBe(true);
    expect(allRows()).toHaveLength(1);
  });

  it('takes a file that is being written when the source starts only once it is complete', async () => {
    const bytes = content(120_000, 'slow-at-start');
    const path = join(drop, 'l2', 'cam1', 'slow-at-start.jpg');
    const step = bytes.length / 8;
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes.subarray(0, step));
    // The writer goes on while the source starts and scans the folder.
    const writing = (async () => {
      for (let offset = step; offset < bytes.length; offset += step) {
        await new Promise((resolve) => setTimeout(resolve, STABLE_MS / 4));
        expect(existsSync(path)).toBe(true);
        await appendFile(path, bytes.subarray(offset, offset + step));
      }
    })();
    await startSource();
    await writing;
    await waitFor(() => rowsOf('slow-at-start.jpg').length === 1 && !existsSync(path), 'the slow file to land');
    expect(rowsOf('slow-at-start.jpg')[0]!.image).toBe(sha256(bytes));
    expect((await readFile(blobs.pathOf(sha256(bytes)))).equals(bytes)).toBe(true);
    expect(allRows()).toHaveLength(1);
  });

  it('quarantines a path that does not match the pattern and leaves the file', async () => {
    await startSource();
    const path = await dropFile('stray.jpg', content(100, 'stray'));
    const deep = await dropFile('l1/cam1/extra/deep.jpg', content(100, 'deep'));
    await waitFor(() => quarantineOf('stray.jpg').length === 1 && quarantineOf('l1/cam1/extra/deep.jpg').length === 1, 'mismatched paths to be quarantined');
    expect(quarantineOf('stray.jpg')[0]!.reason_code).toBe('path_mismatch');
    expect(quarantineOf('l1/cam1/extra/deep.jpg')[0]!.reason_code).toBe('path_mismatch');
    expect(existsSync(path)).toBe(true);
    expect(existsSync(deep)).toBe(true);
    expect(allRows()).toEqual([]);
  });

  it('quarantines a refused file once, not again after a restart', async () => {
    await startSource();
    await dropFile('stray.jpg', content(100, 'stray'));
    const big = join(drop, 'l1', 'cam1', 'huge.jpg');
    await mkdir(dirname(big), { recursive: true });
    await writeFile(big, '');
    await truncate(big, MAX_FILE_BYTES + 1);
    await writeFile(join(outside, 'target.jpg'), 'x');
    await symlink(join(outside, 'target.jpg'), join(drop, 'l1', 'cam1', 'link.jpg'));
    await waitFor(
      () => quarantineOf('stray.jpg').length === 1 && quarantineOf('l1/cam1/huge.jpg').length === 1 && quarantineOf('l1/cam1/link.jpg').length === 1,
      () => 'the refusals ' + JSON.stringify(query('SELECT coordinates, reason_code FROM quarantine')),
    );
    await sources[0]!.stop();

    await startSource();
    await sentinel('after-restart.jpg');
    expect(quarantineOf('stray.jpg')).toHaveLength(1);
    expect(quarantineOf('l1/cam1/huge.jpg')).toHaveLength(1);
    expect(quarantineOf('l1/cam1/link.jpg')).toHaveLength(1);
    expect(query('SELECT count(*) AS n FROM quarantine')).toEqual([{ n: 3 }]);
  });

  it('lands a file once when it is presented again after its row committed (crash before removal), and still removes it', async () => {
    const bytes = content(10_000, 'crashy');
    // First run: the commit happens, then the process "dies" before removing the file.
    const append = landing.append.bind(landing);
    let crashed = false;
    landing.append = async (item: LandingItem): Promise<LandingItemResult> => {
      const result = await append(item);
      if (!crashed && item.rows.length > 0) {
        crashed = true;
        throw new Error('simulated crash after commit');
      }
      return result;
    };
    const first = await startSource();
    const path = await dropFile('l1/cam1/crashy.jpg', bytes);
    await waitFor(() => crashed, 'the first commit');
    await first.stop();
    expect(existsSync(path)).toBe(true);
    expect(rowsOf('crashy.jpg')).toHaveLength(1);

    // Restart: the file is still there and is presented again.
    const second = await startSource();
    await waitFor(() => !existsSync(path), 'the re-presented file to be removed');
    expect(second.stats.duplicates).toBe(1);
    expect(rowsOf('crashy.jpg')).toHaveLength(1);

    // The same content at the same path again (a redelivered drop): still one row.
    await dropFile('l1/cam1/crashy.jpg', bytes);
    await waitFor(() => !existsSync(path), 'the second copy to be removed');
    expect(second.stats.duplicates).toBe(2);
    expect(rowsOf('crashy.jpg')).toEqual([{ line: 'l1', camera: 'cam1', file: 'crashy.jpg', image: sha256(bytes) }]);
  });

  it('ingests files written at once into freshly created nested directories', async () => {
    // chokidar reads a new directory before it watches it: an entry created in between
    // (mkdir -p and an immediate write, as camera software does) must not be lost.
    await startSource();
    const files = Array.from({ length: 40 }, (_, i) => ({ path: `n${i}/cam${i % 4}/f-${i}.jpg`, bytes: content(2000 + i, `nested-${i}`) }));
    await Promise.all(files.map((f) => dropFile(f.path, f.bytes)));
    await waitFor(() => allRows().length === files.length, () => `every nested file to land (${allRows().length}/${files.length})`);
    for (const f of files) expect(existsSync(join(drop, f.path))).toBe(false);
  });

  it('keeps flowing: good files dropped among refused ones all land', async () => {
    await startSource();
    await mkdir(join(drop, 'l1', 'cam1'), { recursive: true });
    execFileSync('mkfifo', [join(drop, 'l1', 'cam1', 'fifo.jpg')]);
    await writeFile(join(outside, 'target.jpg'), 'target');
    await symlink(join(outside, 'target.jpg'), join(drop, 'l1', 'cam1', 'link.jpg'));
    await dropFile('stray.jpg', content(10, 'stray'));
    const big = join(drop, 'l1', 'cam1', 'huge.jpg');
    await writeFile(big, '');
    await truncate(big, MAX_FILE_BYTES + 1);
    const good = Array.from({ length: 20 }, (_, i) => ({ name: `good-${i}.jpg`, bytes: content(5000 + i, `good-${i}`) }));
    await Promise.all(good.map((g, i) => dropFile(`l${i % 3}/cam${i % 2}/${g.name}`, g.bytes)));

    await waitFor(() => allRows().length === good.length, 'every good file to land');
    const landed = new Map(allRows().map((r) => [r.file, r.image]));
    for (const g of good) expect(landed.get(g.name)).toBe(sha256(g.bytes));
    await waitFor(() => query('SELECT count(*) AS n FROM quarantine')[0] !== undefined && (query<{ n: number }>('SELECT count(*) AS n FROM quarantine')[0]!.n === 4), 'the refusals');
    const codes = query<{ reason_code: string }>('SELECT reason_code FROM quarantine ORDER BY reason_code').map((r) => r.reason_code);
    expect(codes).toEqual(['file_too_large', 'not_regular_file', 'path_mismatch', 'symlink']);
  });
});
