// A real Mosquitto broker for integration tests, crash tests and benchmarks: its own
// config, persistence and log in a temp dir, on a free loopback port. Tests never skip
// for a missing broker: a missing binary is an error with an install hint, because a
// silently skipped durability test is worse than a failing one. A failed start, or a
// stop after a failed test, keeps the log, stderr and config in test-logs (service-logs.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { connectAsync, type IClientOptions } from 'mqtt';
import { freePort } from '../support/free-port.ts';
import { keepLogsOnStop, startFailure, type LogSource, type StopOptions } from './service-logs.ts';

export interface MosquittoOptions {
  /** Fixed port; by default a free loopback port is picked (and re-picked if taken). */
  port?: number;
  /** Working directory for config, persistence and log; by default a new temp dir. */
  dir?: string;
  /** Keep the working directory after stop() (default: remove it if we created it). */
  keepDir?: boolean;
  /** Broker persistence to disk (default true), so a restarted broker keeps sessions. */
  persistence?: boolean;
  /** Per-client queue for offline/persistent sessions (default 1,000,000). */
  maxQueuedMessages?: number;
  /** Extra mosquitto.conf lines appended verbatim. */
  extraConfig?: string[];
  /** How long to wait for the broker to accept an MQTT connection (default 15 s). */
  startTimeoutMs?: number;
  /**
   * The listener speaks TLS: `url` becomes mqtts://. The TLS settings themselves
   * (cafile, certfile, keyfile, ...) go in `extraConfig`, which applies to the listener.
   */
  tls?: boolean;
  /** mqtt.js options for the readiness probe (CA, client certificate, credentials) when the listener needs them. */
  probeOptions?: IClientOptions;
}

export interface Mosquitto {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** PID of the current broker process (changes on restart). */
  readonly pid: number | undefined;
  /**
   * SIGTERM (the broker saves its persistence file), wait for exit, copy the logs to
   * test-logs when `keepLogs` (default: when the test that stops it failed), clean up.
   */
  stop(opts?: StopOptions): Promise<void>;
  /** The test-logs folder stop() copied the logs to, if it did. */
  readonly keptLogs: string | undefined;
  /**
   * Stop the broker and start it again on the same port and persistence directory.
   * With SIGTERM the broker writes its DB first, so persistent sessions and queued
   * messages survive; with SIGKILL whatever was not autosaved is lost, like a crash.
   */
  restart(opts?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Send a signal and wait for the process to exit; the broker stays down. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Last lines of the broker's log file and stderr, for diagnostics. */
  logTail(lines?: number): string;
}

const INSTALL_HINT =
  'Install it with `sudo apt-get install -y mosquitto` (Debian/Ubuntu) or run `bash .ci/run`, ' +
  'which installs it. Integration tests do not skip without a broker.';

/** Path of the mosquitto binary: /usr/sbin (Debian's location, often not on PATH) or PATH. */
export function findMosquitto(): string {
  const candidates = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir) candidates.push(join(dir, 'mosquitto'));
  }
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // keep looking
    }
  }
  const where = process.env.CI === 'true' ? 'in CI' : 'on this machine';
  throw new Error(`mosquitto binary not found ${where} (looked in ${candidates.join(', ')}). ${INSTALL_HINT}`);
}

// Brokers still running when the test process exits would outlive the run and hold
// ports; kill them synchronously on the way out.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function configText(o: {
  port: number;
  dir: string;
  logFile: string;
  persistence: boolean;
  maxQueued: number;
  extra: string[];
}): string {
  const lines = [
    `listener ${o.port} 127.0.0.1`,
    'allow_anonymous true',
    // Unlimited in-flight and a deep queue: benchmark publishers and a durable-ack
    // subscriber must be limited by lakeside, not by broker defaults (20 / 1000).
    'max_inflight_messages 0',
    `max_queued_messages ${o.maxQueued}`,
    'max_queued_bytes 0',
    'set_tcp_nodelay true',
    `log_dest file ${o.logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'log_timestamp true',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
  ];
  if (o.persistence) {
    lines.push('persistence true', `persistence_location ${join(o.dir, 'data')}/`, 'autosave_interval 60');
  } else {
    lines.push('persistence false');
  }
  // Started as root, mosquitto drops to user "mosquitto", which cannot write our 0700
  // temp dir; staying root is fine for a throwaway test broker.
  if (process.getuid?.() === 0) lines.push('user root');
  lines.push(...o.extra);
  return lines.join('\n') + '\n';
}

function tail(text: string, n: number): string {
  const lines = text.split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n).join('\n');
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function canConnect(url: string, extra: IClientOptions): Promise<boolean> {
  try {
    const c = await connectAsync(url, {
      ...extra,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 1000,
      clean: true,
      clientId: `ready-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    });
    await c.endAsync(true);
    return true;
  } catch {
    return false;
  }
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = findMosquitto();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'lakeside-mosquitto-')));
  mkdirSync(join(dir, 'data'), { recursive: true });
  const logFile = join(dir, 'mosquitto.log');
  const confFile = join(dir, 'mosquitto.conf');
  const persistence = opts.persistence ?? true;
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  const host = '127.0.0.1';
  const scheme = opts.tls ? 'mqtts' : 'mqtt';

  let child: ChildProcess | undefined;
  let stderr = '';
  let port = opts.port ?? 0;
  // Whether `port` must be used as is (given by the caller, or kept across a restart).
  let pinned = opts.port !== undefined;

  const logTail = (lines = 30): string => {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    const parts = [tail(log, lines), stderr ? `[stderr]\n${tail(stderr, lines)}` : ''];
    return parts.filter(Boolean).join('\n') || '(no log output)';
  };

  // One attempt to bring the broker up on `port`; resolves false only when the port
  // turned out to be taken, so the caller can pick another.
  const launch = async (): Promise<boolean> => {
    writeFileSync(
      confFile,
      configText({
        port,
        dir,
        logFile,
        persistence,
        maxQueued: opts.maxQueuedMessages ?? 1_000_000,
        extra: opts.extraConfig ?? [],
      }),
    );
    stderr = '';
    const logStart = existsSync(logFile) ? readFileSync(logFile, 'utf8').length : 0;
    const c = spawn(bin, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      stderr += d;
    });
    let spawnError: Error | undefined;
    c.once('error', (e) => {
      spawnError = e;
    });
    const url = `${scheme}://${host}:${port}`;
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`mosquitto (${bin}) failed to spawn: ${spawnError.message}`);
      if (c.exitCode !== null || c.signalCode !== null) {
        const newLog = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(logStart) : '';
        if (/address already in use/i.test(newLog + stderr) && !pinned) return false;
        throw new Error(
          `mosquitto exited during start (code ${c.exitCode}, signal ${c.signalCode}) on port ${port}:\n${logTail()}`,
        );
      }
      // The log line first: a connect alone could reach some other broker that already
      // holds this port, while "running" is only logged after our own bind succeeded.
      const newLog = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(logStart) : '';
      if (/mosquitto version \S+ running/.test(newLog) && (await canConnect(url, opts.probeOptions ?? {}))) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    c.kill('SIGKILL');
    await waitExit(c);
    throw new Error(`mosquitto did not accept connections on ${url} within ${startTimeoutMs} ms:\n${logTail()}`);
  };

  const start = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      if (!pinned && (port === 0 || attempt > 0)) port = await freePort();
      if (await launch()) return;
      if (attempt >= 4) throw new Error(`mosquitto: no free port after ${attempt + 1} attempts:\n${logTail()}`);
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await waitExit(c);
    clearTimeout(timer);
  };

  const logs = (): LogSource[] => [logFile, confFile, { name: 'mosquitto.stderr', text: stderr }];
  const remove = async (): Promise<void> => {
    if (ownDir && !opts.keepDir) await rm(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (e) {
    throw await startFailure('mosquitto', e, logs(), remove);
  }

  let stopped = false;
  let keptLogs: string | undefined;
  return {
    get url() {
      return `${scheme}://${host}:${port}`;
    },
    host,
    get port() {
      return port;
    },
    dir,
    logFile,
    get pid() {
      return child?.pid;
    },
    kill,
    logTail,
    async restart(r = {}) {
      if (stopped) throw new Error('mosquitto: restart() after stop()');
      await kill(r.signal ?? 'SIGTERM');
      // Same port: clients configured with the old URL reconnect to the new broker.
      // Port reuse right after exit is fine (mosquitto sets SO_REUSEADDR).
      const wasPinned = pinned;
      pinned = true;
      try {
        await start();
      } finally {
        pinned = wasPinned;
      }
    },
    async stop(o = {}) {
      if (stopped) return;
      stopped = true;
      await kill('SIGTERM');
      keptLogs = keepLogsOnStop('mosquitto', o, logs());
      await remove();
    },
    get keptLogs() {
      return keptLogs;
    },
  };
}
