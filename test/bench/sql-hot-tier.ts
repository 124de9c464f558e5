/**
 * Benchmark of on-site SQL over a 72-hour hot tier (issue 3, "Measure" bullet 2).
 *
 * For each row count N it generates a 72-hour hot tier straight into L1 files (no
 * ingest path), laid out as compaction and merge (agent/hot/merge.ts) leave it: for
 * each closed hour one L1 file per line, rows by stream (line, sensor) then time,
 * written by merge.ts's own writer; for the open hour one file per 10-minute window
 * and line, rows by time; the project's Parquet writer (ZSTD, row groups of
 * `hot.row_group_rows`), every file registered in `hot_files`, so the QueryEngine sees
 * exactly what the daemon would. Then it starts a QueryEngine (config defaults:
 * memory limit, `threads`) in a child process and times four operator questions,
 * 1 warm-up + 3 timed runs each, median reported:
 *   (a) 1-hour aggregate for one line: avg/min/max per sensor over the last hour (≤ 300 ms)
 *   (b) 72-hour group-by per stream (line, sensor) and hour over raw rows (≤ 5 s), the
 *       hour written as an operator should write it: time_bucket(INTERVAL 1 HOUR, ts)
 *   (b-dt) the same with date_trunc('hour', ts), reported for comparison: on
 *       TIMESTAMPTZ it goes through the ICU calendar for every row
 *   (b') the same with the hour as an integer (epoch_us(ts) // 3.6e9), a diagnostic
 *   (c) the same over the per-minute rollups, view `sensor_readings_1m` (≤ 200 ms);
 *       the generator writes the rollup files compaction would (computeRollup over the
 *       window's rows in time order, the rollup Parquet schema, r1Path, level 2)
 *   (d) defects per shift (06/14/22) and line over 72 hours, from inspections (≤ 2 s)
 *
 * Data: `sensor_readings` (ts, line, sensor, value, unit; stream key [line, sensor],
 * partitioned by line): 4 coating lines × 64 sensors (16 each of temperature,
 * humidity, pressure, vibration), one reading per sensor every P seconds, P chosen so
 * that 72 h hold ≥ N rows (N = 300M: P ≈ 0.22 s, i.e. ≈ 4.5 Hz per sensor); values are
 * a daily cycle + slow drift + noise at the sensor's resolution (0.01). `inspections`
 * (ts, line, inspection_id, passed, defect_label, confidence): one inspected part per
 * second per line (≈ 1M rows over 72 h), ≈ 2–4 % defects (more on the night shift).
 * Generation runs on 2 worker threads (typed arrays, dictionary strings, encodeParquet,
 * atomic writes); the main thread registers the files in one transaction. The
 * rollups too are what the daemon would hold: per closed hour one rollup file (merge.ts's
 * writer over the hour's rows), per window of the open hour one (as compact.ts writes
 * it); then the daemon's merge itself (mergeDataset) folds the closed days' hours into
 * one rollup file a day.
 *
 *   node test/bench/sql-hot-tier.ts                  N = 10M, 100M, 300M
 *   node test/bench/sql-hot-tier.ts 10000000         only N = 10M (also BENCH_ROWS=10000000,100000000)
 *   node test/bench/sql-hot-tier.ts --quick          N = 2M, for a smoke run
 *   BENCH_KEEP=1 …                                   keep the generated state dir (printed)
 *   node test/bench/sql-hot-tier.ts --query <dir>    time the questions on a kept state dir
 *   BENCH_EXPLAIN=1 …                                also print EXPLAIN ANALYZE of each question
 *   BENCH_NO_DIAG=1 …                                skip the diagnostics (b-dt) and (b')
 *
 * Output: human lines, plus one JSON line per N (`{"rows":…}`) for run-all.ts. Data
 * lives in a temporary directory, deleted after each N unless BENCH_KEEP is set.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import { configSchema, datasetSchema, type DatasetConfig } from '../../config/schema.ts';
import { writeFileAtomic } from '../../agent/hot/atomic-file.ts';
import type { ColumnBatch, NumberColumn } from '../../agent/hot/columns.ts';
import { encodeParquet } from '../../agent/hot/parquet-writer.ts';
import { concatBatches, timeValues } from '../../agent/hot/columns.ts';
import { sortByTime } from '../../agent/hot/compact.ts';
import { l1Path, r1Path } from '../../agent/hot/paths.ts';
import { computeRollup } from '../../agent/hot/rollup.ts';
import { rollupSchema } from '../../agent/hot/rollup-schema.ts';
import { HOUR_US, mergeDataset, writeMergedL1, writeMergedRollup } from '../../agent/hot/merge.ts';
import { HOT_LEVEL, type HotFileRecord } from '../../agent/landing/schema.ts';
import { insertHotFiles, newHotFile, type NewHotFile } from '../../agent/hot/registry.ts';
import { applyPragmas, ensureSchema } from '../../agent/landing/schema.ts';
import { QueryEngine } from '../../agent/query/query-engine.ts';

// ---------------------------------------------------------------- the data model

const sensorsConfig: DatasetConfig = datasetSchema.parse({
  name: 'sensor_readings',
  time_column: 'ts',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'sensor', type: 'string', nullable: false },
    { name: 'value', type: 'double' },
    { name: 'unit', type: 'string' },
  ],
  stream_key: ['line', 'sensor'],
  partition_by: ['line'],
});

const inspectionsConfig: DatasetConfig = datasetSchema.parse({
  name: 'inspections',
  time_column: 'ts',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'inspection_id', type: 'string', nullable: false },
    { name: 'passed', type: 'boolean', nullable: false },
    { name: 'defect_label', type: 'string' },
    { name: 'confidence', type: 'double' },
  ],
  stream_key: ['line'],
  partition_by: ['line'],
});

const LINES = ['coating_line_1', 'coating_line_2', 'coating_line_3', 'coating_line_4'];
const KINDS = [
  { name: 'temperature', unit: '°C', base: 85, amp: 6, noise: 0.4 },
  { name: 'humidity', unit: '%RH', base: 45, amp: 8, noise: 0.8 },
  { name: 'pressure', unit: 'bar', base: 3.2, amp: 0.3, noise: 0.02 },
  { name: 'vibration', unit: 'mm/s', base: 2.5, amp: 0.8, noise: 0.3 },
];
const SENSORS_PER_KIND = 16;
const SENSORS = KINDS.flatMap((kind) => Array.from({ length: SENSORS_PER_KIND }, (_, i) => `${kind.name}_${String(i + 1).padStart(2, '0')}`));
const UNITS = KINDS.map((k) => k.unit);
const DEFECTS = ['scratch', 'bubble', 'pinhole', 'streak', 'contamination', 'edge_crack'];
const HOURS = 72;
const WINDOW_US = 10 * 60_000_000;
const WINDOWS = (HOURS * 3_600_000_000) / WINDOW_US;
const INSPECTIONS_PER_WINDOW = 600; // one part a second per line
/** The sealer's default (sealer.ts l1_max_rows). */
const L1_MAX_ROWS = 4_000_000;

/** Readings per sensor per window so that the 72 hours hold at least `rows` rows. */
function ticksPerWindow(rows: number): number {
  return Math.max(1, Math.ceil(rows / (LINES.length * SENSORS.length * WINDOWS)));
}

// ---------------------------------------------------------------- generation (worker threads)

/** One hour of event time: its windows (indices from the first window) and whether merge.ts would have merged it. */
interface GenHour {
  startUs: number;
  windows: number[];
  closed: boolean;
}

interface GenJob {
  stateDir: string;
  firstWindowUs: number;
  ticks: number;
  rowGroupRows: number;
  l1MaxRows: number;
  hours: GenHour[];
}

interface GenMessage {
  files: NewHotFile[];
  rows: number;
  bytes: number;
  rollupBytes: number;
}

/** xorshift32 in [0, 1). */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const DAY_US = 86_400_000_000;

function sensorBatch(job: GenJob, windowStartUs: number, line: number, random: () => number): ColumnBatch {
  const S = SENSORS.length;
  const n = job.ticks * S;
  const periodUs = WINDOW_US / job.ticks;
  const slotUs = periodUs / S;
  const ts = new Float64Array(n);
  const sensor = new Int32Array(n);
  const value = new Float64Array(n);
  const unit = new Int32Array(n);
  let i = 0;
  for (let k = 0; k < job.ticks; k++) {
    const tickUs = windowStartUs + k * periodUs;
    // The daily cycle moves slowly: one sine per tick, shared by the tick's sensors.
    const day = Math.sin((2 * Math.PI * (tickUs % DAY_US)) / DAY_US);
    for (let s = 0; s < S; s++) {
      const kindIndex = (s / SENSORS_PER_KIND) | 0;
      const kind = KINDS[kindIndex]!;
      ts[i] = Math.floor(tickUs + s * slotUs + random() * slotUs * 0.5);
      sensor[i] = s;
      unit[i] = kindIndex;
      const offset = ((s % SENSORS_PER_KIND) - 8) * 0.05 * kind.amp + line * 0.1 * kind.amp;
      const v = kind.base + offset + kind.amp * day + kind.noise * (random() + random() - 1);
      value[i] = Math.round(v * 100) / 100;
      i++;
    }
  }
  return {
    length: n,
    columns: [
      { kind: 'number', values: ts, valid: null },
      { kind: 'dict', codes: new Int32Array(n), dictionary: [LINES[line]!], valid: null },
      { kind: 'dict', codes: sensor, dictionary: SENSORS, valid: null },
      { kind: 'number', values: value, valid: null },
      { kind: 'dict', codes: unit, dictionary: UNITS, valid: null },
    ],
  };
}

function inspectionBatch(windowIndex: number, windowStartUs: number, line: number, random: () => number): ColumnBatch {
  const n = INSPECTIONS_PER_WINDOW;
  const stepUs = WINDOW_US / n;
  const ts = new Float64Array(n);
  const ids = new Int32Array(n);
  const idStrings: string[] = new Array(n);
  const passed = new Uint8Array(n);
  const label = new Int32Array(n);
  const labelValid = new Uint8Array(n);
  const confidence = new Float64Array(n);
  const hour = new Date(windowStartUs / 1000).getUTCHours();
  const nightShift = hour >= 22 || hour < 6;
  const defectRate = (nightShift ? 0.04 : 0.02) + line * 0.002;
  for (let i = 0; i < n; i++) {
    ts[i] = Math.floor(windowStartUs + i * stepUs + random() * stepUs * 0.5);
    ids[i] = i;
    idStrings[i] = `L${line + 1}-${String(windowIndex * n + i).padStart(8, '0')}`;
    const defect = random() < defectRate;
    passed[i] = defect ? 0 : 1;
    if (defect) {
      label[i] = Math.floor(random() * DEFECTS.length);
      labelValid[i] = 1;
    }
    confidence[i] = Math.round((defect ? 0.55 + random() * 0.45 : 0.8 + random() * 0.2) * 1000) / 1000;
  }
  return {
    length: n,
    columns: [
      { kind: 'number', values: ts, valid: null },
      { kind: 'dict', codes: new Int32Array(n), dictionary: [LINES[line]!], valid: null },
      { kind: 'dict', codes: ids, dictionary: idStrings, valid: null },
      { kind: 'number', values: passed, valid: null },
      { kind: 'dict', codes: label, dictionary: DEFECTS, valid: labelValid },
      { kind: 'number', values: confidence, valid: null },
    ],
  };
}

function writeL1(stateDir: string, dataset: Dataset, batch: ColumnBatch, windowIndex: number, windowStartUs: number, line: number, rowGroupRows: number): NewHotFile {
  const { bytes, stats } = encodeParquet(dataset, batch, { rowGroupRows });
  const partition = { line: LINES[line]! };
  // Names as compaction derives them (first-last L0 ids): here the window index stands in.
  const path = l1Path(dataset.name, windowStartUs, partition, windowIndex, windowIndex, line, 0);
  writeFileAtomic(join(stateDir, path), bytes);
  const ts = (batch.columns[0] as NumberColumn).values;
  return newHotFile(
    {
      dataset: dataset.name,
      level: 1,
      path,
      window_start_us: windowStartUs,
      partition_json: JSON.stringify(partition),
      file_size_bytes: bytes.length,
      created_at_us: Date.now() * 1000,
    },
    stats,
    ts[0] as number,
    ts[ts.length - 1] as number,
  );
}

/**
 * The window's rollup file, as compactWindow (compact.ts) writes it: computeRollup over
 * all the window's rows (every line) in event-time order, encoded with the rollup
 * schema, at r1Path, registered as level 2 with the summarised rows' first/last time.
 */
function writeRollup(stateDir: string, dataset: Dataset, batches: ColumnBatch[], windowIndex: number, windowStartUs: number, rowGroupRows: number): NewHotFile | null {
  const rollup = rollupSchema(dataset);
  if (!rollup) return null;
  const merged = concatBatches(dataset, batches);
  if (merged.length === 0) return null;
  const times = timeValues(merged);
  const order = sortByTime(times);
  const { bytes, stats } = encodeParquet(rollup.dataset, computeRollup(rollup, merged, order), { rowGroupRows });
  const path = r1Path(dataset.name, windowStartUs, windowIndex, windowIndex);
  writeFileAtomic(join(stateDir, path), bytes);
  const fields = { dataset: dataset.name, level: HOT_LEVEL.ROLLUP, path, window_start_us: windowStartUs, partition_json: '{}', file_size_bytes: bytes.length, created_at_us: Date.now() * 1000 };
  return newHotFile(fields, stats, times[order[0]!] as number, times[order[order.length - 1]!] as number);
}

/** A closed hour as merge.ts leaves it: per line one L1 file by stream then time; one rollup file for all lines. */
function writeMergedHour(job: GenJob, hour: GenHour, datasets: Dataset[], batches: ColumnBatch[][][]): NewHotFile[] {
  const target = { stateDir: job.stateDir, spanStartUs: hour.startUs, ids: [hour.windows[0]!, hour.windows[hour.windows.length - 1]!] as [number, number], rowGroupRows: job.rowGroupRows, l1MaxRows: job.l1MaxRows, createdAtUs: Date.now() * 1000 };
  const files: NewHotFile[] = [];
  datasets.forEach((dataset, d) => {
    const perLine = batches[d]!;
    perLine.forEach((windows, line) => files.push(...writeMergedL1(dataset, concatBatches(dataset, windows), { line: LINES[line]! }, target)));
    const rollup = rollupSchema(dataset);
    if (!rollup) return;
    // What the merge of the hour's window rollup files gives: the rollup of the hour's rows, by stream then minute.
    const merged = concatBatches(dataset, perLine.flat());
    const times = timeValues(merged);
    const order = sortByTime(times);
    const rows = computeRollup(rollup, merged, order);
    files.push(writeMergedRollup(rollup, rows, 'h', [times[order[0]!]!, times[order[order.length - 1]!]!], target));
  });
  return files;
}

function runWorker(job: GenJob): void {
  const sensors = resolveDataset(sensorsConfig);
  const inspections = resolveDataset(inspectionsConfig);
  for (const hour of job.hours) {
    const files: NewHotFile[] = [];
    let rows = 0;
    // [dataset][line][window in the hour]
    const batches: ColumnBatch[][][] = [LINES.map(() => []), LINES.map(() => [])];
    for (const w of hour.windows) {
      const windowStartUs = job.firstWindowUs + w * WINDOW_US;
      const random = rng(0x9e3779b9 ^ (w * 7919 + 17));
      const sensorBatches: ColumnBatch[] = [];
      const inspectionBatches: ColumnBatch[] = [];
      for (let line = 0; line < LINES.length; line++) {
        const sb = sensorBatch(job, windowStartUs, line, random);
        const ib = inspectionBatch(w, windowStartUs, line, random);
        rows += sb.length;
        if (hour.closed) {
          batches[0]![line]!.push(sb);
          batches[1]![line]!.push(ib);
          continue;
        }
        sensorBatches.push(sb);
        inspectionBatches.push(ib);
        files.push(writeL1(job.stateDir, sensors, sb, w, windowStartUs, line, job.rowGroupRows), writeL1(job.stateDir, inspections, ib, w, windowStartUs, line, job.rowGroupRows));
      }
      if (hour.closed) continue;
      for (const r of [
        writeRollup(job.stateDir, sensors, sensorBatches, w, windowStartUs, job.rowGroupRows),
        writeRollup(job.stateDir, inspections, inspectionBatches, w, windowStartUs, job.rowGroupRows),
      ]) {
        if (r) files.push(r);
      }
    }
    if (hour.closed) files.push(...writeMergedHour(job, hour, [sensors, inspections], batches));
    const bytes = files.reduce((n, f) => n + f.file_size_bytes, 0);
    const rollupBytes = files.filter((f) => f.level === HOT_LEVEL.ROLLUP).reduce((n, f) => n + f.file_size_bytes, 0);
    parentPort!.postMessage({ files, rows, bytes, rollupBytes } satisfies GenMessage);
  }
}

const WORKERS = 2;

interface Generated {
  stateDir: string;
  dbPath: string;
  sensorRows: number;
  inspectionRows: number;
  files: number;
  bytes: number;
  sensorBytes: number;
  sensorFiles: number;
  rollupFiles: number;
  rollupRows: number;
  rollupBytes: number;
  rowGroupRows: number;
  genSeconds: number;
}

async function generate(rows: number): Promise<Generated> {
  const config = configSchema.parse({ plant: 'bench', datasets: [sensorsConfig, inspectionsConfig] });
  const rowGroupRows = config.hot.row_group_rows;
  const stateDir = mkdtempSync(join(tmpdir(), 'lakeside-sql-bench-'));
  const dbPath = join(stateDir, 'landing.db');
  const db = new Database(dbPath);
  applyPragmas(db);
  ensureSchema(db, [resolveDataset(sensorsConfig), resolveDataset(inspectionsConfig)]);
  const ticks = ticksPerWindow(rows);
  // The 72 hours end at the last whole window before now, so "the last hour" is recent data.
  const endUs = Math.floor((Date.now() * 1000) / WINDOW_US) * WINDOW_US;
  const firstWindowUs = endUs - WINDOWS * WINDOW_US;
  const nowUs = Date.now() * 1000;
  const mergeOptions = { compactionWindowMinutes: WINDOW_US / 60_000_000, compactionGraceSeconds: config.hot.compaction_grace_seconds, rowGroupRows, l1MaxRows: L1_MAX_ROWS };
  // An hour is merged (merge.ts) once its end + one window + the grace has passed.
  const settleUs = WINDOW_US + mergeOptions.compactionGraceSeconds * 1_000_000;
  const hours: GenHour[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const startUs = Math.floor((firstWindowUs + w * WINDOW_US) / HOUR_US) * HOUR_US;
    if (hours.at(-1)?.startUs !== startUs) hours.push({ startUs, windows: [], closed: startUs + HOUR_US + settleUs <= nowUs });
    hours.at(-1)!.windows.push(w);
  }
  const started = performance.now();
  const all: NewHotFile[] = [];
  let sensorRows = 0;
  let lastReport = started;
  await Promise.all(
    Array.from({ length: WORKERS }, (_, k) => {
      const job: GenJob = { stateDir, firstWindowUs, ticks, rowGroupRows, l1MaxRows: L1_MAX_ROWS, hours: hours.filter((_, h) => h % WORKERS === k) };
      const worker = new Worker(new URL(import.meta.url), { workerData: job });
      worker.on('message', (m: GenMessage) => {
        all.push(...m.files);
        sensorRows += m.rows;
        const now = performance.now();
        if (now - lastReport > 15_000) {
          lastReport = now;
          console.log(`  … ${(sensorRows / 1e6).toFixed(0)}M rows, ${((now - started) / 1000).toFixed(0)} s`);
        }
      });
      return new Promise<void>((resolve, reject) => {
        worker.on('error', reject);
        worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`generator worker exited with ${code}`))));
      });
    }),
  );
  // Registered in the order compaction registers them: window by window, partitions in path order.
  all.sort((a, b) => a.window_start_us - b.window_start_us || (a.dataset < b.dataset ? -1 : a.dataset > b.dataset ? 1 : 0) || (a.path < b.path ? -1 : 1));
  db.transaction(() => insertHotFiles(db, all))();
  // What is left to the daemon's own merge: the rollups of closed days (one file a day).
  for (const dataset of [sensorsConfig, inspectionsConfig].map(resolveDataset)) {
    const merged = mergeDataset(db, dataset, stateDir, mergeOptions, nowUs);
    if (merged.errors.length) throw new Error(`merge of ${dataset.name}: ${JSON.stringify(merged.errors)}`);
  }
  const registered = db.prepare('SELECT * FROM hot_files ORDER BY id').all() as HotFileRecord[];
  db.close();
  const genSeconds = (performance.now() - started) / 1000;
  const sensorFiles = registered.filter((f) => f.dataset === 'sensor_readings' && f.level !== HOT_LEVEL.ROLLUP);
  const rollups = registered.filter((f) => f.level === HOT_LEVEL.ROLLUP);
  return {
    stateDir,
    dbPath,
    sensorRows,
    inspectionRows: registered.filter((f) => f.dataset === 'inspections' && f.level !== HOT_LEVEL.ROLLUP).reduce((s, f) => s + f.record_count, 0),
    files: registered.length - rollups.length,
    rollupFiles: rollups.length,
    rollupRows: rollups.filter((f) => f.dataset === 'sensor_readings').reduce((s, f) => s + f.record_count, 0),
    rollupBytes: rollups.reduce((s, f) => s + f.file_size_bytes, 0),
    bytes: registered.reduce((n, f) => n + f.file_size_bytes, 0),
    sensorFiles: sensorFiles.length,
    sensorBytes: sensorFiles.reduce((s, f) => s + f.file_size_bytes, 0),
    rowGroupRows,
    genSeconds,
  };
}

// ---------------------------------------------------------------- the questions (child process)

interface Timing {
  name: string;
  target: number;
  medianMs: number | null;
  runsMs: number[];
  /** CPU time of the query process (DuckDB's threads included) per timed run, median: steadier than wall time on a loaded machine. */
  cpuMs?: number;
  rows: number;
  note?: string;
}

const silentLogger = { info: () => {}, warn: () => {}, error: (obj: object, msg?: string) => console.error(msg, obj) };

const QUESTIONS = {
  a: `SELECT sensor, count(*) AS n, avg(value) AS avg, min(value) AS min, max(value) AS max
      FROM sensor_readings
      WHERE line = 'coating_line_3' AND ts >= now() - INTERVAL 1 HOUR
      GROUP BY sensor ORDER BY sensor`,
  b: `SELECT line, sensor, time_bucket(INTERVAL 1 HOUR, ts) AS hour, count(*) AS n, avg(value) AS avg, min(value) AS min, max(value) AS max
      FROM sensor_readings
      WHERE ts >= now() - INTERVAL 72 HOUR
      GROUP BY ALL ORDER BY ALL`,
  /** (b) written with date_trunc: on TIMESTAMPTZ, the ICU calendar for every row. */
  bdt: `SELECT line, sensor, date_trunc('hour', ts) AS hour, count(*) AS n, avg(value) AS avg, min(value) AS min, max(value) AS max
      FROM sensor_readings
      WHERE ts >= now() - INTERVAL 72 HOUR
      GROUP BY ALL ORDER BY ALL`,
  /** (b) with the hour computed as an integer (UTC hours; no ICU calendar per row): shows what date_trunc on TIMESTAMPTZ costs. */
  b2: `SELECT line, sensor, make_timestamptz(h * 3600000000) AS hour, n, avg, min, max FROM (
        SELECT line, sensor, epoch_us(ts) // 3600000000 AS h, count(*) AS n, avg(value) AS avg, min(value) AS min, max(value) AS max
        FROM sensor_readings
        WHERE ts >= now() - INTERVAL 72 HOUR
        GROUP BY ALL) ORDER BY ALL`,
  d: `SELECT time_bucket(INTERVAL 8 HOUR, ts, TIMESTAMPTZ '2000-01-01 06:00:00') AS shift_start, line,
        count(*) AS inspected, count(*) FILTER (WHERE NOT passed) AS defects,
        round(100.0 * count(*) FILTER (WHERE NOT passed) / count(*), 2) AS defect_pct
      FROM inspections
      WHERE ts >= now() - INTERVAL 72 HOUR
      GROUP BY ALL ORDER BY ALL`,
};

/**
 * (c) over the rollup view, if there is one. Its columns are not fixed here (another
 * change builds it): the minute column is its first TIMESTAMPTZ column, and count,
 * sum, min and max are found by name.
 */
async function rollupQuestion(engine: QueryEngine): Promise<{ sql: string | null; note: string }> {
  const views = await engine.query(`SELECT view_name FROM duckdb_views() WHERE view_name = 'sensor_readings_1m'`);
  if (views.rows.length === 0) return { sql: null, note: 'view sensor_readings_1m does not exist yet: not measurable' };
  const described = await engine.query(`DESCRIBE sensor_readings_1m`);
  const columns = described.rows.map((r) => ({ name: String(r[0]), type: String(r[1]) }));
  const find = (re: RegExp): string | undefined => columns.find((c) => re.test(c.name))?.name;
  const time = columns.find((c) => c.type.startsWith('TIMESTAMP'))?.name;
  // agent/query/rollup-view.ts names them `<column>_count`, `_sum`, `_min`, `_max` (minute first).
  const count = find(/^value_count$/) ?? find(/(^|_)count$/);
  const sum = find(/^value_sum$/) ?? find(/(^|_)sum$/);
  const min = find(/^value_min$/) ?? find(/(^|_)min$/);
  const max = find(/^value_max$/) ?? find(/(^|_)max$/);
  const shape = columns.map((c) => `${c.name} ${c.type}`).join(', ');
  if (!time || !count || !sum || !min || !max) return { sql: null, note: `view sensor_readings_1m exists but its columns were not recognised (${shape})` };
  const q = (s: string): string => `"${s}"`;
  const sql = `SELECT line, sensor, time_bucket(INTERVAL 1 HOUR, ${q(time)}) AS hour, sum(${q(count)}) AS n, sum(${q(sum)}) / sum(${q(count)}) AS avg,
      min(${q(min)}) AS min, max(${q(max)}) AS max
    FROM sensor_readings_1m
    WHERE ${q(time)} >= now() - INTERVAL 72 HOUR
    GROUP BY ALL ORDER BY ALL`;
  const rows = await engine.query(`SELECT count(*) AS n FROM sensor_readings_1m`);
  const n = Number(rows.rows[0]?.[0] ?? 0);
  if (n === 0) return { sql: null, note: 'view sensor_readings_1m holds no rows: not measurable' };
  return { sql, note: `columns: ${shape}; ${n} rollup rows` };
}

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : Math.round(process.memoryUsage.rss() / 1048576);
}

async function timeQuestion(engine: QueryEngine, name: string, target: number, sql: string, timeoutMs: number): Promise<Timing> {
  const runsMs: number[] = [];
  const cpuMs: number[] = [];
  let rows = 0;
  for (let run = 0; run < 4; run++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const result = await engine.query(sql, { timeoutMs });
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    rows = result.rows.length;
    if (run > 0) {
      runsMs.push(ms);
      cpuMs.push((used.user + used.system) / 1000);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
  return { name, target, medianMs: median(runsMs), runsMs, rows, cpuMs: median(cpuMs) };
}

async function explain(engine: QueryEngine, name: string, sql: string): Promise<void> {
  const result = await engine.query(`EXPLAIN ANALYZE ${sql}`, { timeoutMs: 300_000 });
  console.log(`--- EXPLAIN ANALYZE (${name})`);
  for (const row of result.rows) console.log(String(row[1]));
}

async function runQuestions(stateDir: string): Promise<void> {
  const config = configSchema.parse({ plant: 'bench', state_dir: stateDir, datasets: [sensorsConfig, inspectionsConfig] });
  const engine = new QueryEngine({
    stateDir,
    dbPath: join(stateDir, 'landing.db'),
    datasets: config.datasets,
    query: config.query,
    logger: silentLogger,
    quarantineRefreshMs: 0,
  });
  console.log(`load average before the questions: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (${availableParallelism()} cores)`);
  let started = performance.now();
  await engine.start();
  const startMs = performance.now() - started;
  // A long group-by must be measured, not cut: the bench's own timeout is generous.
  const timeoutMs = Math.max(config.query.timeout_ms, 300_000);
  const timings: Timing[] = [];
  timings.push(await timeQuestion(engine, '(a) 1-hour aggregate, one line', 300, QUESTIONS.a, timeoutMs));
  timings.push(await timeQuestion(engine, '(b) 72 h per stream × hour, raw rows', 5000, QUESTIONS.b, timeoutMs));
  // The two diagnostics cost more than (a)–(d) together at 300M: BENCH_NO_DIAG=1 leaves them out.
  const diagnostic = async (name: string, sql: string): Promise<Timing> =>
    process.env.BENCH_NO_DIAG ? { name, target: 5000, medianMs: null, runsMs: [], rows: 0, note: 'skipped (BENCH_NO_DIAG)' } : timeQuestion(engine, name, 5000, sql, timeoutMs);
  timings.push(await diagnostic('(b-dt) same, date_trunc (comparison)', QUESTIONS.bdt));
  timings.push(await diagnostic("(b') same, integer hour (diagnostic)", QUESTIONS.b2));
  const rollup = await rollupQuestion(engine);
  if (rollup.sql) timings.push({ ...(await timeQuestion(engine, '(c) 72 h per stream × hour, rollups', 200, rollup.sql, timeoutMs)), note: rollup.note });
  else timings.push({ name: '(c) 72 h per stream × hour, rollups', target: 200, medianMs: null, runsMs: [], rows: 0, note: rollup.note });
  timings.push(await timeQuestion(engine, '(d) defects per shift, 72 h', 2000, QUESTIONS.d, timeoutMs));
  if (process.env.BENCH_EXPLAIN) {
    await explain(engine, 'a', QUESTIONS.a);
    await explain(engine, 'b', QUESTIONS.b);
    await explain(engine, 'b-dt', QUESTIONS.bdt);
    await explain(engine, "b'", QUESTIONS.b2);
    if (rollup.sql) await explain(engine, 'c', rollup.sql);
    await explain(engine, 'd', QUESTIONS.d);
  }
  started = performance.now();
  await engine.stop();
  process.stdout.write(
    `${JSON.stringify({ result: { startMs, stopMs: performance.now() - started, timings, threads: config.query.threads, memoryLimitBytes: config.query.memory_limit_bytes, peakRssMb: peakRssMb() } })}\n`,
  );
}

interface QueryReport {
  startMs: number;
  timings: Timing[];
  threads: number;
  memoryLimitBytes: number;
  peakRssMb: number;
}

/** The questions run in a child process, so its peak RSS is the query engine's own. */
function questionsInChild(stateDir: string): Promise<QueryReport> {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--query-child', stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      const lines = out.split('\n');
      for (const line of lines) if (!line.startsWith('{"result"')) if (line) console.log(line);
      const json = lines.find((l) => l.startsWith('{"result"'));
      if (code !== 0 || !json) reject(new Error(`query child exited with ${code}`));
      else resolve((JSON.parse(json) as { result: QueryReport }).result);
    });
  });
}

// ---------------------------------------------------------------- driver

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;
const fmtMs = (ms: number | null): string => (ms === null ? 'n/a' : ms < 10 ? ms.toFixed(1) : ms.toFixed(0));

function printReport(n: number, gen: Generated | null, report: QueryReport): void {
  console.log(`query engine: threads ${report.threads}, memory limit ${mb(report.memoryLimitBytes)}; start (views over every file) ${report.startMs.toFixed(0)} ms`);
  for (const t of report.timings) {
    const verdict = t.medianMs === null ? 'not measured' : t.medianMs <= t.target ? 'meets' : 'MISSES';
    console.log(
      `  ${t.name.padEnd(40)} median ${fmtMs(t.medianMs).padStart(6)} ms (runs ${t.runsMs.map(fmtMs).join(', ') || '-'}; cpu ${t.cpuMs === undefined ? '-' : fmtMs(t.cpuMs)} ms; ${t.rows} result rows) target ≤ ${t.target} ms: ${verdict}${t.note ? ` [${t.note}]` : ''}`,
    );
  }
  console.log(`  peak RSS of the query process: ${report.peakRssMb} MB`);
  console.log(
    JSON.stringify({
      rows: n,
      sensorRows: gen?.sensorRows,
      onDiskMb: gen ? Math.round(gen.bytes / 1048576) : undefined,
      genRowsPerSecond: gen ? Math.round(gen.sensorRows / gen.genSeconds) : undefined,
      startMs: Math.round(report.startMs),
      ...Object.fromEntries(report.timings.map((t) => [t.name.slice(1, t.name.indexOf(')')), t.medianMs === null ? null : Math.round(t.medianMs * 10) / 10])),
      cpuMs: Object.fromEntries(report.timings.map((t) => [t.name.slice(1, t.name.indexOf(')')), t.cpuMs === undefined ? null : Math.round(t.cpuMs)])),
      peakRssMb: report.peakRssMb,
    }),
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--query-child') return runQuestions(args[1]!);
  if (args[0] === '--query') {
    const report = await questionsInChild(args[1]!);
    printReport(0, null, report);
    return;
  }
  const fromArgs = args.filter((a) => /^\d+$/.test(a)).map(Number);
  const fromEnv = (process.env.BENCH_ROWS ?? '').split(',').filter(Boolean).map(Number);
  const counts = args.includes('--quick') ? [2_000_000] : fromArgs.length ? fromArgs : fromEnv.length ? fromEnv : [10_000_000, 100_000_000, 300_000_000];
  const summary: { n: number; gen: Generated; report: QueryReport }[] = [];
  for (const n of counts) {
    console.log(`\n=== N = ${n.toLocaleString('en-US')} sensor readings over ${HOURS} h`);
    const gen = await generate(n);
    const sensorMb = gen.sensorBytes / 1048576;
    console.log(
      `generated ${gen.sensorRows.toLocaleString('en-US')} readings + ${gen.inspectionRows.toLocaleString('en-US')} inspections → ${gen.files} L1 files (per line: one an hour by stream then time, one a window in the open hour; 2 datasets), ` +
        `+ ${gen.rollupFiles} rollup files (${gen.rollupRows.toLocaleString('en-US')} sensor rollup rows, ${mb(gen.rollupBytes)}), ` +
        `${mb(gen.bytes)} on disk (readings ${(gen.sensorBytes / gen.sensorRows).toFixed(2)} B/row, ${Math.round(gen.sensorRows / gen.sensorFiles).toLocaleString('en-US')} rows/file, row groups of ${gen.rowGroupRows}) ` +
        `in ${gen.genSeconds.toFixed(1)} s = ${Math.round(gen.sensorRows / gen.genSeconds).toLocaleString('en-US')} rows/s, ${(sensorMb / gen.genSeconds).toFixed(0)} MB/s (${WORKERS} workers)`,
    );
    console.log(`generation peak RSS (this process): ${peakRssMb()} MB`);
    try {
      const report = await questionsInChild(gen.stateDir);
      printReport(n, gen, report);
      summary.push({ n, gen, report });
    } finally {
      if (process.env.BENCH_KEEP) console.log(`kept ${gen.stateDir} (node test/bench/sql-hot-tier.ts --query ${gen.stateDir})`);
      else rmSync(gen.stateDir, { recursive: true, force: true });
    }
  }
  console.log('\n=== rows → median ms (1 warm-up + 3 runs), threads from the config');
  console.log("rows            (a) 1h/line  (b) 72h raw  (b-dt) trunc (b') int hr  (c) 72h 1m   (d) shifts   on disk   query peak RSS");
  console.log('target          ≤ 300        ≤ 5000       (compare)    (diag.)      ≤ 200        ≤ 2000');
  for (const { gen, report } of summary) {
    const ms = (i: number): string => fmtMs(report.timings[i]!.medianMs).padEnd(13);
    console.log(`${gen.sensorRows.toLocaleString('en-US').padEnd(16)}${ms(0)}${ms(1)}${ms(2)}${ms(3)}${ms(4)}${ms(5)}${mb(gen.bytes).padEnd(10)}${report.peakRssMb} MB`);
  }
}

if (isMainThread) {
  await main();
} else {
  runWorker(workerData as GenJob);
}
