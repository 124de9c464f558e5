/**
 * Micro-benchmark of the latest-value cache in process (agent/latest): loads S streams
 * (line × sensor, one double value, a unit string, a boolean) at 20,000 rows/s of event
 * time for 15 minutes (18 M rows, clock advanced per 1-second batch), then times
 * latest() of one stream, latest() of one line (a key prefix), and window(60 s) of one
 * stream (as rows, as rows + JSON.stringify, and as the API's windowJson), in ns per call, plus the cache's own byte estimate against the heap growth.
 *
 *   node --expose-gc test/bench/latest-cache.ts [max_bytes_mb=128] [streams=5000] [seconds=900]
 *
 * Prints text lines and one JSON line with the figures.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LatestCache } from '../../agent/latest/latest-cache.ts';
import type { LandingRow } from '../../agent/landing/types.ts';
import { sensors } from '../unit/latest/fixture.ts';

const maxBytesMb = Number(process.argv[2] ?? 128);
const streamCount = Number(process.argv[3] ?? 5000);
const RATE = 20_000;
const SECONDS = Number(process.argv[4] ?? 15 * 60);
const LINES = 50;

// The same dataset the cache's unit tests use.
const dataset = sensors;

const gc = (globalThis as { gc?: () => void }).gc;
/** Live heap + ArrayBuffer backing stores, after the collector (and the buffer sweeper) ran. */
const heap = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(100);
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const t0Ms = Date.parse('2025-03-01T08:00:00Z');
let nowMs = t0Ms;
const cache = new LatestCache({ datasets: [dataset], windowMinutes: 15, maxBytes: maxBytesMb * 1024 * 1024, now: () => nowMs });
const keys = Array.from({ length: streamCount }, (_, s) => ({ line: `line${s % LINES}`, sensor: `sensor${s}` }));

const heapBefore = await heap();
const loadStarted = performance.now();
let loadMs = 0;
for (let second = 0; second < SECONDS; second++) {
  const rows: LandingRow[] = new Array(RATE);
  const baseUs = (t0Ms + second * 1000) * 1000;
  for (let i = 0; i < RATE; i++) {
    const key = keys[i % streamCount]!;
    // mostly in order, every 50th row up to 2 s late
    const timeUs = baseUs + Math.floor((i * 1_000_000) / RATE) - (i % 50 === 0 ? (i % 2_000_000) : 0);
    rows[i] = { dataset: 'sensors', values: [timeUs, key.line, key.sensor, Math.sin(i + second), i % 3 ? 'pct' : 'degC', i % 7 !== 0] };
  }
  nowMs = t0Ms + (second + 1) * 1000;
  const started = performance.now();
  cache.onRows(rows);
  loadMs += performance.now() - started;
}
const wallMs = performance.now() - loadStarted;
const heapAfter = await heap();
const stats = cache.stats();
const totalRows = RATE * SECONDS;
console.log(`loaded ${totalRows.toLocaleString('en')} rows into ${streamCount} streams: onRows ${loadMs.toFixed(0)} ms (${Math.round(totalRows / (loadMs / 1000)).toLocaleString('en')} rows/s), wall incl. generating ${wallMs.toFixed(0)} ms`);
console.log(`memory: estimate ${(stats.bytes / 1048576).toFixed(1)} MB (bound ${maxBytesMb} MB), heap+arrayBuffers growth ${gc ? ((heapAfter - heapBefore) / 1048576).toFixed(1) + ' MB' : 'n/a (run with --expose-gc)'}; rows held ${stats.rowsHeld.toLocaleString('en')} (${((stats.rowsHeld / totalRows) * SECONDS / 60).toFixed(1)} of 15 min), evicted by memory ${stats.rowsEvictedByMemory.toLocaleString('en')}, passes ${stats.memoryEvictionPasses}`);

function time(label: string, iterations: number, fn: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < Math.min(iterations, 10_000); i++) sink += (fn(i) as unknown[] | { rows: unknown[] }) ? 1 : 0; // warm up
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += (fn(i) as unknown[] | { rows: unknown[] }) ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - started) / iterations;
  console.log(`${label}: ${ns.toFixed(0)} ns/call${sink < 0 ? '' : ''}`);
  return Math.round(ns);
}

const latestOneNs = time('latest(one stream)', 200_000, (i) => cache.latest('sensors', keys[(i * 7919) % streamCount]!));
const latestLineNs = time(`latest(one line: ${streamCount / LINES} streams)`, 20_000, (i) => cache.latest('sensors', { line: `line${i % LINES}` }));
const windowRows = cache.window('sensors', keys[0]!, 1).rows.length;
const window60Ns = time(`window(one stream, 60 s: ${windowRows} rows)`, 50_000, (i) => cache.window('sensors', keys[(i * 7919) % streamCount]!, 1));
const window60JsonNs = time('window(60 s) + JSON.stringify', 20_000, (i) => JSON.stringify(cache.window('sensors', keys[(i * 7919) % streamCount]!, 1)));
// The HTTP API's path: rows as JSON text, each row printed once and then kept with it
// (after the warm-up every stream asked was printed; only new rows would be printed again).
const window60TextNs = time('windowJson(60 s), row text kept', 20_000, (i) => cache.windowJson('sensors', keys[(i * 7919) % streamCount]!, 1).rowsJson);
const summaryNs = time('datasetsSummary()', 50, () => cache.datasetsSummary());

console.log(
  JSON.stringify({
    bench: 'latest-cache',
    streams: streamCount,
    rows: totalRows,
    maxBytesMb,
    onRowsPerSecond: Math.round(totalRows / (loadMs / 1000)),
    estimateMb: +(stats.bytes / 1048576).toFixed(1),
    heapGrowthMb: gc ? +((heapAfter - heapBefore) / 1048576).toFixed(1) : null,
    rowsHeld: stats.rowsHeld,
    latestOneNs,
    latestLineNs,
    window60Ns,
    window60Rows: windowRows,
    window60JsonNs,
    window60TextNs,
    summaryNs,
  }),
);
