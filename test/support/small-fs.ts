// A tiny dedicated filesystem for disk-full tests. Filling the real disk would hurt the
// machine and be slow; a few-MiB tmpfs (or, where tmpfs cannot be mounted, a loop-mounted
// ext4 image) gives real ENOSPC from the kernel in milliseconds, and a ballast file lets a
// test run the disk out and then give space back to check recovery.
// Needs root (mount). Without it this throws rather than skipping: a disk-full test that
// silently does not run proves nothing.
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, statfsSync, writeSync } from 'node:fs';
import { mkdtemp, rm, stat, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type SmallFsKind = 'tmpfs' | 'ext4-loop';

export interface SmallFsOptions {
  /** Filesystem size in KiB (default 4096). ext4 images are at least 1024 KiB. */
  sizeKiB?: number;
  /** Which kind to try; 'auto' (default) tries tmpfs, then a loop-mounted ext4 image. */
  kind?: 'auto' | SmallFsKind;
}

export interface SmallFs {
  /** Mount point; put the data directory under test somewhere inside. */
  readonly dir: string;
  readonly kind: SmallFsKind;
  readonly sizeKiB: number;
  /** Bytes an unprivileged writer can still allocate (statfs f_bavail × f_bsize). */
  available(): number;
  /**
   * Write ballast until only about `leaveBytes` are free (default 0: until ENOSPC).
   * Returns the ballast file's path. Can be called again to fill more.
   */
  fill(leaveBytes?: number): string;
  /**
   * Give space back: shrink the ballast by `bytes`, or delete all ballast when omitted.
   */
  free(bytes?: number): Promise<void>;
  /** Unmount and remove the mount point (and image). Safe to call twice. */
  cleanup(): Promise<void>;
}

const CHUNK = Buffer.alloc(1 << 20);

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function errText(e: unknown): string {
  const err = e as { stderr?: Buffer; message?: string };
  return (err.stderr?.toString().trim() || err.message || String(e)).split('\n')[0] ?? String(e);
}

// Mounts still up when the test process exits would pile up across runs.
const mounted = new Set<string>();
process.once('exit', () => {
  for (const dir of mounted) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // best effort on the way out
    }
  }
});

/** Write `fd` full: until ENOSPC, or until `limit` bytes were written. Returns bytes written. */
function writeUntilFull(fd: number, limit: number): number {
  let written = 0;
  let pos = fstatSync(fd).size;
  // Shrinking chunk sizes: the last free blocks are smaller than a big chunk, and a
  // filesystem is only really "full" once even a tiny write fails.
  for (const size of [1 << 20, 1 << 16, 1 << 12, 512, 1]) {
    for (;;) {
      const n = Math.min(size, limit - written);
      if (n <= 0) return written;
      try {
        const w = writeSync(fd, CHUNK, 0, n, pos);
        written += w;
        pos += w;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
  }
  return written;
}

export async function createSmallFs(opts: SmallFsOptions = {}): Promise<SmallFs> {
  if (process.getuid?.() !== 0) {
    throw new Error('createSmallFs needs root to mount a filesystem (run the tests as root, as CI does)');
  }
  const kind = opts.kind ?? 'auto';
  const requested = opts.sizeKiB ?? 4096;
  const base = await mkdtemp(join(tmpdir(), 'lakeside-smallfs-'));
  const dir = join(base, 'mnt');
  run('mkdir', ['-p', dir]);
  const failures: string[] = [];
  let got: { kind: SmallFsKind; sizeKiB: number; image?: string } | undefined;

  if (kind === 'auto' || kind === 'tmpfs') {
    try {
      run('mount', ['-t', 'tmpfs', '-o', `size=${requested}k,mode=0755`, 'tmpfs', dir]);
      got = { kind: 'tmpfs', sizeKiB: requested };
    } catch (e) {
      failures.push(`tmpfs: ${errText(e)}`);
    }
  }
  if (!got && (kind === 'auto' || kind === 'ext4-loop')) {
    const image = join(base, 'fs.img');
    const sizeKiB = Math.max(requested, 1024);
    try {
      run('truncate', ['-s', `${sizeKiB}K`, image]);
      // No reserved blocks and no journal: root would otherwise write into the 5 %
      // reserve, and a journal eats much of a 1 MiB image.
      run('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal', '-b', '1024', image]);
      run('mount', ['-o', 'loop', image, dir]);
      got = { kind: 'ext4-loop', sizeKiB, image };
    } catch (e) {
      failures.push(`ext4 loop: ${errText(e)}`);
    }
  }
  if (!got) {
    await rm(base, { recursive: true, force: true });
    throw new Error(`createSmallFs: could not mount a small filesystem at ${dir}: ${failures.join('; ')}`);
  }
  mounted.add(dir);

  const ballasts: string[] = [];
  const info = got;
  let cleaned = false;
  const available = (): number => {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  };

  return {
    dir,
    kind: info.kind,
    sizeKiB: info.sizeKiB,
    available,
    fill(leaveBytes = 0) {
      const path = join(dir, `.ballast-${ballasts.length}`);
      const fd = openSync(path, 'w');
      try {
        const limit = leaveBytes > 0 ? Math.max(0, available() - leaveBytes) : Infinity;
        writeUntilFull(fd, limit);
      } finally {
        closeSync(fd);
      }
      ballasts.push(path);
      return path;
    },
    async free(bytes?: number) {
      if (bytes === undefined) {
        for (const b of ballasts.splice(0)) await unlink(b).catch(() => undefined);
        return;
      }
      let left = bytes;
      while (left > 0 && ballasts.length > 0) {
        const b = ballasts[ballasts.length - 1]!;
        const size = (await stat(b)).size;
        if (size <= left) {
          await unlink(b);
          ballasts.pop();
          left -= size;
        } else {
          await truncate(b, size - left);
          left = 0;
        }
      }
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      try {
        run('umount', [dir]);
      } catch {
        // Busy (a test left a file open): detach lazily so the run is not blocked.
        run('umount', ['-l', dir]);
      }
      mounted.delete(dir);
      await rm(base, { recursive: true, force: true });
    },
  };
}
