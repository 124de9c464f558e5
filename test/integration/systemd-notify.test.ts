// The daemon under a stand-in for systemd: `lakeside run` with $NOTIFY_SOCKET pointing
// at a fake notification socket and a watchdog of 1.5 s ($WATCHDOG_USEC), as systemd
// starts a Type=notify service with WatchdogSec=. Proves READY=1 once ready, WATCHDOG=1
// from the health loop while the pipeline moves, no more WATCHDOG=1 once the landing
// writer hangs in a commit (a real fault: the `landing.before-commit` failpoint freezes
// the writer thread, as a dead disk would), and STOPPING=1 on SIGTERM.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnDaemon, type ChildDaemon } from '../support/child-daemon.ts';
import { failpointEnv, waitForFailpoint } from '../support/failpoint.ts';
import { framesDaemonConfigText } from '../support/folder-source.ts';
import { FakeNotifySocket } from '../support/notify-socket.ts';

const WATCHDOG_USEC = 1_500_000; // health checks every 500 ms; a commit hung > 750 ms is a stall

let dir: string;
let socket: FakeNotifySocket;
let daemon: ChildDaemon | undefined;

async function start(env: NodeJS.ProcessEnv = {}): Promise<ChildDaemon> {
  const config = join(dir, 'lakeside.yaml');
  await writeFile(config, framesDaemonConfigText(join(dir, 'state'), join(dir, 'drop'), 'info'));
  daemon = spawnDaemon({ config, env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: String(WATCHDOG_USEC), ...env } });
  await daemon.waitReady();
  return daemon;
}

async function healthz(d: ChildDaemon): Promise<{ status: number; body: { ok: boolean; reasons: string[] } }> {
  const api = (await d.waitForMsg('API listening')).json?.url as string;
  const response = await fetch(`${api}/healthz`);
  return { status: response.status, body: (await response.json()) as { ok: boolean; reasons: string[] } };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sd-notify-daemon-'));
  await mkdir(join(dir, 'drop', 'l1', 'c1'), { recursive: true });
  socket = await FakeNotifySocket.start(dir);
});

afterEach(async () => {
  if (daemon) {
    daemon.kill('SIGKILL');
    await daemon.waitExit(10_000).catch(() => undefined);
  }
  daemon = undefined;
  socket.close();
  await rm(dir, { recursive: true, force: true });
});

describe('systemd notify and watchdog', () => {
  it('READY=1 once ready, WATCHDOG=1 from the health loop while healthy, STOPPING=1 on SIGTERM', async () => {
    const d = await start();
    await socket.waitForCount('READY', 1);
    await socket.waitForCount('WATCHDOG', 3);
    expect(socket.indexOf('READY')).toBeLessThan(socket.indexOf('WATCHDOG'));
    expect(socket.messages[socket.indexOf('READY')]!.fields.STATUS).toMatch(/ingesting from 1 source/);

    // Ingest flows and the pings go on.
    await writeFile(join(dir, 'drop', 'l1', 'c1', 'a.png'), Buffer.from('frame'));
    const pings = socket.count('WATCHDOG');
    await socket.waitForCount('WATCHDOG', pings + 2);

    expect(await d.stop(30_000)).toEqual({ code: 0, signal: null });
    await socket.waitForCount('STOPPING', 1);
    expect(socket.count('READY')).toBe(1);
  });

  it('withholds WATCHDOG=1 once the landing writer hangs in a commit, and /healthz says why', async () => {
    const d = await start(failpointEnv('landing.before-commit'));
    await socket.waitForCount('WATCHDOG', 2);
    expect((await healthz(d)).status).toBe(200);

    // A file to land: the writer takes the batch and freezes before committing it.
    await writeFile(join(dir, 'drop', 'l1', 'c1', 'a.png'), Buffer.from('frame'));
    await waitForFailpoint(d, 'landing.before-commit');
    await d.waitForMsg(/^unhealthy: the landing writer has not answered/, 30_000);

    // A ping already on its way when the stall was seen may still arrive; after that, none.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pingsAtStall = socket.count('WATCHDOG');
    await new Promise((resolve) => setTimeout(resolve, 4 * (WATCHDOG_USEC / 3000))); // four health rounds
    expect(socket.count('WATCHDOG')).toBe(pingsAtStall);

    const health = await healthz(d);
    expect(health.status).toBe(503);
    expect(health.body.reasons.join(' ')).toMatch(/landing writer has not answered/);
  });
});
