/**
 * Benchmark: on-site reads under ingest load. A real Mosquitto on loopback, lakeside as a
 * child process (test/bench/support/bench-daemon.ts, durable acks, API on a free port),
 * this process as the load: a paced MQTT publisher (100-byte JSON readings over
 * LINES × SENSORS streams, dataset `readings` with `stream_key: [line, sensor]`) on the
 * main thread and the HTTP clients on a worker thread (support/http-load.ts), so
 * publishing never delays a request's timing. All on one machine.
 *
 * Phases, one daemon, ingest running throughout at BENCH_RATE (20,000 msg/s), after a 5 s warm-up:
 *   1. freshness: no HTTP load; every BENCH_SAMPLE_EVERY-th (100th) message's publish
 *                 time is kept, and POST /v1/query looks those seqs up every ~50 ms:
 *                 publish → first visible in SQL, p50/p99, for BENCH_FRESHNESS_SECONDS (30).
 *                 Driven by `hot.seal_interval_ms` (the default unless BENCH_EXTRA_CONFIG
 *                 sets it): rows reach SQL when they are sealed into Parquet. It runs
 *                 first, so no backlog left by a read phase counts as staleness;
 *   2. latest:    BENCH_CLIENTS (40) keep-alive clients × BENCH_CLIENT_RATE (30) req/s of
 *                 GET /v1/latest?dataset=readings&line=…&sensor=… (a random stream each
 *                 time) for BENCH_SECONDS (60): client-side p50/p99/max, errors;
 *   3. window:    the same with GET /v1/window?dataset=readings&minutes=1&line=…&sensor=…
 *                 (the last 60 s of one stream, full by then: ≈ 1,000 rows at the
 *                 default 1,200 streams, i.e. 16.7 readings/s per stream).
 * Each phase reports the ingest rate acked by lakeside meanwhile, the daemon's peak RSS
 * and CPU, Mosquitto's CPU, and this process's CPU (publisher thread, HTTP worker).
 *
 *   node test/bench/reads-latency.ts   (env: BENCH_SECONDS, BENCH_FRESHNESS_SECONDS, BENCH_RATE,
 *                                       BENCH_CLIENTS, BENCH_CLIENT_RATE, BENCH_LINES, BENCH_SENSORS,
 *                                       BENCH_PHASES=latest,window,freshness, BENCH_EXTRA_CONFIG,
 *                                       BENCH_PROFILE=<dir> for a CPU profile of the daemon)
 *
 * One JSON line per phase, then a summary line. No assertions: it is a benchmark.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { loadConfigFile } from '../../config/loader.ts';
import { startMosquitto } from '../services/mosquitto.ts';
import { createPublisher, makePayload, summarize } from '../support/mqtt-publisher.ts';
import { forkBenchChild } from './support/child-ipc.ts';
import type { HttpLoadOptions, HttpLoadResult } from './support/http-load.ts';
import { writeReadingsConfig } from './support/readings-config.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const FRESHNESS_SECONDS = Number(process.env.BENCH_FRESHNESS_SECONDS ?? 30);
const RATE = Number(process.env.BENCH_RATE ?? 20_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 40);
const CLIENT_RATE = Number(process.env.BENCH_CLIENT_RATE ?? 30);
const LINE_COUNT = Number(process.env.BENCH_LINES ?? 3);
const SENSOR_COUNT = Number(process.env.BENCH_SENSORS ?? 400);
const SAMPLE_EVERY = Number(process.env.BENCH_SAMPLE_EVERY ?? 100);
const POLL_MS = 50;
const WARMUP_MS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5) * 1000;
const only = process.env.BENCH_PHASES?.split(',');
const run = (name: string) => !only || only.includes(name);

const LINES = Array.from({ length: LINE_COUNT }, (_, i) => `line_${i + 1}`);
const SENSORS = Array.from({ length: SENSOR_COUNT }, (_, i) => `s${String(i).padStart(3, '0')}`);
const streams = LINES.flatMap((line) => SENSORS.map((sensor) => ({ line, sensor })));
const topics = streams.map((s) => `plant/bench/line/${s.line}/sensor/${s.sensor}`);
const CLK_TCK = 100;

function writeConfig(dir: string, url: string): string {
  return writeReadingsConfig(dir, { brokerUrl: url, clientId: `lakeside-reads-bench-${Date.now()}`, streamKey: true });
}

interface Stats { acked: number; rows: number; commits: number; rss: number; cpu: NodeJS.CpuUsage }
interface Report { samples: number; p50: number; p99: number; max: number; peakRss: number; loopDelayP50Ms: number; loopDelayP99Ms: number; loopDelayMaxMs: number }

/** CPU seconds a process has used so far (Linux /proc), e.g. Mosquitto's. */
function procCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat), to see load from outside this bench. */
function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number) as number[];
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const pct = (cpuSeconds: number, seconds: number) => Math.round((cpuSeconds / seconds) * 100);

const dir = mkdtempSync(join(tmpdir(), 'lakeside-reads-bench-'));
const broker = await startMosquitto({ persistence: false });
const configPath = writeConfig(dir, broker.url);
const sealIntervalMs = (await loadConfigFile(configPath)).config.hot.seal_interval_ms;
const child = await forkBenchChild(new URL('./support/bench-daemon.ts', import.meta.url), [configPath, 'after_commit']);
const apiUrl = child.ready.apiUrl;
if (!apiUrl) throw new Error('the bench daemon did not report its API URL');

// Publish times of sampled seqs while the freshness phase tracks them.
let tracking = false;
const publishedAt = new Map<number, number>();
const publisher = await createPublisher({
  url: broker.url,
  topics,
  rate: RATE,
  window: 2000,
  payloadSize: 100,
  payload: (seq, ts) => {
    if (tracking && seq % SAMPLE_EVERY === 0) publishedAt.set(seq, ts);
    return makePayload(seq, ts, 100);
  },
});

console.log(
  `# reads-latency: ${RATE} msg/s offered over ${streams.length} streams (${LINE_COUNT} lines × ${SENSOR_COUNT} sensors), ` +
    `${CLIENTS} HTTP clients × ${CLIENT_RATE} req/s, API ${apiUrl}, hot.seal_interval_ms ${sealIntervalMs}, ${availableParallelism()} cores`,
);
publisher.start();
await sleep(WARMUP_MS); // connections, JIT, first commits and seals

/** Runs `body` while ingest goes on; adds the ingest rate, CPU of every process and the daemon's peak RSS. */
async function measured<T extends object>(name: string, body: () => Promise<T>): Promise<Record<string, unknown>> {
  await child.ask('measure', 'measure-ack');
  const first = await child.ask<Stats>('stats', 'stats');
  const pub0 = publisher.stats();
  const cpu0 = process.cpuUsage();
  const thread0 = process.threadCpuUsage();
  const broker0 = procCpuSeconds(broker.pid);
  const machine0 = machineBusySeconds();
  const t0 = performance.now();
  const result = await body();
  const elapsed = (performance.now() - t0) / 1000;
  const last = await child.ask<Stats>('stats', 'stats');
  const report = await child.ask<Report>('report', 'report');
  const pub1 = publisher.stats();
  const cpu = process.cpuUsage(cpu0);
  const thread = process.threadCpuUsage(thread0);
  const daemonCpu = (last.cpu.user + last.cpu.system - first.cpu.user - first.cpu.system) / 1e6;
  const brokerCpu = procCpuSeconds(broker.pid) - broker0;
  const benchCpu = (cpu.user + cpu.system) / 1e6;
  const machineCpu = machineBusySeconds() - machine0;
  const line = {
    phase: name,
    ...result,
    ingestAckedPerSecond: Math.round((last.acked - first.acked) / elapsed),
    ingestPublishedPerSecond: Math.round((pub1.acked - pub0.acked) / elapsed),
    pubackP99Ms: report.p99,
    // How late the daemon's main (ingest) event loop ran timers (1 ms resolution). The
    // API runs on the reads worker (agent/on-site-reads.ts), so requests no longer wait
    // behind this; it shows how busy ingestion keeps the main thread.
    daemonLoopDelayP50Ms: round(report.loopDelayP50Ms),
    daemonLoopDelayP99Ms: round(report.loopDelayP99Ms),
    daemonLoopDelayMaxMs: round(report.loopDelayMaxMs),
    daemonPeakRssMb: Math.round(report.peakRss / 1048576),
    daemonCpuPct: pct(daemonCpu, elapsed),
    mosquittoCpuPct: pct(brokerCpu, elapsed),
    benchCpuPct: pct(benchCpu, elapsed),
    publisherThreadCpuPct: pct((thread.user + thread.system) / 1e6, elapsed),
    // CPU % is of one core; the machine has availableParallelism() cores. "other" is
    // everything else on the machine meanwhile (other processes, kernel): if it is not
    // near 0 the figures are disturbed.
    machineBusyPct: pct(machineCpu, elapsed),
    otherCpuPct: pct(machineCpu - daemonCpu - brokerCpu - benchCpu, elapsed),
    seconds: Math.round(elapsed),
  };
  console.log(JSON.stringify(line));
  return line;
}

function httpLoad(paths: string[], sampleBodies: number): Promise<HttpLoadResult> {
  const options: HttpLoadOptions = { url: apiUrl!, paths, clients: CLIENTS, ratePerClient: CLIENT_RATE, seconds: SECONDS, sampleBodies };
  const worker = new Worker(new URL('./support/http-load.ts', import.meta.url), { workerData: options });
  return new Promise((resolve, reject) => {
    worker.once('message', (result: HttpLoadResult) => resolve(result));
    worker.once('error', reject);
  });
}

async function readPhase(paths: string[]) {
  const r = await httpLoad(paths, 50);
  const lat = summarize(r.latency);
  const sched = summarize(r.fromSchedule);
  const seconds = r.elapsedMs / 1000;
  return {
    requests: r.latency.length,
    requestsPerSecond: Math.round(r.latency.length / seconds),
    errors: r.errors,
    ...(r.errors > 0 ? { errorKinds: r.statuses } : {}),
    p50Ms: round(lat.p50),
    p99Ms: round(lat.p99),
    p999Ms: round(lat.p999),
    maxMs: round(lat.max),
    meanMs: round(lat.mean),
    fromScheduleP99Ms: round(sched.p99),
    lateSends: r.late,
    meanBodyBytes: Math.round(r.bodyBytes / Math.max(1, r.sent)),
    meanRowsPerBody: round(r.sampledRows, 1),
    httpWorkerCpuPct: pct(r.cpuUs / 1e6, seconds),
  };
}

async function freshnessPhase() {
  const latencies: number[] = [];
  const roundTrips: number[] = [];
  let polls = 0;
  let pollErrors = 0;
  let tracked = 0;
  publishedAt.clear();
  tracking = true;
  const end = Date.now() + FRESHNESS_SECONDS * 1000;
  const drainUntil = end + 10_000;
  while (Date.now() < drainUntil) {
    if (Date.now() >= end && tracking) {
      tracking = false;
      tracked = latencies.length + publishedAt.size;
    }
    if (!tracking && publishedAt.size === 0) break;
    const started = Date.now();
    const pending = [...publishedAt.keys()].slice(0, 2000);
    if (pending.length > 0) {
      try {
        const response = await fetch(`${apiUrl}/v1/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sql: `SELECT seq FROM readings WHERE seq IN (${pending.join(',')})` }),
        });
        const body = (await response.json()) as { rows?: unknown[][]; error?: unknown };
        const visibleAt = Date.now();
        polls++;
        roundTrips.push(visibleAt - started);
        if (!response.ok || !body.rows) pollErrors++;
        for (const [seq] of body.rows ?? []) {
          const at = publishedAt.get(Number(seq));
          if (at === undefined) continue;
          latencies.push(visibleAt - at);
          publishedAt.delete(Number(seq));
        }
      } catch {
        pollErrors++;
      }
    }
    await sleep(Math.max(0, POLL_MS - (Date.now() - started)));
  }
  tracking = false;
  const s = summarize(latencies);
  const rt = summarize(roundTrips);
  return {
    sealIntervalMs,
    sampled: tracked,
    visible: latencies.length,
    neverVisible: publishedAt.size,
    p50Ms: s.p50,
    p99Ms: s.p99,
    maxMs: s.max,
    polls,
    pollErrors,
    pollRoundTripP50Ms: rt.p50,
    pollRoundTripP99Ms: rt.p99,
  };
}

const pathsOf = (route: string) => streams.map((s) => `${route}&line=${s.line}&sensor=${s.sensor}`);
const results: Record<string, Record<string, unknown>> = {};
try {
  // Freshness first: after a read phase the ingest may still be catching up, and that
  // backlog (not the seal) would then show as staleness.
  if (run('freshness')) results.freshness = await measured('freshness', freshnessPhase);
  if (run('latest')) results.latest = await measured('latest', () => readPhase(pathsOf('/v1/latest?dataset=readings')));
  if (run('window')) results.window = await measured('window', () => readPhase(pathsOf('/v1/window?dataset=readings&minutes=1')));
} finally {
  await publisher.stop().catch(() => {});
  await publisher.close().catch(() => {});
  await child.ask('stop', 'stopped');
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
}

const { latest, window, freshness } = results;
console.log(
  JSON.stringify({
    summary: 'reads-latency',
    streams: streams.length,
    offeredMsgPerSecond: RATE,
    ...(latest ? { latestP50Ms: latest.p50Ms, latestP99Ms: latest.p99Ms, latestMaxMs: latest.maxMs, latestErrors: latest.errors, latestIngest: latest.ingestAckedPerSecond } : {}),
    ...(window ? { windowP50Ms: window.p50Ms, windowP99Ms: window.p99Ms, windowMaxMs: window.maxMs, windowErrors: window.errors, windowRows: window.meanRowsPerBody, windowIngest: window.ingestAckedPerSecond } : {}),
    ...(freshness ? { freshnessP50Ms: freshness.p50Ms, freshnessP99Ms: freshness.p99Ms, sealIntervalMs } : {}),
    daemonPeakRssMb: Math.max(...Object.values(results).map((r) => Number(r.daemonPeakRssMb))),
    targets: {
      ...(latest ? { latestP50: Number(latest.p50Ms) <= 1, latestP99: Number(latest.p99Ms) <= 5 } : {}),
      ...(window ? { windowP99: Number(window.p99Ms) <= 5 } : {}),
      ...(freshness ? { freshnessP99: Number(freshness.p99Ms) <= 2000 } : {}),
    },
  }),
);
