/**
 * One daemon per state directory: `<state_dir>/lakeside.lock` holds the owner's pid.
 * A lock whose pid is no longer alive (kill -9, power loss) is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Locks this process holds: the pid check alone cannot tell two daemons in one process apart. */
const heldHere = new Set<string>();

export class StateLockedError extends Error {
  readonly code = 'STATE_DIR_LOCKED';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireStateLock(stateDir: string): Promise<() => Promise<void>> {
  const path = join(stateDir, 'lakeside.lock');
  if (heldHere.has(path)) throw new StateLockedError(`state directory ${stateDir} is in use by another lakeside in this process`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(String(process.pid));
      await handle.sync();
      await handle.close();
      heldHere.add(path);
      return async () => {
        heldHere.delete(path);
        await unlink(path).catch(() => {});
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new StateLockedError(`state directory ${stateDir} is in use by lakeside pid ${pid}`);
      }
      await unlink(path).catch(() => {});
    }
  }
  throw new StateLockedError(`could not take the lock ${path}`);
}
