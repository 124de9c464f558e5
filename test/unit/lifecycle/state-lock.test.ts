import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireStateLock, StateLockedError } from '../../../agent/state-lock.ts';

describe('state lock', () => {
  it('refuses a second owner in the same process and frees the directory on release', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lock-'));
    const release = await acquireStateLock(dir);
    await expect(acquireStateLock(dir)).rejects.toBeInstanceOf(StateLockedError);
    await release();
    const again = await acquireStateLock(dir);
    await again();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes over a lock left by a dead process (kill -9)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lock-'));
    // A pid that cannot be alive: above the kernel's pid_max.
    await writeFile(join(dir, 'lakeside.lock'), '99999999');
    const release = await acquireStateLock(dir);
    expect(await readFile(join(dir, 'lakeside.lock'), 'utf8')).toBe(String(process.pid));
    await release();
    await rm(dir, { recursive: true, force: true });
  });
});
