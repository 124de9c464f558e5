/**
 * Benchmark of the camera-folder source: how many ~200 KB frames per second lakeside
 * takes in durably (row committed, blob fsync'd under its hash, source file removed).
 *
 * The daemon runs as a child process (test/bench/support/folder-daemon.ts) with one
 * folder source, path_pattern `{line}/{camera}/{file}`, a blob column and received_at
 * time; its state directory and the drop folder are in one temp directory (same disk).
 * This process is the dropper: 3 lines × 4 cameras, each frame a JPEG header, unique
 * random bytes and a JPEG trailer (so content dedupe cannot skip work). Closed loop: at
 * most BENCH_BACKLOG (200) files are waiting in the folder (written, not yet removed);
 * a frame counts as ingested when a listing of its folder no longer shows it. Two
 * modes, each on a fresh state and drop folder:
 *   - rename:   written to `<name>.part` in the same folder, then renamed into place
 *               (what most camera software does);
 *   - in-place: written under its final name in 64 KB chunks, so chokidar sees it
 *               grow and must wait for the write to finish.
 * Each mode warms up 3 s, then measures BENCH_SECONDS (30): files/s, MB/s (10^6 bytes),
 * drop → removed latency, the daemon's peak RSS and CPU, and checks afterwards that
 * every removed file has its row and its blob file.
 *
 *   node test/bench/camera-frames.ts   (env: BENCH_SECONDS, BENCH_MODES=rename,in-place,
 *                                       BENCH_STABLE_MS, BENCH_CONCURRENCY, BENCH_BACKLOG, BENCH_FILE_KB,
 *                                       BENCH_PROFILE=<dir> for a CPU profile of the daemon)
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open, readdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forkBenchChild, type BenchChild } from './support/child-ipc.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const MODES = (process.env.BENCH_MODES ?? 'rename,in-place').split(',');
const STABLE_MS = process.env.BENCH_STABLE_MS ? Number(process.env.BENCH_STABLE_MS) : null; // null: the default (500)
const CONCURRENCY = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : null; // null: the default (4)
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 200);
const FILE_BYTES = Number(process.env.BENCH_FILE_KB ?? 200) * 1024;
const WRITERS = 8; // dropper writes in flight
const CAMERAS = ['coating_1', 'coating_2', 'coating_3'].flatMap((line) => ['cam_a', 'cam_b', 'cam_c', 'cam_d'].map((camera) => `${line}/${camera}`));

function writeConfig(dir: string): string {
  const path = join(dir, 'lakeside.yaml');
  const tuning = [STABLE_MS !== null ? `      stable_ms: ${STABLE_MS}` : '', CONCURRENCY !== null ? `      concurrency: ${CONCURRENCY}` : ''].filter(Boolean).join('\n');
  writeFileSync(
    path,
    `plant: bench
api: { listen_port: 0 }
state_dir: ${join(dir, 'state')}
log_level: warn
datasets:
  - name: camera_frames
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: camera, type: string, nullable: false }
      - { name: file_name, type: string, nullable: false }
      - { name: image, type: blob, nullable: false }
sources:
  folders:
    - name: drop
      path: ${join(dir, 'drop')}
      dataset: camera_frames
      path_pattern: "{line}/{camera}/{file}"
      include: "\\\\.(jpe?g|png)$"
${tuning}
      fields:
        ts: { received_at: true }
        line: { path_field: line }
        camera: { path_field: camera }
        file_name: { path_field: file }
        image: { payload: true }
`,
  );
  return path;
}

interface Stats { ingested: number; refused: number; duplicates: number; retried: number; rows: number; commits: number; commitMs: number; cpuMs: number; rss: number; peakRss: number }

function startChild(configPath: string): Promise<BenchChild> {
  return forkBenchChild(new URL('./support/folder-daemon.ts', import.meta.url), [configPath]);
}

function frame(): Buffer {
  const bytes = Buffer.allocUnsafe(FILE_BYTES);
  randomFillSync(bytes);
  Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]).copy(bytes, 0); // SOI + APP0 "JFIF"
  bytes[FILE_BYTES - 2] = 0xff;
  bytes[FILE_BYTES - 1] = 0xd9; // EOI
  return bytes;
}

async function dropInPlace(path: string, bytes: Buffer): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    for (let at = 0; at < bytes.length; at += 65536) await handle.write(bytes, at, Math.min(65536, bytes.length - at));
  } finally {
    await handle.close();
  }
}

async function runMode(mode: string) {
  const dir = mkdtempSync(join(tmpdir(), 'lakeside-camera-bench-'));
  const drop = join(dir, 'drop');
  for (const camera of CAMERAS) mkdirSync(join(drop, camera), { recursive: true });
  const child = await startChild(writeConfig(dir));

  // Files written and not yet seen gone, by folder → name → time the write finished.
  const pending = new Map<string, Map<string, number>>(CAMERAS.map((c) => [c, new Map()]));
  let waiting = 0;
  let writing = 0;
  let written = 0;
  let removed = 0;
  let seq = 0;
  let dropping = true;
  let measuring = false;
  const latencies: number[] = [];
  let waitingSum = 0;
  let waitingSamples = 0;

  const fill = () => {
    while (dropping && writing < WRITERS && writing + waiting < BACKLOG) {
      const camera = CAMERAS[seq % CAMERAS.length]!;
      const name = `frame-${String(seq++).padStart(8, '0')}.jpg`;
      const path = join(drop, camera, name);
      const bytes = frame();
      writing++;
      const done = mode === 'rename' ? writeFile(`${path}.part`, bytes).then(() => rename(`${path}.part`, path)) : dropInPlace(path, bytes);
      void done.then(() => {
        writing--;
        written++;
        waiting++;
        pending.get(camera)!.set(name, performance.now());
        fill();
      });
    }
  };
  // Poll the camera folders; a file written before the listing started and absent from it is gone.
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const started = performance.now();
      for (const camera of CAMERAS) {
        const present = new Set(await readdir(join(drop, camera)));
        const now = performance.now();
        for (const [name, at] of pending.get(camera)!) {
          if (at >= started || present.has(name)) continue;
          pending.get(camera)!.delete(name);
          waiting--;
          removed++;
          if (measuring) latencies.push(now - at);
        }
      }
      if (measuring) (waitingSum += waiting), waitingSamples++;
      fill();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  const cpu0 = process.cpuUsage();
  fill();
  await new Promise((r) => setTimeout(r, 3000)); // warm up: watcher, JIT, first commits
  const first = await child.ask<Stats>('measure', 'stats');
  const removed0 = removed;
  const parentCpu0 = process.cpuUsage(cpu0);
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const last = await child.ask<Stats>('stats', 'stats');
  const elapsed = (performance.now() - t0) / 1000;
  const files = removed - removed0;
  measuring = false;
  const parentCpu = process.cpuUsage(cpu0);
  dropping = false;
  for (let i = 0; i < 200 && (waiting > 0 || writing > 0); i++) await new Promise((r) => setTimeout(r, 50)); // drain
  polling = false;
  await poller;
  const end = await child.ask<Stats>('stats', 'stats');
  await child.ask('stop', 'stopped');
  const blobFiles = readdirSync(join(dir, 'state', 'blobs')).filter((s) => /^[0-9a-f]{2}$/.test(s)).reduce((n, s) => n + readdirSync(join(dir, 'state', 'blobs', s)).length, 0);
  rmSync(dir, { recursive: true, force: true });

  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
  const meanLatencyS = latencies.reduce((s, x) => s + x, 0) / Math.max(1, latencies.length) / 1000;
  const fps = files / elapsed;
  const commits = last.commits - first.commits;
  const problems = [
    end.ingested !== removed ? `daemon ingested ${end.ingested} but ${removed} files left the folder` : '',
    end.rows !== end.ingested ? `${end.rows} rows for ${end.ingested} files` : '',
    blobFiles !== end.ingested ? `${blobFiles} blob files for ${end.ingested} files` : '',
    waiting > 0 ? `${waiting} files still in the folder after the drain` : '',
    end.refused + end.duplicates > 0 ? `${end.refused} refused, ${end.duplicates} duplicates` : '',
  ].filter(Boolean);
  const result = {
    mode,
    stableMs: STABLE_MS ?? 500,
    concurrency: CONCURRENCY ?? 4,
    backlog: BACKLOG,
    fileKb: FILE_BYTES / 1024,
    seconds: Math.round(elapsed),
    filesPerSecond: Math.round(fps),
    mbPerSecond: Number(((fps * FILE_BYTES) / 1e6).toFixed(1)),
    latencyP50Ms: at(0.5),
    latencyP99Ms: at(0.99),
    meanWaiting: Math.round(waitingSum / Math.max(1, waitingSamples)),
    // Little's law: with `meanWaiting` files in the folder and this mean drop → removed time, no more than this rate is possible.
    littleCapPerSecond: Math.round(waitingSum / Math.max(1, waitingSamples) / meanLatencyS),
    filesPerCommit: Number(((last.ingested - first.ingested) / Math.max(1, commits)).toFixed(1)),
    msPerCommit: Number(((last.commitMs - first.commitMs) / Math.max(1, commits)).toFixed(2)),
    daemonCpuPercent: Math.round(((last.cpuMs - first.cpuMs) / (elapsed * 1000)) * 100),
    dropperCpuPercent: Math.round(((parentCpu.user + parentCpu.system - parentCpu0.user - parentCpu0.system) / 1000 / (elapsed * 1000)) * 100),
    peakRssMb: Math.round(last.peakRss / 1048576),
    retried: end.retried,
    ingestedTotal: end.ingested,
    check: problems.length ? problems.join('; ') : 'ok',
  };
  console.log(JSON.stringify(result));
  return result;
}

console.log(`# camera-frames: ${FILE_BYTES / 1024} KB frames into ${CAMERAS.length} camera folders, ≤ ${BACKLOG} waiting, ${SECONDS} s per mode, stable_ms ${STABLE_MS ?? '500 (default)'}, concurrency ${CONCURRENCY ?? '4 (default)'}`);
const results = [];
for (const mode of MODES) results.push(await runMode(mode));
console.log(
  JSON.stringify({
    summary: 'camera-frames',
    target: 200,
    ...Object.fromEntries(results.map((r) => [r.mode, { filesPerSecond: r.filesPerSecond, mbPerSecond: r.mbPerSecond, peakRssMb: r.peakRssMb, latencyP99Ms: r.latencyP99Ms, check: r.check }])),
    meetsTarget: results.every((r) => r.filesPerSecond >= 200 && r.check === 'ok'),
  }),
);
