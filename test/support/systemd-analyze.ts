// systemd-analyze for the installer tests (systemd-unit.test.ts, install.test.ts): the
// Debian `systemd` package provides it; a missing tool fails the test with that hint.
import { execFile } from 'node:child_process';
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `systemd-analyze verify --root=<root> lakeside.service`: exit code and everything it printed. */
export async function verifyUnit(root: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', `--root=${root}`, 'lakeside.service']);
    return { code: 0, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const e = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('systemd-analyze is missing: install the Debian `systemd` package');
    return { code: Number(e.code), output: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() };
  }
}

/** systemd-analyze resolves units inside --root: give it the host's own unit directory (targets). */
export async function addSystemUnits(root: string): Promise<void> {
  await mkdir(join(root, 'usr', 'lib', 'systemd'), { recursive: true });
  await cp('/usr/lib/systemd/system', join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true, verbatimSymlinks: true });
}

