import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../../agent/hot/atomic-file.ts';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { recoverHotTier } from '../../../agent/hot/recovery.ts';
import { hotFilesOf } from '../../../agent/hot/registry.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { readHotTier } from '../../support/hot-tier-reader.ts';
import { compactOptions, createFixture, LATER, sealOptions, sensorRows, sortRows, T0, type Fixture } from './fixture.ts';

let fx: Fixture;
afterEach(() => fx?.close());

const CRASH_STEP = new URL('./crash-step.ts', import.meta.url).pathname;

function crash(step: 'seal' | 'compact'): void {
  const child = spawnSync(process.execPath, [CRASH_STEP, fx.stateDir, step, String(LATER)], { encoding: 'utf8' });
  expect(child.signal, child.stderr).toBe('SIGKILL');
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('recovery', () => {
  it('deletes temp files and unregistered Parquet files, and reports registered files that are missing', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    fx.land(sensors, sensorRows(10, T0, 1000));
    const kept = sealDataset(fx.db, sensors, fx.stateDir, sealOptions).files[0]!;
    fx.land(sensors, sensorRows(10, T0 + 20 * 60_000_000, 1000));
    const gone = sealDataset(fx.db, sensors, fx.stateDir, sealOptions).files[0]!;
    const dir = join(fx.stateDir, 'hot/sensors/L0/20261121T1440Z');
    writeFileSync(join(dir, '.tmp-abc123-99-100.parquet'), 'partial');
    writeFileAtomic(join(dir, '99-100.parquet'), readFileSync(join(fx.stateDir, kept.path)));
    mkdirSync(join(fx.stateDir, 'hot/sensors/L1/20261121T1440Z/line=x'), { recursive: true });
    rmSync(join(fx.stateDir, gone.path));

    const report = recoverHotTier(fx.db, fx.stateDir);
    expect(report.tempFilesDeleted).toEqual(['hot/sensors/L0/20261121T1440Z/.tmp-abc123-99-100.parquet']);
    expect(report.orphansDeleted).toEqual(['hot/sensors/L0/20261121T1440Z/99-100.parquet']);
    expect(report.missing.map((m) => m.path)).toEqual([gone.path]);
    expect(report.emptyDirsRemoved).toBe(4); // L1/…/line=x, L1/…, L1, and the emptied window of `gone`
    expect(listFiles(join(fx.stateDir, 'hot'))).toEqual(['sensors/L0/20261121T1440Z/1-10.parquet']);
    expect(hotFilesOf(fx.db, 'sensors').map((f) => f.path)).toEqual([kept.path, gone.path]);
  });

  it('a crash between publishing L0 files and their commit loses nothing and duplicates nothing', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const rows = sensorRows(20, T0, 1000);
    fx.land(sensors, rows);
    crash('seal'); // the first chunk of 7 rows commits, the second is published and then the process dies
    expect(hotFilesOf(fx.db, 'sensors').map((f) => f.record_count)).toEqual([7]);
    expect(listFiles(join(fx.stateDir, 'hot'))).toEqual(['sensors/L0/20261121T1440Z/1-7.parquet', 'sensors/L0/20261121T1440Z/8-14.parquet']);
    // Even before recovery, readers of registered files and landed rows see each row once.
    expect(sortRows(readHotTier(fx.stateDir, 'sensors').rows)).toEqual(sortRows(rows));

    const report = recoverHotTier(fx.db, fx.stateDir);
    expect(report.orphansDeleted).toEqual(['hot/sensors/L0/20261121T1440Z/8-14.parquet']);
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    expect(fx.landedCount(sensors)).toBe(0);
    const tier = readHotTier(fx.stateDir, 'sensors');
    expect(tier.fromFiles).toBe(20);
    expect(sortRows(tier.rows)).toEqual(sortRows(rows));
  });

  it('a crash during compaction, before or after its commit, loses nothing and duplicates nothing', () => {
    fx = createFixture();
    const sensors = fx.datasets[0]!;
    const rows = sensorRows(30, T0, 1_000_000);
    fx.land(sensors, rows.slice(0, 15));
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    fx.land(sensors, rows.slice(15));
    sealDataset(fx.db, sensors, fx.stateDir, sealOptions);
    const l0 = hotFilesOf(fx.db, 'sensors');

    crash('compact'); // L1 and rollup files published, never registered
    expect(listFiles(join(fx.stateDir, 'hot')).filter((p) => p.includes('/L1/'))).toHaveLength(3);
    expect(listFiles(join(fx.stateDir, 'hot')).filter((p) => p.includes('/R1/'))).toEqual(['sensors/R1/20261121T1440Z/1-2.parquet']);
    expect(recoverHotTier(fx.db, fx.stateDir).orphansDeleted).toHaveLength(4);
    expect(listFiles(join(fx.stateDir, 'hot')).filter((p) => !p.includes('/L0/'))).toEqual([]);
    expect(hotFilesOf(fx.db, 'sensors')).toEqual(l0);

    // Committed, then a crash before the L0 files were unlinked: simulate by putting them back.
    const saved = l0.map((f) => [f.path, readFileSync(join(fx.stateDir, f.path))] as const);
    compactDataset(fx.db, sensors, fx.stateDir, compactOptions, LATER);
    for (const [path, bytes] of saved) writeFileAtomic(join(fx.stateDir, path), bytes);
    expect(recoverHotTier(fx.db, fx.stateDir).orphansDeleted.sort()).toEqual(l0.map((f) => f.path).sort());
    const tier = readHotTier(fx.stateDir, 'sensors');
    expect(tier.files.every((f) => f.level === 1)).toBe(true);
    expect(sortRows(tier.rows)).toEqual(sortRows(rows));
  });
});
