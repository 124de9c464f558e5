// The on-site reads on their own worker (agent/on-site-reads.ts, agent/reads/): a row
// the landing log commits is in /v1/latest as soon as its append resolves, served
// while the main thread is blocked (so the API needs nothing of the ingest event loop);
// and a crash of the reads worker is logged with READS_WORKER_CRASHED, ingestion goes
// on meanwhile, and the worker comes back on the same URL serving new rows.
import { spawnSync } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../config/loader.ts';
import { Daemon } from '../../../agent/daemon.ts';
import type { LandingItem } from '../../../agent/landing/types.ts';
import { createLogger } from '../../../agent/log.ts';
import { hasOpenssl, writeSelfSignedCert } from '../../support/tls-cert.ts';
import { waitFor } from '../../support/wait-for.ts';

let dir: string | undefined;
let daemon: Daemon | undefined;
const savedFailpoints = process.env.LAKESIDE_FAILPOINTS;

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
  if (savedFailpoints === undefined) delete process.env.LAKESIDE_FAILPOINTS;
  else process.env.LAKESIDE_FAILPOINTS = savedFailpoints;
});

interface LogRecord {
  level: number;
  msg: string;
  code?: string;
  [key: string]: unknown;
}

function newDaemon(api = '{ listen_port: 0 }'): { daemon: Daemon; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  const text = `
plant: p1
state_dir: ${join(dir!, 'state')}
api: ${api}
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: value, type: double }
    stream_key: [line, sensor]
`;
  daemon = new Daemon(parseConfigText(text, join(dir!, 'lakeside.yaml')), createLogger('info', sink));
  return { daemon, logs };
}

async function startDaemon(api?: string): Promise<{ daemon: Daemon; logs: LogRecord[] }> {
  dir = await mkdtemp(join(tmpdir(), 'lakeside-reads-worker-'));
  const started = newDaemon(api);
  await started.daemon.start();
  return started;
}

function reading(sensor: string, value: number): LandingItem {
  return { rows: [{ dataset: 'readings', values: [Date.now() * 1000, 'l1', sensor, value] }], quarantine: [], blobs: [] };
}

/** GET from a child process while this thread waits synchronously: this event loop cannot serve it. */
function getWhileMainThreadBlocked(url: string): { status: number; body: unknown } {
  const script = `const r = await fetch(${JSON.stringify(url)}); process.stdout.write(JSON.stringify({ status: r.status, body: await r.json() }));`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  if (out.status !== 0) throw new Error(`request failed (${out.signal ?? out.status}): ${out.stderr}`);
  return JSON.parse(out.stdout) as { status: number; body: unknown };
}

interface LatestBody {
  streams: { stream: Record<string, string>; values: Record<string, unknown> }[];
}

describe('on-site reads on their own worker', () => {
  it('serves a landed row from /v1/latest once its commit resolves, with the main thread blocked', async () => {
    const { daemon } = await startDaemon();
    await daemon.landing.append(reading('humidity', 41.5));
    const latest = getWhileMainThreadBlocked(`${daemon.reads.url}/v1/latest?dataset=readings&line=l1&sensor=humidity`);
    expect(latest.status).toBe(200);
    expect((latest.body as LatestBody).streams).toEqual([expect.objectContaining({ stream: { line: 'l1', sensor: 'humidity' }, values: { value: 41.5 } })]);
    // Readiness is the main thread's, pushed to the worker.
    expect(getWhileMainThreadBlocked(`${daemon.reads.url}/readyz`).status).toBe(200);
  });

  it('logs a crash of the reads worker with READS_WORKER_CRASHED, keeps ingesting, and restarts it on the same URL', async () => {
    process.env.LAKESIDE_FAILPOINTS = 'reads.crash';
    const { daemon, logs } = await startDaemon();
    const url = daemon.reads.url!;
    await daemon.landing.append(reading('temperature', 20));

    daemon.reads.crashForTest();
    const crash = await waitFor(() => logs.find((l) => l.code === 'READS_WORKER_CRASHED'), 'the crash to be logged');
    expect(crash.level).toBe(50);
    expect(String(crash.err)).toContain('reads.crash failpoint');
    // Ingestion does not depend on the reads worker: commits go on while it is down.
    const commitsBefore = daemon.landing.stats.commits;
    await daemon.landing.append(reading('temperature', 21));
    expect(daemon.landing.stats.commits).toBe(commitsBefore + 1);

    await waitFor(() => logs.find((l) => l.code === 'READS_WORKER_RESTARTED'), 'the worker to be back', 30_000);
    expect(daemon.reads.url).toBe(url);
    expect(daemon.reads.crashes).toBe(1);
    await daemon.landing.append(reading('temperature', 22.5));
    const response = await fetch(`${url}/v1/latest?dataset=readings&line=l1&sensor=temperature`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as LatestBody).streams.map((s) => s.values)).toEqual([{ value: 22.5 }]);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('fails the daemon start with the worker error and its code (API_EXPOSED_WITHOUT_TOKENS, ENOENT)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-reads-worker-'));
    const exposed = newDaemon('{ listen_host: 0.0.0.0, listen_port: 0 }').daemon;
    await expect(exposed.start()).rejects.toMatchObject({ code: 'API_EXPOSED_WITHOUT_TOKENS', message: expect.stringContaining('api.tokens') });
    const noCert = newDaemon(`{ listen_port: 0, tls: { cert_file: ${join(dir, 'none.pem')}, key_file: ${join(dir, 'none.key')} } }`).daemon;
    await expect(noCert.start()).rejects.toMatchObject({ code: 'ENOENT' });
  });

  // Never skipped in CI (.ci/run installs openssl); a developer machine without it skips.
  it.skipIf(!hasOpenssl() && process.env.CI !== 'true')('serves https with tokens from the worker', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-reads-worker-'));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    writeSelfSignedCert(certFile, keyFile);
    const token = 'reads-worker-token-0123456789abcdef';
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const { daemon } = newDaemon(`{ listen_port: 0, tls: { cert_file: ${certFile}, key_file: ${keyFile} }, tokens: [{ name: ml, role: read, token: "\${file:${tokenFile}}" }] }`);
    await daemon.start();
    await daemon.landing.append(reading('humidity', 40.25));
    expect(daemon.reads.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        httpsGet(`${daemon.reads.url}${path}`, { rejectUnauthorized: false, headers }, (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        }).on('error', reject);
      });
    expect((await get('/v1/latest?dataset=readings')).status).toBe(401);
    const ok = await get('/v1/latest?dataset=readings', { authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as LatestBody).streams.map((s) => s.values)).toEqual([{ value: 40.25 }]);
  });
});
