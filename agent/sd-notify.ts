/**
 * sd_notify(3) for a Node process: READY=1, WATCHDOG=1, STOPPING=1 and STATUS= to
 * systemd's notification socket ($NOTIFY_SOCKET).
 *
 * Node has no Unix datagram sockets, so each message goes out through the
 * `systemd-notify` command, a child process; the unit therefore needs
 * NotifyAccess=all. systemd-notify waits (a barrier, systemd ≥ 246) until systemd has
 * read the message, so systemd can still attribute it to this service's cgroup.
 *
 * Invariants:
 * - Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op: no process is spawned.
 * - Messages go out one at a time in call order (READY before the first WATCHDOG,
 *   STOPPING last); a WATCHDOG=1 already waiting to go out is not queued twice.
 * - Sending never throws and never blocks the event loop: a failure is logged once
 *   and notification is switched off if systemd-notify is missing.
 * - `watchdogMs` is systemd's WatchdogSec= ($WATCHDOG_USEC), or null when systemd
 *   expects no pings; bin/lakeside.js runs the daemon as its child, so $WATCHDOG_PID
 *   (the service's main PID) may be this process or its parent.
 */
import { execFile } from 'node:child_process';
import type { Logger } from './log.ts';

export interface Notifier {
  readonly enabled: boolean;
  /** How often systemd wants WATCHDOG=1 at least (WatchdogSec=), or null when it does not watch. */
  readonly watchdogMs: number | null;
  ready(status?: string): void;
  watchdog(): void;
  stopping(status?: string): void;
  status(text: string): void;
  /** Resolves once everything sent so far has gone out (or failed). */
  flush(): Promise<void>;
}

export interface SdNotifierOptions {
  logger: Pick<Logger, 'warn' | 'debug'>;
  env?: NodeJS.ProcessEnv;
  /** The notifier command; tests point it at a stand-in. */
  command?: string;
  /** How long one systemd-notify may take before it is killed. */
  timeoutMs?: number;
}

export class SdNotifier implements Notifier {
  readonly enabled: boolean;
  readonly watchdogMs: number | null;
  private disabled = false;
  private tail: Promise<void> = Promise.resolve();
  private watchdogQueued = false;
  private warned = false;
  private readonly options: SdNotifierOptions;

  constructor(options: SdNotifierOptions) {
    this.options = options;
    const env = options.env ?? process.env;
    this.enabled = Boolean(env.NOTIFY_SOCKET);
    this.watchdogMs = this.enabled ? watchdogTimeoutMs(env) : null;
  }

  ready(status?: string): void {
    this.send(['READY=1', ...statusLine(status)]);
  }

  watchdog(): void {
    if (!this.enabled || this.watchdogQueued) return;
    this.watchdogQueued = true;
    this.send(['WATCHDOG=1'], () => (this.watchdogQueued = false));
  }

  stopping(status?: string): void {
    this.send(['STOPPING=1', ...statusLine(status)]);
  }

  status(text: string): void {
    this.send(statusLine(text));
  }

  flush(): Promise<void> {
    return this.tail;
  }

  private send(assignments: string[], onSent?: () => void): void {
    if (!this.enabled) return;
    this.tail = this.tail.then(async () => {
      onSent?.();
      if (this.disabled) return;
      await this.run(assignments);
    });
  }

  private run(assignments: string[]): Promise<void> {
    const command = this.options.command ?? 'systemd-notify';
    return new Promise((resolve) => {
      execFile(command, assignments, { timeout: this.options.timeoutMs ?? 10_000, env: this.options.env ?? process.env }, (error, _stdout, stderr) => {
        if (error) {
          const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
          if (missing) this.disabled = true;
          if (!this.warned || missing) {
            this.warned = true;
            this.options.logger.warn(
              { err: error.message, signal: error.signal ?? undefined, stderr: stderr.trim(), sent: assignments },
              missing ? `${command} not found: systemd notifications are off` : 'systemd notification failed',
            );
          }
        } else {
          this.options.logger.debug({ sent: assignments }, 'systemd notified');
        }
        resolve();
      });
    });
  }
}

/** sd_watchdog_enabled(3): $WATCHDOG_USEC when it is meant for this process (or the wrapper that started it). */
export function watchdogTimeoutMs(env: NodeJS.ProcessEnv, pid = process.pid, ppid = process.ppid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID) {
    const target = Number(env.WATCHDOG_PID);
    if (target !== pid && target !== ppid) return null;
  }
  return Math.max(1, Math.floor(usec / 1000));
}

function statusLine(text: string | undefined): string[] {
  return text === undefined ? [] : [`STATUS=${text.replace(/\n/g, ' ')}`];
}
