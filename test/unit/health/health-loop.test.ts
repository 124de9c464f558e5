// The health loop pings the watchdog only while the daemon is alive, logs each change
// of state once, and stops pinging for good after stop().
import { describe, expect, it } from 'vitest';
import type { HealthStatus } from '../../../agent/api/ports.ts';
import { HealthLoop } from '../../../agent/health-loop.ts';
import type { Notifier } from '../../../agent/sd-notify.ts';
import { waitFor } from '../../support/wait-for.ts';

function recordingNotifier(): Notifier & { pings: number } {
  return { enabled: true, watchdogMs: 100, pings: 0, ready() {}, watchdog() { this.pings++; }, stopping() {}, status() {}, flush: async () => {} };
}

function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  return { lines, warn: (_o: object, msg?: string) => void lines.push({ level: 'warn', msg: msg ?? '' }), info: (_o: object, msg?: string) => void lines.push({ level: 'info', msg: msg ?? '' }) };
}

describe('HealthLoop', () => {
  it('pings while alive, withholds pings while not, resumes when alive again', () => {
    let status: HealthStatus = { ok: true, reasons: [] };
    const notifier = recordingNotifier();
    const logger = recordingLogger();
    const loop = new HealthLoop({ liveness: () => status, notifier, intervalMs: 60_000, logger });
    loop.check();
    loop.check();
    expect(notifier.pings).toBe(2);

    status = { ok: false, reasons: ['the landing writer has not answered for 31 s (a hung disk?)'] };
    loop.check();
    loop.check();
    loop.check();
    expect(notifier.pings).toBe(2);
    expect(logger.lines).toEqual([{ level: 'warn', msg: expect.stringMatching(/^unhealthy: the landing writer .*watchdog pings withheld/) }]);

    status = { ok: true, reasons: [] };
    loop.check();
    expect(notifier.pings).toBe(3);
    expect(logger.lines[1]).toEqual({ level: 'info', msg: 'healthy again; watchdog pings resumed' });
  });

  it('checks on its own timer from start() until stop()', async () => {
    const notifier = recordingNotifier();
    const loop = new HealthLoop({ liveness: () => ({ ok: true, reasons: [] }), notifier, intervalMs: 5, logger: recordingLogger() });
    await loop.start();
    expect(notifier.pings).toBe(1); // the first check runs in start()
    await waitFor(() => notifier.pings >= 3, () => `pings ${notifier.pings}`);
    await loop.stop();
    const after = notifier.pings;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(notifier.pings).toBe(after);
  });
});
