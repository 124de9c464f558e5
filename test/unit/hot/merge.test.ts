import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Dataset, RowValue } from '../../../config/dataset.ts';
import { batchToRows, columnsFromRows } from '../../../agent/hot/columns.ts';
import { compactDataset, sortByTime } from '../../../agent/hot/compact.ts';
import { mergeDataset, RetiredFiles } from '../../../agent/hot/merge.ts';
import { decodeParquet } from '../../../agent/hot/parquet-reader.ts';
import { recoverHotTier } from '../../../agent/hot/recovery.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { computeRollup } from '../../../agent/hot/rollup.ts';
import { rollupSchema, type RollupSchema } from '../../../agent/hot/rollup-schema.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { timeValues } from '../../../agent/hot/columns.ts';
import type { HotFileRecord } from '../../../agent/landing/schema.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { compactOptions, createFixture, LATER, MINUTE, sealOptions, sortRows, T0, type Fixture } from './fixture.ts';
import { metricsConfig, metricsRows } from './rollup-fixture.ts';
import { compactedMetrics, HOUR, MID } from './merge-fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

const CRASH_STEP = new URL('./crash-step.ts', import.meta.url).pathname;

/** 3000 rows from 14:40 to 16:20 (hours 14, 15, 16), landed, sealed and compacted into 10-minute windows. */
function compacted(n = 3000): { metrics: Dataset; rows: RowValue[][] } {
  const c = compactedMetrics(n);
  fx = c.fx;
  return c;
}

const level = (n: number): HotFileRecord[] => hotFilesOf(fx.db, 'metrics').filter((f) => f.level === n);
const tierRows = (): RowValue[][] => sortRows(readHotTier(fx.stateDir, 'metrics').rows);

function fileRows(dataset: Dataset, path: string): RowValue[][] {
  return batchToRows(dataset, decodeParquet(dataset, readFileSync(join(fx.stateDir, path))));
}

/** The rollup rows of `rows` computed in one go (the truth the merged rollup files must equal). */
function directRollup(schema: RollupSchema, rows: RowValue[][]): RowValue[][] {
  const batch = columnsFromRows(schema.source, rows, 0);
  return sortRows(batchToRows(schema.dataset, computeRollup(schema, batch, sortByTime(timeValues(batch)))));
}

function rollupRows(schema: RollupSchema): RowValue[][] {
  return sortRows(level(2).flatMap((f) => fileRows(schema.dataset, f.path)));
}

/** Stream order (line, then sensor with nulls first), then time. */
function streamKey(row: RowValue[]): string {
  return `${row[1]}\0${row[2] === null ? '' : `\u0001${row[2]}`}\0${String(row[0]).padStart(20, '0')}`;
}

describe('merge of closed hours and days', () => {
  it('merges the L1 files of each closed hour and partition into one file sorted by stream then time; every row once', () => {
    const { metrics, rows } = compacted();
    const inputs = hotFilesOf(fx.db, 'metrics');
    expect(level(1)).toHaveLength(20); // 10 windows × 2 lines
    expect(level(2)).toHaveLength(10);
    const before = tierRows();
    expect(before).toEqual(sortRows(rows));

    const result = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
    expect(result.errors).toEqual([]);
    expect(result.merges).toBe(6 + 3); // 3 hours × 2 lines of L1, 3 hours of rollups
    expect(result.removed.sort()).toEqual(inputs.map((f) => f.path).sort());
    for (const f of inputs) expect(existsSync(join(fx.stateDir, f.path))).toBe(false);
    expect(readdirSync(join(fx.stateDir, 'hot/metrics/L1')).sort()).toEqual(['20261121T1400Z', '20261121T1500Z', '20261121T1600Z']); // emptied window dirs removed
    // Ids: L0 1–10; window k (14:40 + 10k min) compacted to L1 line_0 11+3k, line_1 12+3k, rollup 13+3k.
    expect(level(1).map((f) => [f.path, f.window_start_us])).toEqual([
      ['hot/metrics/L1/20261121T1400Z/line=line_0/h11-14-0.parquet', T0 - 40 * MINUTE],
      ['hot/metrics/L1/20261121T1400Z/line=line_1/h12-15-0.parquet', T0 - 40 * MINUTE],
      ['hot/metrics/L1/20261121T1500Z/line=line_0/h17-32-0.parquet', T0 + 20 * MINUTE],
      ['hot/metrics/L1/20261121T1500Z/line=line_1/h18-33-0.parquet', T0 + 20 * MINUTE],
      ['hot/metrics/L1/20261121T1600Z/line=line_0/h35-38-0.parquet', T0 + 80 * MINUTE],
      ['hot/metrics/L1/20261121T1600Z/line=line_1/h36-39-0.parquet', T0 + 80 * MINUTE],
    ]);
    expect(level(2).map((f) => [f.path, f.min_ts_us, f.max_ts_us])).toEqual([
      ['hot/metrics/R1/20261121T1400Z/h13-16.parquet', T0, T0 + 20 * MINUTE - 2_000_000],
      ['hot/metrics/R1/20261121T1500Z/h19-34.parquet', T0 + 20 * MINUTE, T0 + 80 * MINUTE - 2_000_000],
      ['hot/metrics/R1/20261121T1600Z/h37-40.parquet', T0 + 80 * MINUTE, T0 + 100 * MINUTE - 2_000_000],
    ]);
    expect(tierRows()).toEqual(before);

    const fieldIds = metrics.columns.map((c) => String(c.fieldId)).sort();
    for (const f of level(1)) {
      const got = fileRows(metrics, f.path);
      expect(got.map(streamKey)).toEqual(got.map(streamKey).sort());
      expect(new Set(got.map((r) => r[1]))).toEqual(new Set([JSON.parse(f.partition_json).line]));
      const times = got.map((r) => r[0] as number);
      expect([f.min_ts_us, f.max_ts_us, f.record_count]).toEqual([Math.min(...times), Math.max(...times), got.length]);
      const stats = JSON.parse(f.stats_json) as { record_count: number; value_counts: Record<string, number>; lower_bounds: Record<string, unknown> };
      expect(stats.record_count).toBe(got.length);
      expect(Object.keys(stats.value_counts).sort()).toEqual(fieldIds);
      expect(stats.lower_bounds[String(metrics.columns[0]!.fieldId)]).toBe(f.min_ts_us);
    }
    const schema = rollupSchema(metrics)!;
    expect(rollupRows(schema)).toEqual(directRollup(schema, rows));
    for (const f of level(2)) {
      const got = fileRows(schema.dataset, f.path).map((r) => [r[1], r[2], r[0]]);
      expect(got.map((r) => JSON.stringify(r))).toEqual(
        [...got].sort((a, b) => streamKey([a[2]!, a[0]!, a[1]!]).localeCompare(streamKey([b[2]!, b[0]!, b[1]!]))).map((r) => JSON.stringify(r)),
      );
    }
    // Merged outputs alone are never merged again.
    expect(mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID).merges).toBe(0);
  });

  it('waits until the hour is closed (end + one window + grace) and no L0 file waits in it', () => {
    const { metrics, rows } = compacted();
    // 15:11 is hour 14's end + 10 min + 60 s: one µs earlier nothing is closed.
    expect(mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, T0 + 31 * MINUTE - 1).merges).toBe(0);
    const late = metricsRows(5, T0 + 1_000, 1_000_000, 3);
    fx.land(metrics, late);
    sealDataset(fx.db, metrics, fx.stateDir, sealOptions);
    const result = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, T0 + 31 * MINUTE);
    expect(result.merges).toBe(0); // hour 14 closed, but its late L0 file waits for compaction
    expect(mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID).added.map((f) => f.path)).not.toContain(expect.stringContaining('T1400Z'));
    compactDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER);
    const third = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
    expect(third.added.every((f) => f.path.includes('20261121T1400Z'))).toBe(true);
    expect(third.merges).toBe(3); // hour 14: 2 lines + rollups
    expect(tierRows()).toEqual(sortRows([...rows, ...late]));
  });

  it('merges late files into a merged hour again, folding rollup rows of the same minute and stream', () => {
    const { metrics, rows } = compacted();
    const schema = rollupSchema(metrics)!;
    mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
    const all = [...rows];
    for (const round of [1, 2]) {
      // Late rows in minutes and streams the merged hour already holds.
      const late = metricsRows(40, T0 + round * 700_001, 7_000_000, round * 5);
      all.push(...late);
      fx.land(metrics, late);
      sealDataset(fx.db, metrics, fx.stateDir, { ...sealOptions, nowUs: () => LATER });
      compactDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER + 61_000_000);
      expect(level(2).length).toBe(4); // 3 merged hours + the late rows' rollup file
      const overlapping = level(2).reduce((n, f) => n + f.record_count, 0);
      const result = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
      expect(result.errors).toEqual([]);
      expect(result.merges).toBe(3);
      expect(level(1)).toHaveLength(6);
      expect(level(2)).toHaveLength(3);
      expect(tierRows()).toEqual(sortRows(all));
      const merged = rollupRows(schema);
      expect(merged).toEqual(directRollup(schema, all));
      expect(merged.length).toBeLessThan(overlapping); // keys were shared and folded
      const keys = new Set(merged.map((r) => JSON.stringify(r.slice(0, 3))));
      expect(keys.size).toBe(merged.length);
    }
  });

  it('merges the rollups of a closed day into one file; hours of an open day stay hourly', () => {
    const { metrics, rows } = compacted();
    const schema = rollupSchema(metrics)!;
    mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
    expect(level(2).map((f) => f.path.split('/')[3])).toEqual(['20261121T1400Z', '20261121T1500Z', '20261121T1600Z']);
    const result = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, LATER);
    expect(result.merges).toBe(1);
    expect(level(2).map((f) => f.path.replace(/\d+-\d+/, 'ids'))).toEqual(['hot/metrics/R1/20261121T0000Z/dids.parquet']);
    expect(level(2)[0]!.min_ts_us).toBe(T0);
    expect(rollupRows(schema)).toEqual(directRollup(schema, rows));
    expect(level(1)).toHaveLength(6); // L1 files stay hourly
    expect(tierRows()).toEqual(sortRows(rows));
  });

  it('splits a merged hour past l1MaxRows, and leaves a group above mergeMaxRows alone', () => {
    const { metrics, rows } = compacted();
    const result = mergeDataset(fx.db, metrics, fx.stateDir, { ...compactOptions, l1MaxRows: 400, mergeMaxRows: 100_000 }, MID);
    expect(result.errors).toEqual([]);
    expect(level(1).filter((f) => f.path.includes('T1500Z/line=line_0')).map((f) => [f.path.slice(-10), f.record_count])).toEqual([
      ['-0.parquet', 400],
      ['-1.parquet', 400],
      ['-2.parquet', 100],
    ]);
    expect(tierRows()).toEqual(sortRows(rows));

    fx.close();
    const { metrics: again } = compacted();
    // 150 rows per window and line: hours 14 and 16 hold 300 rows per line, hour 15 900.
    const capped = mergeDataset(fx.db, again, fx.stateDir, { ...compactOptions, mergeMaxRows: 300 }, MID);
    expect(capped.merges).toBe(2 + 2 + 3);
    expect(level(1).filter((f) => /L1\/20261121T15\d0Z\//.test(f.path)).map((f) => f.path.includes('/h'))).toEqual(Array(12).fill(false));
  });

  it('merges at most mergeRowsPerStep input rows a call (at least one group); the next calls do the rest', () => {
    const { metrics, rows } = compacted();
    const steps: number[] = [];
    for (let merges = -1; merges !== 0; ) {
      merges = mergeDataset(fx.db, metrics, fx.stateDir, { ...compactOptions, mergeRowsPerStep: 400 }, MID).merges;
      steps.push(merges);
    }
    // A group runs while budget is left: L1 hour 14 (300 + 300 rows per line), hour 15
    // line_0 (900), line_1 (900), hour 16 (300 + 300); then the rollups of hours 14 and
    // 15 (120 + 360 rows), hour 16 (120); then nothing is left.
    expect(steps).toEqual([2, 1, 1, 2, 2, 1, 0]);
    expect(level(1)).toHaveLength(6);
    expect(tierRows()).toEqual(sortRows(rows));
  });

  it('a span that just got a file from the same step\'s compaction waits for the next step', () => {
    const { metrics } = compacted();
    const hour15 = level(1).find((f) => f.path.includes('20261121T1520Z/line=line_1'))!;
    const first = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID, new Set([hour15.path]));
    expect(first.errors).toEqual([]);
    expect(first.added.filter((f) => f.level === 1).map((f) => f.path.split('/').slice(3, 5).join('/'))).toEqual([
      '20261121T1400Z/line=line_0',
      '20261121T1400Z/line=line_1',
      '20261121T1500Z/line=line_0',
      '20261121T1600Z/line=line_0',
      '20261121T1600Z/line=line_1',
    ]);
    expect(mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID).added.map((f) => f.path.split('/').slice(3, 5).join('/'))).toEqual(['20261121T1500Z/line=line_1']);
  });

  it('retired inputs stay on disk until their delay passed', () => {
    const { metrics } = compacted();
    let clock = 1_000;
    const retired = new RetiredFiles(fx.stateDir, 60_000, () => clock);
    const result = mergeDataset(fx.db, metrics, fx.stateDir, { ...compactOptions, retire: (p) => retired.add(p) }, MID);
    expect(retired.size).toBe(result.removed.length);
    for (const p of result.removed) expect(existsSync(join(fx.stateDir, p))).toBe(true);
    clock += 59_999;
    expect(retired.unlinkDue()).toBe(0);
    clock += 1;
    expect(retired.unlinkDue()).toBe(result.removed.length);
    for (const p of result.removed) expect(existsSync(join(fx.stateDir, p))).toBe(false);
  });
});

/** Runs one merge step in a child frozen at `point`, kills it with SIGKILL; returns the files the failpoint named. */
async function crashMergeAt(point: 'merge.after-publish' | 'merge.after-commit'): Promise<string[]> {
  const child = spawn(process.execPath, [CRASH_STEP, fx.stateDir, 'merge', String(MID), 'metrics'], {
    env: { ...process.env, LAKESIDE_FAILPOINTS: point },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const files = await new Promise<string[]>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const line = stderr.split('\n').find((l) => l.includes(`"failpoint":"${point}"`));
      if (line) resolve((JSON.parse(line) as { files: string[] }).files);
    });
    void exited.then(() => reject(new Error(`merge child exited before failpoint ${point}: ${stderr}`)));
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return files;
}

describe('merge crashes (SIGKILL at a failpoint, then recovery)', () => {
  it('between publishing the merged file and its commit: no duplicate, no loss', async () => {
    const { metrics, rows } = compacted();
    const registered = hotFilesOf(fx.db, 'metrics');
    const published = await crashMergeAt('merge.after-publish');
    expect(published).toEqual(['hot/metrics/L1/20261121T1400Z/line=line_0/h11-14-0.parquet']);
    expect(existsSync(join(fx.stateDir, published[0]!))).toBe(true); // on disk, not registered
    expect(hotFilesOf(fx.db, 'metrics')).toEqual(registered);
    expect(tierRows()).toEqual(sortRows(rows));

    const report = recoverHotTier(fx.db, fx.stateDir);
    expect(report.orphansDeleted).toEqual(published);
    expect(report.missing).toEqual([]);
    expect(tierRows()).toEqual(sortRows(rows));
    // The merge runs again from the same inputs, to the same name.
    const result = mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID);
    expect(result.errors).toEqual([]);
    expect(result.added[0]!.path).toBe(published[0]);
    expect(tierRows()).toEqual(sortRows(rows));
    expect(recoverHotTier(fx.db, fx.stateDir).orphansDeleted).toEqual([]);
  });

  it('between the commit and the unlink of the inputs: no duplicate, no loss', async () => {
    const { metrics, rows } = compacted();
    const inputs = await crashMergeAt('merge.after-commit');
    expect(inputs).toEqual(['hot/metrics/L1/20261121T1440Z/line=line_0/1-1-p0-0.parquet', 'hot/metrics/L1/20261121T1450Z/line=line_0/2-2-p0-0.parquet']);
    for (const p of inputs) expect(existsSync(join(fx.stateDir, p))).toBe(true);
    const paths = hotFilesOf(fx.db, 'metrics').map((f) => f.path);
    for (const p of inputs) expect(paths).not.toContain(p);
    expect(paths).toContain('hot/metrics/L1/20261121T1400Z/line=line_0/h11-14-0.parquet');
    expect(tierRows()).toEqual(sortRows(rows));

    const report = recoverHotTier(fx.db, fx.stateDir);
    expect(report.orphansDeleted.sort()).toEqual([...inputs].sort());
    expect(tierRows()).toEqual(sortRows(rows));
    expect(mergeDataset(fx.db, metrics, fx.stateDir, compactOptions, MID).errors).toEqual([]);
    expect(tierRows()).toEqual(sortRows(rows));
  });
});
