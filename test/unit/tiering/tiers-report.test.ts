import { afterEach, describe, expect, it } from 'vitest';
import { renderTiers } from '../../../agent/cli/tiers-command.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { progressBar, tiersReport } from '../../../tiering/tiers-report.ts';
import { createTieringFixture, HOUR_US, type TieringFixture } from './fixture.ts';

describe('lakeside tiers report', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  it('counts files and bytes per tier, the backlog, set-aside files and a drain estimate at the recent rate', async () => {
    f = await createTieringFixture();
    const a = f.addL1('inspections', { bytes: 1000, ageHours: 5 });
    f.addL1('inspections', { bytes: 3000, ageHours: 3 });
    const c = f.addL1('readings', { bytes: 2000, ageHours: 80 });
    f.addBlob({ bytes: 500, ageHours: 2 });
    const nowUs = f.clock.ms * 1000;
    await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'p', agentId: 'p' }, nowUs);
    const id = (path: string) => f.map.byPath(path)!.id;
    // inspections a: uploaded 100 s ago and committed; readings c: committed long ago and evicted.
    f.map.markUploaded(id(a.path), nowUs - 100e6);
    f.map.markCommitted([id(a.path)], nowUs - 100e6);
    f.db.prepare(`UPDATE tier_files SET state = 'committed', uploaded_us = ?, local_state = 'evicted' WHERE id = ?`).run(nowUs - 100 * HOUR_US, id(c.path));
    const blob = f.map.all().find((r) => r.kind === 'blob')!;
    f.map.recordFailure(blob.id, 'OBJECT_CONFLICT: different content', 0, true, nowUs);

    const report = tiersReport(f.db, nowUs);
    const inspections = report.datasets.find((d) => d.dataset === 'inspections')!;
    expect(inspections).toMatchObject({ local: { files: 2, bytes: 4000 }, committed: { files: 1, bytes: 1000 }, backlog: { files: 1, bytes: 3000 }, setAside: 0 });
    expect(inspections.oldestUncommittedUs).toBe(nowUs - 3 * HOUR_US);
    expect(report.datasets.find((d) => d.dataset === 'readings')).toMatchObject({ evicted: { files: 1, bytes: 2000 }, committed: { files: 1 }, oldestUncommittedUs: null });
    expect(report.datasets.find((d) => d.dataset === '(blobs)')).toMatchObject({ setAside: 1, backlog: { files: 0 } });
    expect(report.backlogBytes).toBe(3000);
    // 1000 bytes uploaded over the last 100 s: 10 B/s, 3000 bytes left → 300 s.
    expect(report.rateBytesPerSecond).toBeCloseTo(10);
    expect(report.drainSeconds).toBeCloseTo(300);
    expect(report.setAside).toEqual([{ dataset: '(blobs)', path: blob.local_path, attempts: 1, reason: 'OBJECT_CONFLICT: different content' }]);
    const text = renderTiers(report, nowUs);
    expect(text).toContain('drained in 5 min');
    expect(text).toContain('set aside: (blobs)');
    expect(text).toMatch(/inspections\s+2 \/ 3\.9 KiB/);
  });

  it('draws a progress bar', () => {
    expect(progressBar(0, 100, 10)).toBe('[..........] 0 %');
    expect(progressBar(50, 100, 10)).toBe('[#####.....] 50 %');
    expect(progressBar(100, 100, 10)).toBe('[##########] 100 %');
  });
});
