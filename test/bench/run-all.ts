/**
 * `npm run bench`: runs the benchmarks one after the other, each as a child process
 * with its output streamed through, then prints the machine (cores, memory, CPU model,
 * Node, the temp directory's disk) and the headline figures taken from each one's
 * output (JSON lines; seal-compact prints text lines, which are matched instead).
 *
 *   npm run bench                      all of them (≈ 1 + 2 + 1 minutes of measuring, plus
 *                                      ≈ 15 for sql-hot-tier's 10M/100M/300M rows, ≈ 2 for iceberg-commits
 *                                      and ≈ 6 for the iceberg-latency run)
 *   npm run bench -- mqtt camera       only those whose name contains an argument
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { createInterface } from 'node:readline';

interface Bench { name: string; args: string[]; headline: (lines: string[]) => string[] }

const json = (lines: string[]) => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
const BENCHES: Bench[] = [
  {
    name: 'seal-compact',
    args: ['test/bench/seal-compact.ts', '1000000'],
    headline: (lines) => lines.filter((l) => /^(seal \+ purge|seal|compact|peak RSS):/.test(l)).map((l) => l.replace(/\s+/g, ' ')),
  },
  {
    name: 'mqtt-ingest',
    args: ['test/bench/mqtt-ingest.ts'],
    headline: (lines) =>
      json(lines).map((r) => `${r.phase} (${r.mode}, ${r.offered}): ${r.ackedPerSecond} msg/s acked, p99 ${r.p99Ms} ms, peak RSS ${r.peakRssMb} MB`),
  },
  {
    name: 'kafka-ingest',
    args: ['test/bench/kafka-ingest.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => r.phase === 'noop-consumer' || r.phase === 'lakeside-durable')
        .map((r) => `${r.phase}: ${r.perSecond} msg/s (${r.records} records, ${r.seconds} s, ${r.cpuUsPerRecord} µs CPU/record)${r.ratioToNoop !== undefined ? `, ${r.ratioToNoop} x no-op` : ''}`),
  },
  {
    name: 'camera-frames',
    args: ['test/bench/camera-frames.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => r.mode)
        .map((r) => `${r.mode} (stable_ms ${r.stableMs}, concurrency ${r.concurrency}): ${r.filesPerSecond} files/s, ${r.mbPerSecond} MB/s, p99 ${r.latencyP99Ms} ms, peak RSS ${r.peakRssMb} MB, check ${r.check}`),
  },
  {
    name: 'reads-latency',
    args: ['test/bench/reads-latency.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => r.phase)
        .map((r) =>
          r.phase === 'freshness'
            ? `freshness (seal_interval_ms ${r.sealIntervalMs}): publish → visible in SQL p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; ingest ${r.ingestAckedPerSecond} msg/s`
            : `${r.phase} (${r.requestsPerSecond} req/s, ${r.meanRowsPerBody} rows/response): p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ${r.errors} errors; ingest ${r.ingestAckedPerSecond} msg/s, daemon peak RSS ${r.daemonPeakRssMb} MB`,
        ),
  },
  {
    name: 'sql-hot-tier',
    args: ['test/bench/sql-hot-tier.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => typeof r.rows === 'number')
        .map((r) => `${r.sensorRows} rows (${r.onDiskMb} MB): (a) ${r.a} ms, (b) ${r.b} ms, (b') ${r["b'"]} ms, (c) ${r.c ?? 'n/a'} ms, (d) ${r.d} ms, peak RSS ${r.peakRssMb} MB`),
  },
  {
    name: 'tiering-upload',
    args: ['test/bench/tiering-upload.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => r.phase !== 'throughput')
        .map((r) =>
          r.phase === 'throughput-total'
            ? `upload to S3 (versitygw) vs plain SDK puts: ${r.ratio}× (target ${r.target})`
            : `bandwidth cap ${r.capBytesPerSecond} B/s over ${r.windowSeconds} s: ${r.ratioToCap}× the cap, CPU ${r.cpuShareOfOneCore} of a core`,
        ),
  },
  {
    name: 'iceberg-commits',
    args: ['test/bench/iceberg-commits.ts'],
    headline: (lines) =>
      json(lines)
        .filter((r) => r.bench === 'iceberg-commits')
        .map((r) => {
          const t = r.handoffToCommittedMs as { p50: number; p95: number };
          return `${r.agents} agents, one table, interval ${r.commitIntervalSeconds} s: ${r.commitsPerMinute} commits/min, ${r.conflictsPerCommit} conflicts/commit, ${r.commitsThatGaveUp} gave up (retried next pass), hand-off → committed p50 ${t.p50} ms / p95 ${t.p95} ms, ${r.cpuMsPerFile} ms CPU/file, table = outboxes: ${r.tableMatchesOutboxes}`;
        }),
  },
  ...[[]].map((extra) => ({
    name: 'iceberg-latency',
    args: ['test/bench/iceberg-latency.ts', ...extra],
    headline: (lines: string[]) =>
      json(lines)
        .filter((r) => r.bench === 'iceberg-latency')
        .map((r) => {
          const t = r.ackToVisibleSeconds as { p50: number; p95: number };
          return `ack → visible in PyIceberg (W ${r.compactionWindowMinutes} min, grace ${r.compactionGraceSeconds} s, interval ${r.commitIntervalSeconds} s): p50 ${t.p50} s, p95 ${t.p95} s (target ${r.targetP95Seconds} s)`;
        }),
  })),
];

function run(bench: Bench): Promise<{ lines: string[]; code: number | null }> {
  console.log(`\n=== ${bench.name}: node ${bench.args.join(' ')}`);
  const child = spawn(process.execPath, bench.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    console.log(line);
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ lines, code })));
}

function machine(): string[] {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  let disk = 'unknown';
  try {
    const [, fields] = execFileSync('df', ['-PT', tmpdir()], { encoding: 'utf8' }).trim().split('\n');
    const [device, type, blocks, , available] = fields!.split(/\s+/);
    disk = `${device} (${type}), ${(Number(blocks) / 1048576).toFixed(0)} GB, ${(Number(available) / 1048576).toFixed(0)} GB free`;
  } catch {}
  return [
    `cores: ${availableParallelism()}, memory: ${(totalmem() / 2 ** 30).toFixed(1)} GB, CPU: ${cpu}`,
    `node ${process.versions.node}, temp dir ${tmpdir()} on ${disk}`,
  ];
}

const wanted = process.argv.slice(2);
const selected = BENCHES.filter((b) => wanted.length === 0 || wanted.some((w) => b.name.includes(w)));
if (selected.length === 0) {
  console.error(`no benchmark matches ${wanted.join(' ')}; there are: ${BENCHES.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
const summary: string[] = [];
let failed = false;
for (const bench of selected) {
  const { lines, code } = await run(bench);
  if (code !== 0) failed = true;
  summary.push(`${bench.name}${code === 0 ? '' : ` (exit ${code})`}:`, ...bench.headline(lines).map((l) => `  ${l}`));
}
console.log(['\n=== summary', ...machine(), ...summary].join('\n'));
process.exit(failed ? 1 : 0);
