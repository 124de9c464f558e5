/**
 * The health loop: every `intervalMs` it asks the daemon whether it is alive (the
 * same answer /healthz gives) and, only when it is, pings systemd's watchdog. A stuck
 * pipeline (a landing commit that never returns, a crashed writer) therefore stops the
 * pings and systemd restarts the service after WatchdogSec=; a stalled event loop stops
 * them too, since this timer cannot fire.
 *
 * "Alive" is not "ready": a full disk pauses the sources (not ready) but the agent
 * keeps retrying and recovers by itself, so it keeps pinging; a restart would not help.
 *
 * Lifecycle: start() checks once and arms the timer; stop() disarms it (idempotent).
 */
import type { HealthStatus } from './api/ports.ts';
import { onceStop, type Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import type { Notifier } from './sd-notify.ts';

export interface HealthLoopOptions {
  liveness: () => HealthStatus;
  notifier: Notifier;
  intervalMs: number;
  logger: Pick<Logger, 'warn' | 'info'>;
}

export class HealthLoop implements Component {
  readonly name = 'health-loop';
  private timer: NodeJS.Timeout | null = null;
  private unhealthySince: number | null = null;
  private readonly options: HealthLoopOptions;

  constructor(options: HealthLoopOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    this.check();
    this.timer = setInterval(() => this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  readonly stop = onceStop(async () => {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  });

  /** One round: ping the watchdog if alive, log changes of state. */
  check(): HealthStatus {
    const status = this.options.liveness();
    if (status.ok) {
      this.options.notifier.watchdog();
      if (this.unhealthySince !== null) {
        this.options.logger.info({ unhealthy_ms: Date.now() - this.unhealthySince }, 'healthy again; watchdog pings resumed');
        this.unhealthySince = null;
      }
    } else if (this.unhealthySince === null) {
      this.unhealthySince = Date.now();
      const watched = this.options.notifier.watchdogMs !== null;
      this.options.logger.warn(
        { reasons: status.reasons },
        `unhealthy: ${status.reasons.join('; ')}${watched ? '; watchdog pings withheld, systemd restarts the service unless this clears' : ''}`,
      );
    }
    return status;
  }
}
