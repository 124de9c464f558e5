// A central policy applied live to tiering (Tiering.applyPolicy): the next pass of the
// evictor, uploader and archiver runs on it, with no restart. A shorter hot window
// evicts committed files; an upload window holds a dataset (and the blobs) back until
// a newer policy opens it; a policy that cannot apply changes nothing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EffectiveDatasetPolicy, EffectivePolicy } from '../../../config/policy-schema.ts';
import { NO_CATALOG } from '../../../tiering/catalog-handoff.ts';
import { Evictor } from '../../../tiering/evictor.ts';
import { warmCutoffSql } from '../../../tiering/settings.ts';
import { Tiering } from '../../../tiering/tiering.ts';
import { TokenBucket } from '../../../tiering/token-bucket.ts';
import { Uploader } from '../../../tiering/uploader.ts';
import { createTieringFixture, recordingLogger, type TieringFixture } from './fixture.ts';

const CONTEXT = { plant: 'ulm', agentId: 'ulm' };
const NIGHT_ONLY = ['* 0-5 * * *']; // the fixture's clock says 14:00 UTC: closed

function datasetPolicy(patch: Partial<EffectiveDatasetPolicy> = {}): EffectiveDatasetPolicy {
  return { hot_retention_hours: 72, warm_retention_days: 90, cold_retention_days: null, cold_storage_class: null, compaction_window_minutes: 10, target_file_bytes: null, priority: 0, bandwidth_share: null, upload_windows: [], overflow: 'keep', ...patch };
}

function policy(version: number, datasets: Record<string, Partial<EffectiveDatasetPolicy>>, bandwidth: number | null = null): EffectivePolicy {
  return {
    version,
    expiresAt: '2027-01-01T00:00:00Z',
    bandwidthBytesPerSecond: bandwidth,
    warnings: [],
    datasets: Object.fromEntries(['inspections', 'readings', 'frames', 'blobs'].map((d) => [d, datasetPolicy(datasets[d] ?? {})])),
  };
}

describe('a policy applied live to tiering', () => {
  let f: TieringFixture;
  afterEach(() => f?.close());

  function parts() {
    const log = recordingLogger();
    const config = f.config();
    const tiering = new Tiering({ config, dbPath: f.dbPath, stateDir: f.stateDir, context: CONTEXT, logger: log.logger, warmStore: f.warm, nowMs: f.nowMs });
    const settings = () => tiering.currentSettings;
    const uploader = new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: CONTEXT, logger: log.logger, settings, nowMs: f.nowMs });
    const measure = async () => ({ usedBytes: 0, budgetBytes: 1e15 });
    const evictor = new Evictor({ db: f.db, map: f.map, config, stateDir: f.stateDir, logger: log.logger, measure, beforeUnlink: async () => {}, onPressure: () => {}, settings, nowMs: f.nowMs });
    return { tiering, uploader, evictor };
  }

  const stateOf = (path: string) => f.db.prepare('SELECT state, local_state FROM tier_files WHERE local_path = ?').get(path) as { state: string; local_state: string } | undefined;

  it('the hour settle (wait_for_hour_merge) is read at each discovery: a window changed live changes which hours may go', async () => {
    f = await createTieringFixture();
    const config = f.config({ wait_for_hour_merge: true });
    let settleUs = 2 * 3_600_000_000; // a large window in force
    const uploader = new Uploader({ db: f.db, map: f.map, store: f.warm, catalog: NO_CATALOG, config, stateDir: f.stateDir, context: CONTEXT, logger: recordingLogger().logger, hourSettleUs: () => settleUs, nowMs: f.nowMs });
    const file = f.addL1('readings', { ageHours: 1.5 }); // its hour ended 1 h ago
    await uploader.pass();
    expect(stateOf(file.path)).toBeUndefined(); // not settled for 2 h yet
    settleUs = 30 * 60_000_000; // the largest window shrank
    await uploader.pass();
    expect(stateOf(file.path)?.state).toBe('committed');
  });

  it('a shorter hot window makes the next eviction pass evict committed files', async () => {
    f = await createTieringFixture();
    const { tiering, uploader, evictor } = parts();
    const readings = f.addL1('readings', { ageHours: 10 });
    const inspections = f.addL1('inspections', { ageHours: 10 });
    await uploader.pass();
    expect(stateOf(readings.path)?.state).toBe('committed');
    expect((await evictor.pass()).retention).toBe(0); // 72 h window: both stay

    tiering.applyPolicy(policy(1, { readings: { hot_retention_hours: 5 } }));
    const report = await evictor.pass();
    expect(report.retention).toBe(1);
    expect(stateOf(readings.path)?.local_state).toBe('evicted');
    expect(existsSync(join(f.stateDir, readings.path))).toBe(false);
    expect(stateOf(inspections.path)?.local_state).toBe('present');
    expect(tiering.currentSettings.policyVersion).toBe(1);
  });

  it('an upload window holds a dataset and the blobs back until a newer policy opens it', async () => {
    f = await createTieringFixture();
    const { tiering, uploader } = parts();
    tiering.applyPolicy(policy(1, { readings: { upload_windows: NIGHT_ONLY }, blobs: { upload_windows: NIGHT_ONLY } }));
    const readings = f.addL1('readings', { ageHours: 1 });
    const frames = f.addL1('frames', { ageHours: 1 });
    const blob = f.addBlob({ ageHours: 1 });
    await uploader.pass();
    expect(stateOf(frames.path)?.state).toBe('committed');
    expect(stateOf(readings.path)?.state).toBe('local');
    expect(stateOf(`blobs/${blob.sha256.slice(0, 2)}/${blob.sha256}`)?.state).toBe('local');

    tiering.applyPolicy(policy(2, {}));
    await uploader.pass();
    expect(stateOf(readings.path)?.state).toBe('committed');
    expect(stateOf(`blobs/${blob.sha256.slice(0, 2)}/${blob.sha256}`)?.state).toBe('committed');
  });

  it('a policy that cannot apply changes nothing', async () => {
    f = await createTieringFixture();
    const { tiering } = parts();
    const before = tiering.applyPolicy(policy(1, { readings: { priority: 5 } }, 1_000_000));
    expect(() => tiering.applyPolicy(policy(2, { readings: { upload_windows: ['not a cron'] } }, 10))).toThrow();
    expect(tiering.currentSettings).toBe(before);
    expect(tiering.uploadRates('readings')).toEqual([1_000_000]);
  });

  it('per dataset: warm retention, bandwidth share of the plant cap, priority', async () => {
    f = await createTieringFixture();
    const { tiering } = parts();
    const old = f.addL1('readings', { ageHours: 24 * 10 });
    const oldInspection = f.addL1('inspections', { ageHours: 24 * 10 });
    const { uploader } = parts();
    await uploader.pass();
    const due = () => f.map.dueForArchive(warmCutoffSql(tiering.currentSettings, f.clock.ms * 1000), 10).map((r) => r.local_path);
    expect(due()).toEqual([]); // the config's 90 days
    tiering.applyPolicy(policy(1, { readings: { warm_retention_days: 5 }, inspections: { warm_retention_days: null } }));
    expect(due()).toEqual([old.path]);
    expect(due()).not.toContain(oldInspection.path);

    tiering.applyPolicy(policy(2, { readings: { bandwidth_share: 0.25 } }, 1_000_000));
    expect(tiering.uploadRates('readings')).toEqual([250_000, 1_000_000]);
    expect(tiering.uploadRates('inspections')).toEqual([1_000_000]);
    tiering.applyPolicy(policy(3, { readings: { bandwidth_share: 0.5 } }, 2_000_000));
    expect(tiering.uploadRates('readings')).toEqual([1_000_000, 2_000_000]);
    tiering.applyPolicy(policy(4, {}, null));
    expect(tiering.uploadRates('readings')).toEqual([]);
    tiering.applyPolicy(policy(5, { inspections: { priority: 7 } }));
    expect(tiering.currentSettings.priorityCase).toContain("WHEN 'inspections' THEN 7");
  });

  it('a token bucket follows a rate change', async () => {
    let now = 0;
    const bucket = new TokenBucket(1000, { burstBytes: 1000, clock: { now: () => now, sleep: async (ms) => void (now += ms) } });
    await bucket.take(1000); // the burst
    await bucket.take(1000);
    expect(now).toBe(1000);
    bucket.setRate(4000);
    await bucket.take(1000);
    expect(now).toBe(1250);
  });
});
