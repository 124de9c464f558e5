/**
 * Paced HTTP GET load for reads-latency.ts, run as a worker thread so the MQTT
 * publisher on the bench's main thread never delays a request or its timing.
 *
 * `clients` independent clients, each with its own keep-alive connection (an
 * http.Agent with one socket), each sending `ratePerClient` requests per second on a
 * fixed schedule with a random phase. A client never has two requests in flight: when
 * a response comes after the next slot, the next request goes at once and counts as
 * late (missed slots are not made up for after the run's end). Latency is taken from
 * the moment the request is written (`latency`) and from its scheduled slot
 * (`fromSchedule`, which also holds any wait for a late response).
 *
 * workerData: { url, paths: string[], clients, ratePerClient, seconds, sampleBodies }
 * posts back: { latency, fromSchedule, errors, statuses, late, sent, elapsedMs, cpuUs, bodyBytes, sampledRows }
 */
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

export interface HttpLoadOptions {
  url: string;
  /** Request paths (with query strings); each request picks one at random. */
  paths: string[];
  clients: number;
  ratePerClient: number;
  seconds: number;
  /** Parse every Nth response body and report the mean count of `rows` or `streams` in it (0: none). */
  sampleBodies: number;
}

export interface HttpLoadResult {
  latency: Float64Array;
  fromSchedule: Float64Array;
  errors: number;
  /** Non-200 statuses and error messages, by count (the first few kinds). */
  statuses: Record<string, number>;
  late: number;
  sent: number;
  elapsedMs: number;
  /** CPU time of this worker thread, in microseconds (user + system). */
  cpuUs: number;
  bodyBytes: number;
  sampledRows: number;
}

const opts = workerData as HttpLoadOptions;
const target = new URL(opts.url);
const interval = 1000 / opts.ratePerClient;
const expected = Math.ceil(opts.clients * opts.ratePerClient * opts.seconds * 1.05) + 1000;
const latency = new Float64Array(expected);
const fromSchedule = new Float64Array(expected);
let done = 0;
let sent = 0;
let late = 0;
let errors = 0;
let bodyBytes = 0;
let sampledRows = 0;
let sampled = 0;
const statuses: Record<string, number> = {};
const cpu0 = process.threadCpuUsage();
const t0 = performance.now();
const end = t0 + opts.seconds * 1000;

function countError(kind: string): void {
  errors++;
  if (kind in statuses || Object.keys(statuses).length < 10) statuses[kind] = (statuses[kind] ?? 0) + 1;
}

function runClient(): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let slot = t0 + Math.random() * interval;
  return new Promise((resolve) => {
    const next = (): void => {
      if (slot >= end || performance.now() >= end) {
        agent.destroy();
        resolve();
        return;
      }
      const wait = slot - performance.now();
      if (wait > 0) setTimeout(fire, wait);
      else {
        late++;
        fire();
      }
    };
    const fire = (): void => {
      const scheduled = slot;
      slot += interval;
      const path = opts.paths[Math.floor(Math.random() * opts.paths.length)]!;
      const started = performance.now();
      sent++;
      const finish = (ok: boolean, kind: string): void => {
        const now = performance.now();
        if (ok && done < latency.length) {
          latency[done] = now - started;
          fromSchedule[done] = now - scheduled;
          done++;
        } else if (!ok) countError(kind);
        next();
      };
      const req = request({ host: target.hostname, port: target.port, path, method: 'GET', agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          bodyBytes += chunk.length;
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) {
            finish(false, `status ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`);
            return;
          }
          if (opts.sampleBodies > 0 && sent % opts.sampleBodies === 0) {
            const body = JSON.parse(Buffer.concat(chunks).toString()) as { rows?: unknown[]; streams?: unknown[] };
            sampledRows += (body.rows ?? body.streams ?? []).length;
            sampled++;
          }
          finish(true, '');
        });
        res.on('error', (error) => finish(false, error.message));
      });
      req.on('error', (error) => finish(false, error.message));
      req.end();
    };
    next();
  });
}

await Promise.all(Array.from({ length: opts.clients }, runClient));
const cpu = process.threadCpuUsage(cpu0);
const result: HttpLoadResult = {
  latency: latency.slice(0, done),
  fromSchedule: fromSchedule.slice(0, done),
  errors,
  statuses,
  late,
  sent,
  elapsedMs: performance.now() - t0,
  cpuUs: cpu.user + cpu.system,
  bodyBytes,
  sampledRows: sampled === 0 ? 0 : sampledRows / sampled,
};
parentPort!.postMessage(result);
