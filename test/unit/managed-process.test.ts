// The managed service process under the test services (versitygw, the Iceberg REST
// fixture, Kafka): readiness needs the probe and, when given, this start's own log line;
// a process that dies during start fails with its log; stop() ends it; a taken port is
// retried on another one.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { launchOnFreePort, managedProcess } from '../services/managed-process.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lakeside-managed-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// A stand-in service: logs "warming", then after a delay "bound", then idles until SIGTERM.
const fakeService = `
  console.log('warming');
  setTimeout(() => console.log('bound on port ' + process.argv[1]), 300);
  process.on('SIGTERM', () => { console.log('bye'); process.exit(0); });
  setInterval(() => {}, 1000);
`;

describe('managedProcess', () => {
  it('waits for its own ready log line before trusting the probe, keeps the log, and stops with SIGTERM', async () => {
    const dir = await tempDir();
    let probes = 0;
    const proc = managedProcess({
      name: 'fake',
      command: process.execPath,
      args: ['-e', fakeService, '4242'],
      logFile: join(dir, 'fake.log'),
      // The probe "answers" at once, as another process holding the port would.
      ready: async () => {
        probes++;
        return true;
      },
      readyLogPattern: /bound on port 4242/,
    });
    cleanups.push(() => proc.stop('SIGKILL'));
    await proc.start();
    expect(proc.running).toBe(true);
    expect(proc.logTail()).toContain('bound on port 4242');
    expect(probes).toBe(1);
    await proc.stop();
    expect(proc.running).toBe(false);
    expect(proc.logTail()).toContain('bye');

    // A second start appends to the same log and must see a new ready line, not the old one.
    probes = 0;
    await proc.start();
    expect(proc.logTail().match(/bound on port 4242/g)).toHaveLength(2);
    await proc.stop();
  });

  it('fails with the log tail when the process exits during start', async () => {
    const dir = await tempDir();
    const proc = managedProcess({
      name: 'doomed',
      command: process.execPath,
      args: ['-e', "console.error('listen EADDRINUSE: address already in use'); process.exit(3)"],
      logFile: join(dir, 'doomed.log'),
      ready: async () => false,
    });
    await expect(proc.start()).rejects.toThrow(/doomed exited during start \(code 3[\s\S]*address already in use/);
  });
});

describe('launchOnFreePort', () => {
  it('tries another port when the first one is taken, and never moves a pinned port', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => taken.close(r)));
    const takenPort = (taken.address() as { port: number }).port;

    const tried: number[] = [];
    const launch = async (port: number): Promise<void> => {
      tried.push(port);
      if (tried.length === 1 || port === takenPort) throw new Error(`listen EADDRINUSE: address already in use :${port}`);
    };
    const port = await launchOnFreePort(undefined, launch);
    expect(tried).toHaveLength(2);
    expect(port).toBe(tried[1]);

    await expect(launchOnFreePort(takenPort, launch)).rejects.toThrow(/already in use/);
    expect(tried.at(-1)).toBe(takenPort);
    await expect(launchOnFreePort(undefined, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});
