import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Evictor, measureDisk, type MeasureDisk } from '../../../tiering/evictor.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import type { TierState } from '../../../tiering/tier-map.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

const CONTEXT = { plant: 'ulm', agentId: 'ulm' };

async function register(f: TieringFixture): Promise<void> {
  await discoverNewFiles(f.db, f.map, f.stateDir, CONTEXT, f.clock.ms * 1000);
}

function setState(f: TieringFixture, path: string, state: TierState): void {
  f.db.prepare('UPDATE tier_files SET state = ? WHERE local_path = ?').run(state, path);
}

function hotPaths(f: TieringFixture): string[] {
  return f.db.prepare('SELECT path FROM hot_files ORDER BY id').pluck().all() as string[];
}

function evictor(f: TieringFixture, options: { patch?: Record<string, unknown>; measure?: MeasureDisk } = {}) {
  const log = recordingLogger();
  const pressure: boolean[] = [];
  const refreshes: { paths: string[]; registered: string[]; onDisk: boolean[] }[] = [];
  const config = f.config(options.patch);
  const e = new Evictor({
    db: f.db,
    map: f.map,
    config,
    stateDir: f.stateDir,
    logger: log.logger,
    measure: options.measure ?? measureDisk(f.db, f.stateDir, config.disk_budget.max_bytes ?? 1e15),
    beforeUnlink: async (paths) => {
      refreshes.push({ paths, registered: hotPaths(f), onDisk: paths.map((p) => existsSync(join(f.stateDir, p))) });
    },
    onPressure: (critical) => pressure.push(critical),
    nowMs: f.nowMs,
  });
  return { e, log, pressure, refreshes };
}

describe('evictor', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  it('retention: a file goes when older than the hot retention AND committed, never otherwise', async () => {
    f = await createTieringFixture();
    const oldCommitted = f.addL1('inspections', { ageHours: 80 });
    const oldUploaded = f.addL1('inspections', { ageHours: 90 });
    const oldLocal = f.addL1('readings', { ageHours: 100 });
    const youngCommitted = f.addL1('readings', { ageHours: 10 });
    const oldBlob = f.addBlob({ ageHours: 73 });
    await register(f);
    setState(f, oldCommitted.path, 'committed');
    setState(f, oldUploaded.path, 'uploaded');
    setState(f, youngCommitted.path, 'committed');
    setState(f, `blobs/${oldBlob.sha256.slice(0, 2)}/${oldBlob.sha256}`, 'committed');
    const { e, refreshes } = evictor(f, { patch: { hot_retention_hours: 72 } });
    const report = await e.pass();
    expect(report.retention).toBe(2);
    const present = (p: string) => existsSync(join(f.stateDir, p));
    expect(present(oldCommitted.path)).toBe(false);
    expect(existsSync(oldBlob.path)).toBe(false);
    expect([oldUploaded.path, oldLocal.path, youngCommitted.path].map(present)).toEqual([true, true, true]);
    expect(hotPaths(f)).toEqual([oldUploaded.path, oldLocal.path, youngCommitted.path]);
    expect(f.map.byPath(oldCommitted.path)).toMatchObject({ state: 'committed', local_state: 'evicted' });
    // The views were refreshed while the file was still on disk but no longer registered.
    expect(refreshes[0]!.paths).toContain(oldCommitted.path);
    expect(refreshes[0]!.registered).not.toContain(oldCommitted.path);
    expect(refreshes[0]!.onDisk.every(Boolean)).toBe(true);
    // Repeating the pass changes nothing.
    expect((await e.pass()).retention).toBe(0);
  });

  it('above the high watermark: committed files go oldest first until under it, the alert says so; uncommitted stay', async () => {
    f = await createTieringFixture();
    const files = [30, 20, 10, 5].map((age) => f.addL1('inspections', { ageHours: age, bytes: 100_000 }));
    const uncommitted = f.addL1('readings', { ageHours: 40, bytes: 100_000 });
    await register(f);
    for (const file of files) setState(f, file.path, 'committed');
    // A budget the database plus the five files exceed at 85 %: about two committed files must go.
    const measure = measureDisk(f.db, f.stateDir, 1e15);
    const used = (await measure()).usedBytes;
    const budget = Math.floor((used - 150_000) / 0.85);
    const { e, log, pressure } = evictor(f, { patch: { disk_budget: { max_bytes: budget } } });
    const report = await e.pass();
    expect(report.pressure).toBe(2);
    expect(files.map((x) => existsSync(join(f.stateDir, x.path)))).toEqual([false, false, true, true]);
    expect(existsSync(join(f.stateDir, uncommitted.path))).toBe(true);
    expect(report.usedBytes).toBeLessThanOrEqual(budget * 0.85);
    const alert = log.records.find((r) => r.obj.code === 'HOT_WINDOW_SHRUNK');
    expect(alert?.level).toBe('warn');
    expect(alert?.obj.hot_window_hours).toBe(20);
    expect(pressure).toEqual([]);
  });

  it('at the critical watermark sources pause; they resume once usage is below it again', async () => {
    f = await createTieringFixture();
    const files = [30, 20].map((age) => f.addL1('inspections', { ageHours: age, bytes: 100_000 }));
    await register(f);
    const measure = measureDisk(f.db, f.stateDir, 1e15);
    const used = (await measure()).usedBytes;
    const budget = Math.floor(used / 0.96); // 96 % used: above critical (95)
    const { e, pressure, log } = evictor(f, { patch: { disk_budget: { max_bytes: budget } } });
    await e.pass();
    expect(pressure).toEqual([true]);
    expect(e.isCritical).toBe(true);
    expect(e.watermark).toBe('critical');
    // Nothing was committed: nothing was deleted.
    expect(files.every((x) => existsSync(join(f.stateDir, x.path)))).toBe(true);
    expect(log.records.some((r) => r.obj.code === 'DISK_CRITICAL')).toBe(true);
    await e.pass();
    expect(pressure).toEqual([true]); // still critical: no repeated call
    // The WAN is back: the files are committed; the next pass evicts them and resumes.
    for (const file of files) setState(f, file.path, 'committed');
    await e.pass();
    expect(pressure).toEqual([true, false]);
    expect(e.watermark).not.toBe('critical');
    expect(files.some((x) => !existsSync(join(f.stateDir, x.path)))).toBe(true);
  });

  it('reports the high watermark while nothing committed can go (the metric lakeside_disk_watermark_state reads it)', async () => {
    f = await createTieringFixture();
    f.addL1('inspections', { ageHours: 30, bytes: 100_000 });
    await register(f);
    const used = (await measureDisk(f.db, f.stateDir, 1e15)()).usedBytes;
    const { e, pressure } = evictor(f, { patch: { disk_budget: { max_bytes: Math.floor(used / 0.9) } } });
    expect(e.watermark).toBe('ok');
    await e.pass();
    expect(e.watermark).toBe('high'); // 90 %: above high (85), below critical (95)
    expect(pressure).toEqual([]);
  });

  it('overflow drop_oldest: only that dataset loses its oldest uncommitted files, and only at critical', async () => {
    f = await createTieringFixture();
    const keep = [50, 40].map((age) => f.addL1('inspections', { ageHours: age, bytes: 100_000 }));
    const drop = [45, 35, 5].map((age) => f.addL1('readings', { ageHours: age, bytes: 100_000 }));
    await register(f);
    const measure = measureDisk(f.db, f.stateDir, 1e15);
    const used = (await measure()).usedBytes;
    const budget = Math.floor((used - 150_000) / 0.95);
    const { e, log, pressure } = evictor(f, { patch: { disk_budget: { max_bytes: budget }, datasets: { readings: { overflow: 'drop_oldest' } } } });
    const report = await e.pass();
    expect(report.dropped).toBe(2);
    expect(drop.map((x) => existsSync(join(f.stateDir, x.path)))).toEqual([false, false, true]);
    expect(keep.every((x) => existsSync(join(f.stateDir, x.path)))).toBe(true);
    expect(f.map.byPath(drop[0]!.path)).toMatchObject({ state: 'dropped', local_state: 'evicted' });
    expect(log.records.find((r) => r.obj.code === 'DATA_DROPPED')?.obj.per_dataset).toEqual({ readings: 2 });
    expect(pressure).toEqual([]);
  });

  it('finishes an eviction a crash interrupted between its commit and the unlink', async () => {
    f = await createTieringFixture();
    const blob = f.addBlob();
    await register(f);
    f.db.prepare(`UPDATE tier_files SET state = 'committed', local_state = 'evicting'`).run();
    const { e, refreshes } = evictor(f);
    await e.pass();
    expect(existsSync(blob.path)).toBe(false);
    expect(f.map.all()[0]!.local_state).toBe('evicted');
    expect(refreshes).toHaveLength(1);
  });

  it('drops rollup files older than the retention (local summaries, never uploaded)', async () => {
    f = await createTieringFixture();
    const l1 = f.addL1('readings', { ageHours: 100 });
    const rollup = l1.path.replace('/L1/', '/R1/');
    f.db.prepare(`INSERT INTO hot_files (dataset, level, path, window_start_us, partition_json, min_ts_us, max_ts_us, record_count, file_size_bytes, stats_json, created_at_us)
      VALUES ('readings', 2, ?, 0, '{}', 0, ?, 1, 1, '{}', 0)`).run(rollup, f.clock.ms * 1000 - 100 * 3_600_000_000);
    const { e } = evictor(f);
    expect((await e.pass()).rollups).toBe(1);
    expect(hotPaths(f)).toEqual([l1.path]);
  });
});
