// sd_notify through the real systemd-notify command, received on a fake NOTIFY_SOCKET
// (test/support/notify-socket.ts): the messages on the wire, their order, the no-op
// outside systemd, the watchdog timeout from $WATCHDOG_USEC/$WATCHDOG_PID, and a
// missing command that switches notification off instead of throwing.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../agent/log.ts';
import { SdNotifier, watchdogTimeoutMs } from '../../../agent/sd-notify.ts';
import { FakeNotifySocket } from '../../support/notify-socket.ts';

let dir: string;
let socket: FakeNotifySocket | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sd-notify-'));
});
afterEach(async () => {
  socket?.close();
  socket = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('SdNotifier', () => {
  it('sends READY=1, WATCHDOG=1 and STOPPING=1 to $NOTIFY_SOCKET in call order, through systemd-notify', async () => {
    socket = await FakeNotifySocket.start(dir);
    const notifier = new SdNotifier({ logger: silentLogger(), env: { ...process.env, NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '4000000' } });
    expect(notifier.enabled).toBe(true);
    expect(notifier.watchdogMs).toBe(4000);
    notifier.ready('ingesting');
    notifier.watchdog();
    notifier.stopping('draining');
    await notifier.flush();
    await socket.waitForCount('STOPPING', 1);
    expect(socket.messages.map((m) => m.raw)).toEqual(['READY=1\nSTATUS=ingesting', 'WATCHDOG=1', 'STOPPING=1\nSTATUS=draining']);
  });

  it('does not queue a second WATCHDOG=1 while one is still waiting to go out', async () => {
    socket = await FakeNotifySocket.start(dir);
    const notifier = new SdNotifier({ logger: silentLogger(), env: { ...process.env, NOTIFY_SOCKET: socket.path } });
    notifier.ready();
    for (let i = 0; i < 5; i++) notifier.watchdog(); // all five while READY=1 is still going out
    await notifier.flush();
    notifier.watchdog();
    await notifier.flush();
    await socket.waitForCount('WATCHDOG', 2);
    expect(socket.messages.map((m) => m.raw)).toEqual(['READY=1', 'WATCHDOG=1', 'WATCHDOG=1']);
  });

  it('is a no-op without $NOTIFY_SOCKET: the command is never run', async () => {
    const calls = join(dir, 'calls');
    const stub = join(dir, 'notify-stub');
    await writeFile(stub, `#!/bin/sh\necho "$@" >> ${calls}\n`);
    await chmod(stub, 0o755);
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    const notifier = new SdNotifier({ logger: silentLogger(), env, command: stub });
    expect(notifier.enabled).toBe(false);
    expect(notifier.watchdogMs).toBeNull();
    notifier.ready();
    notifier.watchdog();
    notifier.stopping();
    await notifier.flush();
    await expect(readFile(calls, 'utf8')).rejects.toThrow(/ENOENT/);

    // The same stub with a socket set is run, with the assignments as its arguments.
    const on = new SdNotifier({ logger: silentLogger(), env: { ...env, NOTIFY_SOCKET: '/run/none' }, command: stub });
    on.ready('up');
    on.watchdog();
    await on.flush();
    expect(await readFile(calls, 'utf8')).toBe('READY=1 STATUS=up\nWATCHDOG=1\n');
  });

  it('a missing systemd-notify switches notification off with one warning, never throws', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger(), warn: (_obj: object, msg?: string) => void warnings.push(msg ?? ''), debug: () => {} };
    const notifier = new SdNotifier({ logger, env: { NOTIFY_SOCKET: join(dir, 'sock') }, command: join(dir, 'no-such-command') });
    notifier.ready();
    notifier.watchdog();
    notifier.stopping();
    await notifier.flush();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not found: systemd notifications are off/);
  });
});

describe('watchdogTimeoutMs', () => {
  it('reads WatchdogSec= from $WATCHDOG_USEC, for this process or the bin/lakeside.js wrapper that started it', () => {
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '60000000' }, 10, 1)).toBe(60_000);
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '10' }, 10, 1)).toBe(60_000);
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '1' }, 10, 1)).toBe(60_000);
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '77' }, 10, 1)).toBeNull();
    expect(watchdogTimeoutMs({}, 10, 1)).toBeNull();
    expect(watchdogTimeoutMs({ WATCHDOG_USEC: 'x' }, 10, 1)).toBeNull();
  });
});
