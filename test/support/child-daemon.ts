// Runs the real `lakeside` binary as a child process, the way an operator does, so crash
// tests can SIGKILL it mid-write and restart it against the same state. Its pino JSON
// log lines are captured and parsed, and tests wait on them (e.g. "lakeside ready")
// rather than on sleeps.
import { DAEMON_NODE_FLAGS } from '../../agent/runtime-flags.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LogLine {
  stream: 'stdout' | 'stderr';
  raw: string;
  /** The parsed pino object when the line is JSON, else undefined. */
  json: Record<string, unknown> | undefined;
  /** Shortcut for json.msg. */
  msg: string | undefined;
  /** Date.now() when the line was read. */
  at: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonOptions {
  /** Config file passed as `run --config <file>`. */
  config: string;
  /** Extra CLI arguments appended after `run --config <file>`. */
  args?: string[];
  /** Replace the whole argument list after bin/lakeside.js (config/args are then ignored). */
  argv?: string[];
  cwd?: string;
  /** Merged over process.env. */
  env?: NodeJS.ProcessEnv;
  /** Script to run instead of bin/lakeside.js (the harness self-test uses a stand-in). */
  entry?: string;
  /** Node binary; default: this process's node if it is new enough, else .tools' node. */
  node?: string;
  /** Copy the child's output to stderr with a prefix (default: env LAKESIDE_TEST_ECHO=1). */
  echo?: boolean;
}

/** A Node that can run the TypeScript sources directly (type stripping needs ≥ 22.18). */
export function nodeBinary(): string {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 18)) return process.execPath;
  const tools = join(REPO_ROOT, '.tools', 'node_modules', '.bin', 'node');
  if (existsSync(tools)) return tools;
  throw new Error(
    `node ${process.versions.node} cannot run lakeside and ${tools} does not exist; run \`bash .ci/run\` or ` +
      '`npm install --prefix .tools node@24`',
  );
}

// Daemons left running when the test process dies would keep ports, locks and files
// busy for the next run.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

type Waiter = { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void };

export class ChildDaemon {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  private exitInfo: ExitInfo | undefined;
  private readonly exited: Promise<ExitInfo>;
  private waiters: Waiter[] = [];

  constructor(opts: DaemonOptions) {
    const argv = opts.argv ?? ['run', '--config', opts.config, ...(opts.args ?? [])];
    const echo = opts.echo ?? process.env.LAKESIDE_TEST_ECHO === '1';
    // The daemon's V8 flags given directly, so bin/lakeside.js does not re-execute
    // itself: a SIGKILL from a test must hit the daemon, not a wrapper.
    this.proc = spawn(opts.node ?? nodeBinary(), [...DAEMON_NODE_FLAGS, opts.entry ?? join(REPO_ROOT, 'bin', 'lakeside.js'), ...argv], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.proc);
    // 'close' (not 'exit') so every output line has been read before waitExit resolves.
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        live.delete(this.proc);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      this.proc.once('error', (err) => {
        live.delete(this.proc);
        this.lines.push({ stream: 'stderr', raw: `spawn error: ${err.message}`, json: undefined, msg: undefined, at: Date.now() });
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      const src = this.proc[stream];
      if (!src) continue;
      createInterface({ input: src, crlfDelay: Infinity }).on('line', (raw) => {
        let json: Record<string, unknown> | undefined;
        if (raw.startsWith('{')) {
          try {
            json = JSON.parse(raw) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
        }
        const line: LogLine = {
          stream,
          raw,
          json,
          msg: typeof json?.msg === 'string' ? json.msg : undefined,
          at: Date.now(),
        };
        this.lines.push(line);
        if (echo) process.stderr.write(`[lakeside ${this.proc.pid} ${stream}] ${raw}\n`);
        for (const w of this.waiters.slice()) {
          if (w.pred(line)) {
            this.waiters = this.waiters.filter((x) => x !== w);
            w.resolve(line);
          }
        }
      });
    }
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Exit status once the process has exited, else undefined. */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /**
   * The first log line (already seen or future) matching `pred`. Rejects on timeout or
   * when the process exits first, with the output tail in the message.
   */
  waitForLine(pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`lakeside (pid ${this.pid}) ${why}; last output:\n${this.tail(40)}`));
      };
      const timer = setTimeout(() => fail(`no matching log line within ${timeoutMs} ms`), timeoutMs);
      this.waiters.push(w);
      void this.exited.then((e) => {
        if (this.waiters.includes(w)) fail(`exited (code ${e.code}, signal ${e.signal}) before a matching log line`);
      });
    });
  }

  /** Wait for a pino line whose msg equals (string) or matches (RegExp) `msg`. */
  waitForMsg(msg: string | RegExp, timeoutMs = 30_000): Promise<LogLine> {
    return this.waitForLine(
      (l) => l.msg !== undefined && (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)),
      timeoutMs,
    );
  }

  /** Wait for `"msg":"lakeside ready"`. */
  waitReady(timeoutMs = 60_000): Promise<LogLine> {
    return this.waitForMsg('lakeside ready', timeoutMs);
  }

  /** Send a signal (SIGKILL simulates a crash / power cut for the process). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitInfo === undefined) this.proc.kill(signal);
  }

  /** Resolves with the exit status; rejects if it takes longer than timeoutMs. */
  waitExit(timeoutMs = 30_000): Promise<ExitInfo> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`lakeside (pid ${this.pid}) still running after ${timeoutMs} ms:\n${this.tail(40)}`)),
        timeoutMs,
      );
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Graceful stop: SIGTERM, wait; SIGKILL if it overstays (and still report that, so a
   * test asserting a clean exit fails instead of hanging).
   */
  async stop(timeoutMs = 20_000): Promise<ExitInfo> {
    this.kill('SIGTERM');
    try {
      return await this.waitExit(timeoutMs);
    } catch {
      this.kill('SIGKILL');
      return await this.exited;
    }
  }

  /** Parsed pino objects logged so far. */
  logs(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => (l.json ? [l.json] : []));
  }

  output(): string {
    return this.lines.map((l) => l.raw).join('\n');
  }

  tail(n = 40): string {
    return this.lines
      .slice(-n)
      .map((l) => (l.stream === 'stderr' ? `[stderr] ${l.raw}` : l.raw))
      .join('\n');
  }
}

/** Spawn `node bin/lakeside.js run --config <file>`; does not wait for anything. */
export function spawnDaemon(opts: DaemonOptions): ChildDaemon {
  return new ChildDaemon(opts);
}

/** Spawn and wait for "lakeside ready"; kills the child if it never gets there. */
export async function startDaemon(opts: DaemonOptions, readyTimeoutMs = 60_000): Promise<ChildDaemon> {
  const d = new ChildDaemon(opts);
  try {
    await d.waitReady(readyTimeoutMs);
  } catch (e) {
    d.kill('SIGKILL');
    await d.waitExit(5_000).catch(() => undefined);
    throw e;
  }
  return d;
}
