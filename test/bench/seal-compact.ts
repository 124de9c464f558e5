/**
 * Benchmark of the hot tier: lands N sensor rows (time, line, sensor, value, unit;
 * ≈100 bytes each) in a temporary landing database, then times one seal (SQLite →
 * L0 Parquet) and one compaction (L0 → sorted L1 per line), in this thread (a seal
 * of more than one step also encodes on its encoder thread, agent/hot/seal-encoder.ts).
 * Target: ≥ 1,000,000 rows/s for each on a 2-core machine.
 *
 * Seal figures: "seal" is sealDataset's wall time, until the last registering commit
 * (every row then is in a registered file and no longer landed). The purge (physical
 * delete of the sealed rows) runs on the purge thread, overlapping the seal; "seal +
 * purge" is the wall time until it has finished too, the rate the landing table is
 * actually emptied at. Both are printed; the rows/s of "seal + purge" is the headline.
 *
 *   node test/bench/seal-compact.ts [rows=1000000]
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveDataset } from '../../config/dataset.ts';
import { sensorsConfig } from '../support/sensor-dataset.ts';
import { applyPragmas, ensureSchema } from '../../agent/landing/schema.ts';
import { compactDataset } from '../../agent/hot/compact.ts';
import { awaitPurges } from '../../agent/hot/purge.ts';
import { sealDataset } from '../../agent/hot/seal.ts';

const rows = Number(process.argv[2] ?? 1_000_000);
const dataset = resolveDataset(sensorsConfig);
const stateDir = mkdtempSync(join(tmpdir(), 'lakeside-bench-'));
const db = new Database(join(stateDir, 'landing.db'));
applyPragmas(db);
ensureSchema(db, [dataset]);

let peakRss = 0;
const sample = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MB`;

// Land: 25 minutes of readings from 8 lines × 50 sensors, slightly out of order.
db.pragma('synchronous = OFF');
const t0Us = Date.UTC(2026, 10, 21, 14, 40) * 1000;
const spanUs = 25 * 60_000_000;
const insert = db.prepare(`INSERT INTO landed_sensors (time, line, sensor, value, unit) VALUES (?, ?, ?, ?, ?)`);
const units = ['°C', '%RH', 'bar', 'mm/s'];
let started = performance.now();
const batch = 10_000;
for (let at = 0; at < rows; at += batch) {
  db.transaction(() => {
    for (let i = at; i < Math.min(rows, at + batch); i++) {
      const jitter = (i * 7919) % 2_000_000;
      const time = t0Us + Math.floor((i / rows) * spanUs) - jitter;
      insert.run(time, `coating_line_${i % 8}`, `sensor_${(i >> 3) % 50}_humidity_probe`, 40 + ((i * 13) % 1000) / 37, units[i % 4]);
    }
  })();
}
db.pragma('synchronous = FULL');
db.pragma('wal_checkpoint(TRUNCATE)');
console.log(`landed ${rows} rows in ${((performance.now() - started) / 1000).toFixed(2)} s`);

const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')} rows/s`;
const options = { compactionWindowMinutes: 10, compactionGraceSeconds: 60, rowGroupRows: 128 * 1024, sealMaxRows: 500_000, l1MaxRows: 4_000_000 };

started = performance.now();
const sealed = sealDataset(db, dataset, stateDir, options);
const sealMs = performance.now() - started;
const purged = awaitPurges();
const totalMs = performance.now() - started;
if (!purged.done || purged.errors.length) console.log('purge failed', purged);
const left = db.prepare(`SELECT count(*) FROM landed_sensors`).pluck().get() as number;
const t = sealed.timings;
console.log(`seal:    ${sealed.rows} rows → ${sealed.files.length} L0 files in ${sealMs.toFixed(0)} ms = ${rate(sealed.rows, sealMs)}`);
console.log(
  `         read ${t.readMs.toFixed(0)} ms, waiting for the encoder ${t.encodeWaitMs.toFixed(0)} ms, publish ${t.publishMs.toFixed(0)} ms, commit (register + watermark) ${t.commitMs.toFixed(0)} ms`,
);
console.log(`         encode ${t.encodeMs.toFixed(0)} ms (on the encoder thread, overlapping the reads, when the seal takes more than one step)`);
console.log(`         purge (other thread) done ${(totalMs - sealMs).toFixed(0)} ms after the seal returned; ${left} rows left in the table`);
console.log(`seal + purge: ${totalMs.toFixed(0)} ms = ${rate(sealed.rows, totalMs)}`);

started = performance.now();
const compacted = compactDataset(db, dataset, stateDir, options, t0Us + 24 * 3600e6 + Date.now() * 1000);
const compactMs = performance.now() - started;
if (compacted.errors.length) console.log('compaction errors', compacted.errors);
console.log(`compact: ${compacted.rows} rows, ${compacted.windows} windows → ${compacted.added.length} L1 files in ${compactMs.toFixed(0)} ms = ${rate(compacted.rows, compactMs)}`);
const bytes = compacted.added.reduce((s, f) => s + f.file_size_bytes, 0);
console.log(`L1 bytes: ${mb(bytes)} (${(bytes / rows).toFixed(1)} B/row)`);
clearInterval(sample);
peakRss = Math.max(peakRss, process.memoryUsage.rss());
console.log(`peak RSS: ${mb(peakRss)}`);
db.close();
rmSync(stateDir, { recursive: true, force: true });
