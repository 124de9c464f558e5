// A real systemd for tests: test/support/throwaway-systemd.sh boots one as PID 1 of its
// own namespaces on a copy-on-write overlay of this machine (nothing on the host
// changes); `exec` runs a shell command inside it (nsenter), `shutdown` kills its PID 1,
// which ends every process inside, and removes its cgroup and work directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, type RunResult } from './run-command.ts';

const SCRIPT = fileURLToPath(new URL('./throwaway-systemd.sh', import.meta.url));

export class ThrowawaySystemd {
  private readonly work: string;
  private readonly launcher: ChildProcess;
  /** systemd's PID as this machine sees it. */
  readonly pid: number;

  private constructor(work: string, launcher: ChildProcess, pid: number) {
    this.work = work;
    this.launcher = launcher;
    this.pid = pid;
  }

  /** Boots it with `bundleDir` at /bundle; resolves once `systemctl is-system-running` settles. */
  static async boot(bundleDir: string, timeoutMs = 60_000): Promise<ThrowawaySystemd> {
    if (process.getuid?.() !== 0) throw new Error('booting a throwaway systemd needs root (unshare, mount)');
    const work = await mkdtemp(join(tmpdir(), 'lakeside-systemd-'));
    const launcher = spawn('bash', [SCRIPT, work, bundleDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    launcher.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    launcher.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + timeoutMs;
    let pid: number | undefined;
    // bash execs unshare, whose forked child ends as systemd (PID 1 inside).
    while (pid === undefined) {
      if (launcher.exitCode !== null || Date.now() > deadline) throw new Error(`throwaway systemd did not start: ${output}`);
      const children = join('/proc', String(launcher.pid), 'task', String(launcher.pid), 'children');
      const child = existsSync(children) ? Number(readFileSync(children, 'utf8').trim().split(/\s+/)[0]) : NaN;
      if (child > 0 && existsSync(`/proc/${child}/comm`) && readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd') pid = child;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const systemd = new ThrowawaySystemd(work, launcher, pid);
    for (;;) {
      const state = (await systemd.exec('systemctl is-system-running')).stdout.trim();
      if (state === 'running' || state === 'degraded') return systemd;
      if (Date.now() > deadline) {
        await systemd.shutdown();
        throw new Error(`throwaway systemd stuck in state "${state}": ${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Runs `command` with bash inside (all its namespaces and root). */
  exec(command: string, timeoutMs = 120_000): Promise<RunResult> {
    return runCommand('nsenter', ['-t', String(this.pid), '-a', '-r', '-w', 'bash', '-c', command], { timeoutMs });
  }

  /** `systemctl show -p KEY` values of a unit. */
  async show(unit: string, ...keys: string[]): Promise<Record<string, string>> {
    const { stdout } = await this.exec(`systemctl show ${unit} ${keys.map((k) => `-p ${k}`).join(' ')}`);
    return Object.fromEntries(stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  }

  async shutdown(): Promise<void> {
    try {
      process.kill(this.pid, 'SIGKILL'); // PID 1 of the namespace: the kernel ends everything inside
    } catch {
      // already gone
    }
    if (this.launcher.exitCode === null) await new Promise((resolve) => this.launcher.once('close', resolve));
    for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) removeCgroup(join(root, basename(this.work)));
    await rm(this.work, { recursive: true, force: true });
  }
}

/** cgroup directories go bottom-up once their processes are gone. */
function removeCgroup(dir: string): void {
  if (!existsSync(join(dir, 'cgroup.procs'))) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroup(join(dir, entry.name));
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (error) {
      if (attempt >= 50) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // processes still exiting
    }
  }
}
