// Self-test of the integration harness: if these fail, failures elsewhere in the
// integration suite say nothing about lakeside. Covers the real Mosquitto (start, QoS 1
// round trip, clean stop, twice; persistent sessions across a broker restart), the
// load publisher, the child-process runner, and the small filesystem's ENOSPC.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, connectAsync, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { spawnDaemon, startDaemon } from '../support/child-daemon.ts';
import { freePort } from '../support/free-port.ts';
import { folderNamedBy, keptFolder } from '../support/kept-logs.ts';
import { pidAlive, portAccepts } from '../support/liveness.ts';
import { createPublisher, payloadSeq, publishN } from '../support/mqtt-publisher.ts';
import { createSmallFs, type SmallFs } from '../support/small-fs.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function subscriber(url: string, topic: string, opts: { clientId?: string; clean?: boolean } = {}) {
  const received: Array<{ topic: string; payload: string; qos: number }> = [];
  const client: MqttClient = await connectAsync(url, {
    protocolVersion: 5,
    clientId: opts.clientId ?? `harness-sub-${Math.random().toString(36).slice(2, 8)}`,
    clean: opts.clean ?? true,
    reconnectPeriod: 0,
    properties: opts.clean === false ? { sessionExpiryInterval: 3600 } : {},
  });
  client.on('message', (t, payload, packet) => received.push({ topic: t, payload: payload.toString(), qos: packet.qos }));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, received };
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('mosquitto service', () => {
  for (const round of [1, 2]) {
    it(`starts, carries a QoS 1 message, and stops cleanly (round ${round})`, async () => {
      const broker = await startMosquitto();
      cleanups.push(() => broker.stop());
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
      const pid = broker.pid!;
      expect(pidAlive(pid)).toBe(true);

      const sub = await subscriber(broker.url, 'harness/+/temp');
      const pub = await connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
      // For QoS 1 mqtt.js settles publishAsync only once the PUBACK arrived.
      await pub.publishAsync('harness/line1/temp', '{"seq":1,"value":21.5}', { qos: 1 });
      await until(() => sub.received.length === 1, 5_000, 'delivery');
      expect(sub.received[0]).toEqual({ topic: 'harness/line1/temp', payload: '{"seq":1,"value":21.5}', qos: 1 });
      await pub.endAsync();
      await sub.client.endAsync();

      await broker.stop();
      expect(pidAlive(pid)).toBe(false);
      expect(await portAccepts(broker.port)).toBe(false);
      // A passing test leaves nothing in test-logs.
      expect(broker.keptLogs).toBeUndefined();
      expect(existsSync(broker.dir)).toBe(false);
    });
  }

  it('keeps a persistent session and its queued messages across a restart', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const clientId = 'harness-persistent';
    const first = await subscriber(broker.url, 'harness/queued', { clientId, clean: false });
    await first.client.endAsync();

    const pub = await connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    await pub.publishAsync('harness/queued', 'while-offline', { qos: 1 });
    await pub.endAsync();

    const oldPid = broker.pid;
    await broker.restart();
    expect(broker.pid).not.toBe(oldPid);

    const received: string[] = [];
    // Listener before CONNACK: the broker sends queued messages right after it.
    const again = mqttConnect(broker.url, {
      protocolVersion: 5,
      clientId,
      clean: false,
      reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 3600 },
    });
    again.on('message', (_t, payload) => received.push(payload.toString()));
    await until(() => received.length === 1, 5_000, 'queued message after restart');
    expect(received).toEqual(['while-offline']);
    await again.endAsync();
  });

  it('fails loudly with the log tail when the port is taken, and keeps the log', async () => {
    const first = await startMosquitto();
    cleanups.push(() => first.stop());
    const error: Error = await startMosquitto({ port: first.port, startTimeoutMs: 5_000 }).then(
      () => new Error('started on a taken port'),
      (e: Error) => e,
    );
    expect(error.message).toMatch(/mosquitto exited during start[\s\S]*in use/i);
    const folder = folderNamedBy(error, 'mosquitto', cleanups);
    expect(readFileSync(join(folder, 'mosquitto.log'), 'utf8')).toMatch(/in use/i);
  });

  it('a broker that cannot start (invalid config) leaves its log, config and error in test-logs, named by the error', async () => {
    const error: Error = await startMosquitto({ extraConfig: ['no_such_option on'], startTimeoutMs: 5_000 }).then(
      async (b) => {
        await b.stop();
        return new Error('started with an invalid option');
      },
      (e: Error) => e,
    );
    // The tail stays in the message; the folder holds what the broker said.
    expect(error.message).toMatch(/mosquitto exited during start \(code \d+[\s\S]*Unknown configuration variable "no_such_option"/);
    const folder = folderNamedBy(error, 'mosquitto', cleanups);
    expect(readdirSync(folder).sort()).toEqual(['mosquitto.conf', 'mosquitto.stderr', 'start-error.txt']);
    expect(readFileSync(join(folder, 'mosquitto.stderr'), 'utf8')).toContain('Unknown configuration variable "no_such_option"');
    expect(readFileSync(join(folder, 'mosquitto.conf'), 'utf8')).toContain('no_such_option on');
    expect(readFileSync(join(folder, 'start-error.txt'), 'utf8')).toContain('mosquitto exited during start');
  });

  it('stop({ keepLogs: true }) leaves the broker log in test-logs and still removes the temp dir', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    await broker.stop({ keepLogs: true });
    const folder = keptFolder(broker.keptLogs, cleanups);
    expect(readFileSync(join(folder, 'mosquitto.log'), 'utf8')).toMatch(/mosquitto version \S+ running[\s\S]*terminating/);
    expect(existsSync(broker.dir)).toBe(false);
  });
});

// The integration setup file (test/support/keep-service-logs.ts) makes stop() keep the
// logs of a service stopped by a failed test's afterEach, with no flag from the test.
describe('logs of a failed test', () => {
  let broker: Mosquitto | undefined;

  it.fails('fails on purpose after starting a broker (its afterEach stops the broker)', async () => {
    broker = await startMosquitto();
    cleanups.push(() => broker!.stop());
    throw new Error('deliberate failure: the broker log must be kept');
  });

  it('kept that broker log in test-logs', () => {
    const folder = keptFolder(broker?.keptLogs, cleanups);
    expect(readFileSync(join(folder, 'mosquitto.log'), 'utf8')).toMatch(/mosquitto version \S+ running/);
    expect(existsSync(broker!.dir)).toBe(false);
  });
});

describe('mqtt publisher', () => {
  let broker: Mosquitto;

  it('publishes N with a window, and every acked seq arrives', async () => {
    broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const sub = await subscriber(broker.url, 'bench/#');
    const n = 20_000;
    const res = await publishN({ url: broker.url, topics: ['bench/a', 'bench/b', 'bench/c'], payloadSize: 100 }, n);
    expect(res.acked).toBe(n);
    expect(res.failed).toBe(0);
    expect(new Set(res.ackedSeqs).size).toBe(n);
    expect(res.latency.count).toBe(n);
    await until(() => sub.received.length >= n, 30_000, 'all deliveries');
    const seen = new Set(sub.received.map((m) => payloadSeq(m.payload)));
    for (const s of res.ackedSeqs) expect(seen.has(s)).toBe(true);
    expect(sub.received[0]!.payload.length).toBeGreaterThanOrEqual(95);
    console.log(`publisher: ${Math.round(res.ackedPerSecond)} msg/s, p99 ${res.latency.p99.toFixed(2)} ms`);
    await sub.client.endAsync();
  });

  it('honours a rate limit and keeps publishing while no subscriber exists', async () => {
    broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const pub = await createPublisher({ url: broker.url, topics: 'rate/x', rate: 1000, startSeq: 5_000 });
    cleanups.push(() => pub.close());
    pub.start(500);
    const stats = await pub.done(10_000);
    expect(stats.acked).toBe(500);
    expect(stats.elapsedMs).toBeGreaterThan(400);
    expect(stats.elapsedMs).toBeLessThan(2_000);
    expect(pub.ackedSeqs()[0]).toBe(5_000);
  });
});

describe('child daemon runner', () => {
  it('captures pino lines, waits for ready, and sees SIGTERM and SIGKILL exits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lakeside-harness-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A stand-in with the daemon's observable contract, so this tests only the runner.
    const entry = join(dir, 'fake-daemon.mjs');
    await writeFile(
      entry,
      `const log = (o) => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), ...o }) + '\\n');
       log({ msg: 'starting', argv: process.argv.slice(2) });
       process.stderr.write('plain stderr line\\n');
       setTimeout(() => log({ msg: 'lakeside ready' }), 100);
       process.on('SIGTERM', () => { log({ msg: 'stopping' }); process.exit(0); });
       setInterval(() => {}, 1000);`,
    );
    const config = join(dir, 'lakeside.yaml');
    writeFileSync(config, 'site: harness\n');

    const d = await startDaemon({ config, entry });
    expect(d.lines.find((l) => l.msg === 'starting')?.json?.argv).toEqual(['run', '--config', config]);
    expect(d.lines.some((l) => l.stream === 'stderr' && l.raw === 'plain stderr line')).toBe(true);
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(d.logs().at(-1)?.msg).toBe('stopping');

    const crashed = spawnDaemon({ config, entry });
    await crashed.waitReady();
    crashed.kill('SIGKILL');
    expect(await crashed.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });

    const never = spawnDaemon({ config, entry, argv: ['--bogus'], node: process.execPath });
    never.kill('SIGKILL');
    await expect(never.waitForMsg('no such message', 5_000)).rejects.toThrow(/exited/);
  });

  it('freePort gives a bindable loopback port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1024);
    expect(await portAccepts(port)).toBe(false);
  });
});

describe('small filesystem', () => {
  for (const kind of ['auto', 'ext4-loop'] as const) {
    it(`fills to ENOSPC and recovers when the ballast goes (${kind})`, async () => {
      const fs: SmallFs = await createSmallFs({ sizeKiB: 2048, kind });
      cleanups.push(() => fs.cleanup());
      if (kind === 'auto') expect(fs.kind).toBe('tmpfs');
      const before = fs.available();
      expect(before).toBeGreaterThan(1_000_000);

      fs.fill();
      expect(fs.available()).toBe(0);
      let code: string | undefined;
      try {
        writeFileSync(join(fs.dir, 'data.bin'), Buffer.alloc(8192));
      } catch (e) {
        code = (e as NodeJS.ErrnoException).code;
      }
      expect(code).toBe('ENOSPC');

      await fs.free(64 * 1024);
      writeFileSync(join(fs.dir, 'data.bin'), Buffer.alloc(8192));

      await fs.free();
      expect(fs.available()).toBeGreaterThan(before - 64 * 1024);

      fs.fill(256 * 1024);
      const left = fs.available();
      expect(left).toBeGreaterThan(200 * 1024);
      expect(left).toBeLessThanOrEqual(256 * 1024);

      await fs.cleanup();
    });
  }
});
