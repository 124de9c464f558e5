// Three days without WAN, on an injected clock: files keep arriving every simulated
// hour; uploads fail (the warm store is unreachable); the evictor runs every hour.
// Nothing uncommitted is evicted even far past the hot retention, the disk budget's
// critical watermark pauses the sources (and only that), and when the WAN returns the
// backlog drains by priority, oldest first within a priority, after which retention and
// the watermark free the disk and the sources resume.
import { afterEach, describe, expect, it } from 'vitest';
import { NO_CATALOG } from '../../../tiering/catalog-handoff.ts';
import { Evictor, type DiskUsage } from '../../../tiering/evictor.ts';
import { ObjectStoreError, type ObjectStore, type PutSource } from '../../../tiering/stores/object-store.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

const HOUR_MS = 3_600_000;

describe('a three-day WAN outage (injected clock)', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  it('keeps everything uncommitted, pauses at critical, drains by priority when the WAN returns, then frees the disk', async () => {
    f = await createTieringFixture();
    let wanUp = false;
    const puts: string[] = [];
    const warm = Object.assign(Object.create(f.warm) as ObjectStore, {
      put: async (key: string, source: PutSource) => {
        if (!wanUp) throw new ObjectStoreError('S3_TimeoutError', 'connect timed out', true);
        puts.push(key);
        return f.warm.put(key, source);
      },
    });
    const config = f.config({
      upload_concurrency: 1,
      max_attempts: 1_000_000,
      retry_initial_ms: 6 * HOUR_MS,
      retry_max_ms: 12 * HOUR_MS,
      hot_retention_hours: 24,
      disk_budget: { max_bytes: 100_000, high_watermark_percent: 60, critical_watermark_percent: 80 },
      datasets: { inspections: { priority: 10 }, readings: { priority: 1 } },
    });
    const log = recordingLogger();
    const uploader = new Uploader({ db: f.db, map: f.map, store: warm, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: { plant: 'p', agentId: 'a' }, logger: log.logger, nowMs: f.nowMs });
    // Disk usage: the bytes of the files still on local disk (what the budget counts of them).
    const measure = async (): Promise<DiskUsage> => ({
      usedBytes: f.db.prepare(`SELECT coalesce(sum(file_size_bytes), 0) FROM hot_files`).pluck().get() as number,
      budgetBytes: 100_000,
    });
    const pressure: boolean[] = [];
    const evictor = new Evictor({ db: f.db, map: f.map, config, stateDir: f.stateDir, logger: log.logger, measure, beforeUnlink: async () => {}, onPressure: (c) => pressure.push(c), nowMs: f.nowMs });

    // 72 simulated hours: one inspections file (1 kB) and one readings file (1 kB) an hour,
    // written as if they arrived now; the sources are paused at critical, so nothing arrives then.
    let arrived = 0;
    for (let hour = 0; hour < 72; hour++) {
      if (!evictor.isCritical) {
        f.addL1('inspections', { bytes: 1000, ageHours: 0 });
        f.addL1('readings', { bytes: 1000, ageHours: 0 });
        arrived += 2;
      }
      await uploader.pass();
      await evictor.pass();
      f.clock.ms += HOUR_MS;
    }
    const rows = f.map.all();
    expect(rows).toHaveLength(arrived);
    expect(rows.every((r) => r.state === 'local' && r.local_state === 'present')).toBe(true); // nothing lost
    expect(pressure).toEqual([true]); // paused once, at 80 kB, and still paused
    expect(arrived).toBe(80);
    expect(log.records.some((r) => r.obj.code === 'UPLOAD_SET_ASIDE')).toBe(false);

    // The WAN returns: the backlog drains, inspections first, oldest first.
    wanUp = true;
    f.clock.ms += 12 * HOUR_MS; // past every backoff
    await uploader.pass();
    const order = puts.map((key) => f.map.all().find((r) => r.object_key === key)!);
    expect(order.map((r) => r.dataset)).toEqual([...Array(40).fill('inspections'), ...Array(40).fill('readings')]);
    for (let i = 1; i < 40; i++) expect(order[i]!.event_time_us).toBeGreaterThanOrEqual(order[i - 1]!.event_time_us);
    expect(f.map.all().every((r) => r.state === 'committed')).toBe(true);

    // Retention (24 h) now frees the old files; the sources resume.
    const report = await evictor.pass();
    expect(report.retention).toBeGreaterThan(0);
    expect(pressure).toEqual([true, false]);
  });
});
