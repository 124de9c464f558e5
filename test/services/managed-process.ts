// A long-running test service process (a Java server, a Python server, a Go binary):
// spawned with its output in a log file, ready only when its probe answers, stopped with
// SIGTERM then SIGKILL, and killed synchronously if the test process exits first so no
// service outlives the run. Its log stays on disk for diagnostics.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/free-port.ts';
import { keepLogsOnStop, type LogSource, type StopOptions } from './service-logs.ts';

export interface ManagedProcessOptions {
  /** Name used in errors, e.g. "kafka". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Resolves true once the service answers; polled until `startTimeoutMs`. */
  ready: () => Promise<boolean>;
  /**
   * A line the service logs once it has bound its own port. When given, the probe counts
   * only after this start's log output shows it: a probe alone could be answered by
   * another process that took the port between freePort() and the bind.
   */
  readyLogPattern?: RegExp;
  startTimeoutMs?: number;
  /** How long SIGTERM may take before SIGKILL (default 20 s). */
  stopTimeoutMs?: number;
}

export interface ManagedProcess {
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Spawns and waits for readiness; throws with the log tail if it exits or times out. */
  start(): Promise<void>;
  /** Sends a signal (default SIGTERM, SIGKILL after the stop timeout) and waits for exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  logTail(lines?: number): string;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export function managedProcess(opts: ManagedProcessOptions): ManagedProcess {
  let child: ChildProcess | undefined;
  const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

  const logTail = (lines = 40): string => {
    if (!existsSync(opts.logFile)) return '(no log output)';
    const all = readFileSync(opts.logFile, 'utf8').split('\n');
    return all.slice(-lines).join('\n');
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const c = child;
    if (!c || exited(c)) return;
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), opts.stopTimeoutMs ?? 20_000);
    await waitExit(c);
    clearTimeout(timer);
  };

  const start = async (): Promise<void> => {
    if (child && !exited(child)) throw new Error(`${opts.name}: already running (pid ${child.pid})`);
    const logStart = existsSync(opts.logFile) ? statSync(opts.logFile).size : 0;
    const loggedReady = (): boolean =>
      opts.readyLogPattern === undefined || opts.readyLogPattern.test(readFileSync(opts.logFile).subarray(logStart).toString('utf8'));
    const fd = openSync(opts.logFile, 'a');
    let spawnError: Error | undefined;
    const c = spawn(opts.command, opts.args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    c.once('error', (e) => {
      spawnError = e;
    });
    const timeoutMs = opts.startTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`${opts.name}: could not spawn ${opts.command}: ${spawnError.message}`);
      if (exited(c)) {
        throw new Error(`${opts.name} exited during start (code ${c.exitCode}, signal ${c.signalCode}); log ${opts.logFile}:\n${logTail()}`);
      }
      if (loggedReady() && (await opts.ready().catch(() => false))) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    await stop('SIGKILL');
    throw new Error(`${opts.name} not ready within ${timeoutMs} ms; log ${opts.logFile}:\n${logTail()}`);
  };

  return {
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined && !exited(child);
    },
    start,
    stop,
    logTail,
  };
}

/**
 * Runs `launch(port)` on a free loopback port and returns the port. freePort() releases
 * the port before the service binds it, so another process may take it meanwhile: when
 * the launch fails with "address already in use", another port is tried. A `pinned`
 * port (given by the caller, or kept across a restart) is used as is.
 */
export async function launchOnFreePort(pinned: number | undefined, launch: (port: number) => Promise<void>, attempts = 5): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = pinned ?? (await freePort());
    try {
      await launch(port);
      return port;
    } catch (e) {
      if (pinned !== undefined || attempt >= attempts || !/address already in use/i.test((e as Error).message)) throw e;
    }
  }
}

/** The working directory of a test service: the caller's, or a new temp dir that `remove()` deletes. */
export async function serviceDir(prefix: string, opts: { dir?: string; keepDir?: boolean }): Promise<{ dir: string; remove: () => Promise<void> }> {
  if (opts.dir !== undefined) {
    mkdirSync(opts.dir, { recursive: true });
    return { dir: opts.dir, remove: async () => undefined };
  }
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: async () => (opts.keepDir ? undefined : rm(dir, { recursive: true, force: true })) };
}

/** Lifecycle of a test service whose process is relaunched on restart (same port, same data). */
export interface ServiceControl {
  /** PID of the current process (changes on restart). */
  readonly pid: number | undefined;
  /** Send a signal (SIGKILL for a crash) and wait for exit; the service stays down until restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stop (SIGTERM by default, SIGKILL for a crash) and start again on the same port and data. */
  restart(opts?: { signal?: NodeJS.Signals }): Promise<void>;
  /**
   * SIGTERM, wait for exit, copy the logs to test-logs when `keepLogs` (default: when the
   * test that stops it failed), then remove the working directory if it was ours.
   */
  stop(opts?: StopOptions): Promise<void>;
  /** The test-logs folder stop() copied the logs to, if it did. */
  readonly keptLogs: string | undefined;
  logTail(lines?: number): string;
}

export function serviceControl(
  name: string,
  o: { current: () => ManagedProcess | undefined; relaunch: () => Promise<void>; remove: () => Promise<void>; logs: LogSource[] },
): ServiceControl {
  let stopped = false;
  let keptLogs: string | undefined;
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    await o.current()?.stop(signal);
  };
  return {
    get pid() {
      return o.current()?.pid;
    },
    kill,
    async restart(r = {}) {
      if (stopped) throw new Error(`${name}: restart() after stop()`);
      await kill(r.signal ?? 'SIGTERM');
      await o.relaunch();
    },
    async stop(opts = {}) {
      if (stopped) return;
      stopped = true;
      await kill('SIGTERM');
      keptLogs = keepLogsOnStop(name, opts, o.logs);
      await o.remove();
    },
    get keptLogs() {
      return keptLogs;
    },
    logTail: (lines?: number) => o.current()?.logTail(lines) ?? '(not started)',
  };
}
