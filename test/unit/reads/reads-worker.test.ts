// The on-site reads on their own worker (agent/on-site-reads.ts, agent/reads/): a row
// the landing log commits is in /v1/latest as soon as its append resolves, served
// while the main thread is blocked (so the API needs nothing of the ingest event loop);
// and a crash of the reads worker is logged with READS_WORKER_CRASHED, ingestion goes
// on meanwhile, and the worker comes back on the same URL serving new rows.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../config/loader.ts';
import { Daemon } from '../../../agent/daemon.ts';
import type { LandingItem } from '../../../agent/landing/types.ts';
import { createLogger } from '../../../agent/log.ts';
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

async function startDaemon(): Promise<{ daemon: Daemon; logs: LogRecord[] }> {
  dir = await mkdtemp(join(tmpdir(), 'lakeside-reads-worker-'));
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  const text = `
plant: p1
state_dir: ${join(dir, 'state')}
api: { listen_port: 0 }
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: value, type: double }
    stream_key: [line, sensor]
`;
  const started = new Daemon(parseConfigText(text, join(dir, 'lakeside.yaml')), createLogger('info', sink));
  daemon = started;
  await started.start();
  return { daemon: started, logs };
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
});
