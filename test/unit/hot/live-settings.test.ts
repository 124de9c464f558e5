// A dataset's compaction window and L1 target size change live (a central policy,
// agent/hot/dataset-settings.ts): windows of the old size waiting as L0 files lose and
// duplicate nothing, new files follow the new window, and a target size changes how
// many L1 files the same rows make.
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../../config/schema.ts';
import { Sealer, type HotLogger } from '../../../agent/hot/sealer.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { l1RowsForTarget, MAX_L1_ROWS, MIN_L1_ROWS, recentBytesPerRow, windowProblem } from '../../../agent/hot/dataset-settings.ts';
import { HOT_LEVEL, type HotFileRecord } from '../../../agent/landing/schema.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { waitFor } from '../../support/wait-for.ts';
import { createFixture, MINUTE, sensorRows, sensorsConfig, sortRows, type Fixture } from './fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const hot = configSchema.shape.hot.parse({ seal_interval_ms: 3_600_000, compaction_interval_ms: 3_600_000, compaction_window_minutes: 10, compaction_grace_seconds: 15 });
const GRACE = 15_000_000;

function logger(): HotLogger & { errors: unknown[] } {
  const errors: unknown[] = [];
  return { errors, info: () => {}, warn: () => {}, error: (obj) => errors.push(obj) };
}

/** An hour boundary ahead of the wall clock: files created now are past their grace by the time windows there close. */
function futureHour(): number {
  return Math.ceil((Date.now() * 1000) / HOUR) * HOUR + 2 * HOUR;
}

const windowsOf = (files: HotFileRecord[]): number[] => [...new Set(files.map((f) => f.window_start_us))].sort((a, b) => a - b);

describe('live per-dataset hot settings', () => {
  it('switches a dataset from a 10- to a 5-minute window and to 15 mid-stream: every row in exactly one L1 file, new files in the new window', async () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const log = logger();
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot, logger: log });
    await sealer.start();
    const B = futureHour();
    const all = [];

    // 10 minutes (the config's): rows over [B, B+10 min) → one L0 window at B.
    const a = sensorRows(600, B, 1_000_000, 'a');
    fx.land(sensors, a);
    all.push(...a);
    expect(windowsOf((await sealer.sealNow()).results[0]!.files)).toEqual([B]);

    // 5 minutes while the 10-minute L0 file waits: rows over [B+5, B+15) → 5-minute windows.
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 5, targetFileBytes: null } });
    expect(sealer.maxCompactionWindowMinutes()).toBe(10); // the config's, still the largest
    const b = sensorRows(600, B + 5 * MINUTE, 1_000_000, 'b');
    fx.land(sensors, b);
    all.push(...b);
    expect(windowsOf((await sealer.sealNow()).results[0]!.files)).toEqual([B + 5 * MINUTE, B + 10 * MINUTE]);

    // Compaction closes windows by the 5-minute size now: B (the old 10-minute file and
    // nothing else) and B+5 are closed at B+10 min + grace, B+10 is not.
    const first = await sealer.compactNow(B + 10 * MINUTE + GRACE);
    expect(first.failures).toEqual([]);
    expect(first.results[0]!.windows).toBe(2);
    const l1First = first.results[0]!.added.filter((f) => f.level === HOT_LEVEL.L1);
    expect(windowsOf(l1First)).toEqual([B, B + 5 * MINUTE]);
    for (const f of l1First.filter((f) => f.window_start_us === B + 5 * MINUTE)) expect(f.max_ts_us).toBeLessThan(B + 10 * MINUTE);
    // The old window's file keeps its 10 minutes (a differently sized L1 file, nothing moved).
    expect(Math.max(...l1First.filter((f) => f.window_start_us === B).map((f) => f.max_ts_us))).toBeGreaterThanOrEqual(B + 5 * MINUTE);

    // 15 minutes: rows over [B+10, B+30) → windows B (late for an already compacted
    // window: an extra L1 file) and B+15; the 5-minute L0 at B+10 still waits.
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 15, targetFileBytes: null } });
    expect(sealer.maxCompactionWindowMinutes()).toBe(15);
    const c = sensorRows(600, B + 10 * MINUTE, 2_000_000, 'c');
    fx.land(sensors, c);
    all.push(...c);
    expect(windowsOf((await sealer.sealNow()).results[0]!.files)).toEqual([B, B + 15 * MINUTE]);

    const later = B + 2 * DAY;
    const second = await sealer.compactNow(later);
    const l1Second = second.results[0]!.added.filter((f) => f.level === HOT_LEVEL.L1);
    expect(windowsOf(l1Second)).toEqual([B, B + 10 * MINUTE, B + 15 * MINUTE]);
    // The new 15-minute window holds 15 minutes of rows.
    expect(Math.max(...l1Second.filter((f) => f.window_start_us === B + 15 * MINUTE).map((f) => f.max_ts_us))).toBeGreaterThanOrEqual(B + 25 * MINUTE);
    await sealer.compactNow(later); // merges the closed hour
    await sealer.stop();

    // Exactly once: no L0 left, nothing landed, the L1 files' record counts add up to
    // every row, and the rows read back through the registry are the rows landed.
    const files = hotFilesOf(fx.db, 'sensors');
    expect(files.filter((f) => f.level === HOT_LEVEL.L0)).toEqual([]);
    expect(fx.landedCount(sensors)).toBe(0);
    const l1 = files.filter((f) => f.level === HOT_LEVEL.L1);
    expect(l1.reduce((n, f) => n + f.record_count, 0)).toBe(all.length);
    const read = readHotTier(fx.stateDir, 'sensors');
    expect(read.fromFiles).toBe(all.length);
    expect(sortRows(read.rows)).toEqual(sortRows(all));
    // Every file holds rows of one UTC day.
    for (const f of l1) expect(Math.floor(f.min_ts_us / DAY)).toBe(Math.floor(f.max_ts_us / DAY));
    expect(log.errors).toEqual([]);
  });

  it('a target file size changes how many L1 files the same rows make, estimated from the dataset\'s recent L1 files', async () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot, l1_max_rows: 100_000, logger: logger() });
    await sealer.start();
    const B = futureHour();
    const later = B + 2 * DAY;
    const perLine = (files: HotFileRecord[]): Map<string, number> => {
      const counts = new Map<string, number>();
      for (const f of files.filter((f) => f.level === HOT_LEVEL.L1)) counts.set(f.partition_json, (counts.get(f.partition_json) ?? 0) + 1);
      return counts;
    };

    // A target with no L1 history yet: the configured row cap (one file per line).
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 10, targetFileBytes: 1 } });
    const rows = (startUs: number, tag: string) => sensorRows(9000, startUs, 60_000, tag); // 3 lines × 3000 rows in 9 minutes
    fx.land(sensors, rows(B, 'a'));
    await sealer.sealNow();
    const plain = (await sealer.compactNow(later)).results[0]!.added;
    expect([...perLine(plain).values()]).toEqual([1, 1, 1]);

    // Now with history: a target of ~1200 rows' worth of bytes splits each line's 3000 rows.
    const bytesPerRow = recentBytesPerRow(fx.db, 'sensors')!;
    expect(bytesPerRow).toBeGreaterThan(0);
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 10, targetFileBytes: Math.round(1200 * bytesPerRow) } });
    fx.land(sensors, rows(B + 10 * MINUTE, 'b'));
    await sealer.sealNow();
    const split = (await sealer.compactNow(later)).results[0]!.added;
    const cap = l1RowsForTarget(Math.round(1200 * bytesPerRow), recentBytesPerRow(fx.db, 'sensors'), 100_000);
    expect(cap).toBeGreaterThanOrEqual(MIN_L1_ROWS);
    expect([...perLine(split).values()]).toEqual([3, 3, 3]);
    for (const f of split.filter((f) => f.level === HOT_LEVEL.L1)) expect(f.record_count).toBeLessThanOrEqual(1200);

    // Back to the config's cap (the policy no longer sets it): one file per line again.
    sealer.applyDatasetSettings({});
    expect(sealer.currentDatasetSettings()).toEqual({ sensors: { compactionWindowMinutes: 10, targetFileBytes: null } });
    fx.land(sensors, rows(B + 20 * MINUTE, 'c'));
    await sealer.sealNow();
    expect([...perLine((await sealer.compactNow(later)).results[0]!.added).values()]).toEqual([1, 1, 1]);
    await sealer.stop();
    expect(hotFilesOf(fx.db, 'sensors').filter((f) => f.level === HOT_LEVEL.L1).reduce((n, f) => n + f.record_count, 0)).toBe(27_000);
  });

  it('refuses a window that does not divide a day, changing nothing; ignores names that are not its datasets', async () => {
    fx = createFixture();
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot, logger: logger() });
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 5, targetFileBytes: null }, blobs: { compactionWindowMinutes: 7, targetFileBytes: null } });
    expect(() => sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 7, targetFileBytes: null } })).toThrow(/dataset sensors: compaction_window_minutes 7 does not divide a day/);
    expect(() => sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 5, targetFileBytes: 0 } })).toThrow(/target_file_bytes 0/);
    expect(sealer.currentDatasetSettings()).toEqual({ sensors: { compactionWindowMinutes: 5, targetFileBytes: null } });
    expect([1, 5, 10, 15, 30, 45, 60, 120, 1440].map(windowProblem)).toEqual(Array(9).fill(null));
    expect([7, 50, 0, 2880, 2.5].map((m) => windowProblem(m) !== null)).toEqual(Array(5).fill(true));
    expect(l1RowsForTarget(1 << 30, 1, 4_000_000)).toBe(MAX_L1_ROWS);
    expect(l1RowsForTarget(10, 100, 4_000_000)).toBe(MIN_L1_ROWS);
    expect(l1RowsForTarget(64 << 20, null, 4_000_000)).toBe(4_000_000);
    // The config file refuses such a window too.
    expect(configSchema.shape.hot.safeParse({ compaction_window_minutes: 7 }).success).toBe(false);
  });

  it('a respawned worker keeps the settings in force', async () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const sealer = new Sealer({ dbPath: fx.dbPath, stateDir: fx.stateDir, datasets: [sensorsConfig], hot, logger: logger() });
    await sealer.start();
    sealer.applyDatasetSettings({ sensors: { compactionWindowMinutes: 5, targetFileBytes: null } });
    await sealer.sealNow(); // the settings message went before it
    // Kill the worker: the next step spawns a new one (recovery first), with the settings.
    const internals = sealer as unknown as { worker: Promise<{ terminate(): Promise<number> }> | null };
    await (await internals.worker!).terminate();
    await waitFor(() => internals.worker === null, 'the dead worker to be dropped');
    const B = futureHour();
    fx.land(sensors, sensorRows(20, B + 7 * MINUTE, 1_000_000));
    expect(windowsOf((await sealer.sealNow()).results[0]!.files)).toEqual([B + 5 * MINUTE]);
    await sealer.stop();
  });
});
