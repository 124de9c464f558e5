/**
 * Benchmark: durable MQTT ingest (QoS 1, PUBACK after the fsync'd commit) against the
 * same setup acking on receipt, in one run. A real Mosquitto on loopback, one
 * publisher process (this one) and the daemon as a child process, on the same machine.
 *
 * Phases, each on a fresh state directory:
 *   1. durable, offered 20,000 msg/s for BENCH_SECONDS (60): sustained rate, p99
 *      publish → lakeside PUBACK, peak RSS;
 *   2. durable, publisher unthrottled for BENCH_MAX_SECONDS (30): the ceiling;
 *   3. ack on receipt, unthrottled, same duration: the baseline.
 *
 *   node test/bench/mqtt-ingest.ts            (env: BENCH_SECONDS, BENCH_MAX_SECONDS, BENCH_CONNECTIONS, BENCH_RATE)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMosquitto } from '../services/mosquitto.ts';
import { forkBenchChild, type BenchChild } from './support/child-ipc.ts';
import { createPublisher, makePayload } from '../support/mqtt-publisher.ts';
import { writeReadingsConfig } from './support/readings-config.ts';

const SUSTAIN_SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const MAX_SECONDS = Number(process.env.BENCH_MAX_SECONDS ?? 30);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4); // the config default
const RATE = Number(process.env.BENCH_RATE ?? 20_000);
const LINES = ['coating_1', 'coating_2', 'coating_3'];
const SENSORS = ['temperature', 'humidity', 'pressure', 'speed', 'vibration', 'power'];
const topics = LINES.flatMap((line) => SENSORS.map((sensor) => `plant/bench/line/${line}/sensor/${sensor}`));

function writeConfig(dir: string, url: string): string {
  return writeReadingsConfig(dir, { brokerUrl: url, clientId: `lakeside-bench-${Date.now()}`, connections: CONNECTIONS });
}

async function startChild(configPath: string, mode: string): Promise<BenchChild> {
  return forkBenchChild(new URL('./support/bench-daemon.ts', import.meta.url), [configPath, mode]);
}

interface Stats { acked: number; rows: number; commits: number; commitMs: number; rss: number }
interface Report { samples: number; p50: number; p99: number; max: number; peakRss: number }

/** Each phase gets its own broker, so no session or shared subscription of an earlier phase takes messages. */
async function phase(name: string, mode: 'after_commit' | 'on_receipt', rate: number, seconds: number) {
  const broker = await startMosquitto({ persistence: false });
  try {
    return await runPhase(name, mode, rate, seconds, broker.url);
  } finally {
    await broker.stop();
  }
}

async function runPhase(name: string, mode: 'after_commit' | 'on_receipt', rate: number, seconds: number, url: string) {
  const dir = mkdtempSync(join(tmpdir(), 'lakeside-mqtt-bench-'));
  const child = await startChild(writeConfig(dir, url), mode);
  const publisher = await createPublisher({
    url,
    topics,
    rate,
    window: 2000,
    payloadSize: 100,
    payload: (seq, ts) => makePayload(seq, ts, 100),
  });
  // Closed loop: the publisher stays at most BACKLOG messages ahead of lakeside's acks,
  // so an unthrottled phase measures lakeside, not a broker queue filling up (and the
  // publisher does not burn CPU on messages lakeside could never take in time).
  let childAcked = 0;
  const BACKLOG = 5000;
  publisher.start(rate > 0 ? Infinity : BACKLOG);
  const control = setInterval(() => {
    void child.ask<Stats>('stats', 'stats').then((stats) => {
      childAcked = stats.acked;
      if (rate === 0) publisher.allow(childAcked + BACKLOG);
    });
  }, 20);
  await new Promise((r) => setTimeout(r, 3000)); // warm up: connections, JIT, first commits
  await child.ask('measure', 'measure-ack').catch(() => {});
  const first = await child.ask<Stats>('stats', 'stats');
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const last = await child.ask<Stats>('stats', 'stats');
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(control);
  await new Promise((r) => setTimeout(r, 50));
  const report = await child.ask<Report>('report', 'report');
  const published = publisher.stats();
  await publisher.stop();
  await publisher.close();
  await child.ask('stop', 'stopped');
  rmSync(dir, { recursive: true, force: true });
  const ackRate = (last.acked - first.acked) / elapsed;
  const commitsPerSec = (last.commits - first.commits) / elapsed;
  const result = {
    phase: name,
    mode,
    offered: rate === 0 ? 'unthrottled' : `${rate} msg/s`,
    seconds: Math.round(elapsed),
    ackedPerSecond: Math.round(ackRate),
    publisherAckedPerSecond: Math.round(published.ackedPerSecond),
    rowsPerCommit: Math.round((last.rows - first.rows) / Math.max(1, last.commits - first.commits)),
    commitsPerSecond: Math.round(commitsPerSec),
    msPerCommit: Number(((last.commitMs - first.commitMs) / Math.max(1, last.commits - first.commits)).toFixed(2)),
    p50Ms: report.p50,
    p99Ms: report.p99,
    maxMs: report.max,
    peakRssMb: Math.round(report.peakRss / 1048576),
  };
  console.log(JSON.stringify(result));
  return result;
}

console.log(`# mqtt-ingest: ${CONNECTIONS} connections, 100-byte JSON readings, Mosquitto on loopback`);
const only = process.env.BENCH_PHASES?.split(',');
const run = (name: string) => !only || only.includes(name);
const sustained = run('sustained') ? await phase('sustained', 'after_commit', RATE, SUSTAIN_SECONDS) : null;
const durable = run('ceiling') ? await phase('ceiling', 'after_commit', 0, MAX_SECONDS) : null;
const baseline = run('baseline') ? await phase('baseline', 'on_receipt', 0, MAX_SECONDS) : null;
if (sustained) {
  console.log(`durable sustained: ${sustained.ackedPerSecond} msg/s acked at ${RATE} msg/s offered; p99 publish→PUBACK ${sustained.p99Ms} ms; peak RSS ${sustained.peakRssMb} MB`);
}
if (durable && baseline) {
  console.log(`ceiling: durable ${durable.ackedPerSecond} msg/s vs ack-on-receipt ${baseline.ackedPerSecond} msg/s = ${(durable.ackedPerSecond / baseline.ackedPerSecond).toFixed(2)}x`);
}
