// Status back to the centre: the report's content from the tier map and the daemon's
// status, written to status/<plant>.json (overwritten by the next), and
// `lakeside fleet status` over three plants' reports: versions, lags, who is behind.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { fleetRows, renderFleet, type FleetRow } from '../../../../agent/cli/fleet-command.ts';
import { discoverNewFiles } from '../../../../tiering/layout.ts';
import { buildPlantStatus, StatusLocation, StatusReporter, type PlantStatus } from '../../../../sync/policy/status-report.ts';
import { createTieringFixture, HOUR_US, recordingLogger, type TieringFixture } from '../../tiering/fixture.ts';

const run = promisify(execFile);
const REPO = new URL('../../../../', import.meta.url);

describe('status reports', () => {
  let f: TieringFixture | null = null;
  const dirs: string[] = [];
  afterEach(() => {
    f?.close();
    f = null;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('writes status/<plant>.json with the policy, disk, per-dataset lags and alerts', async () => {
    f = await createTieringFixture();
    const fx = f;
    const local = fx.addL1('readings', { ageHours: 3 });
    const uploaded = fx.addL1('readings', { ageHours: 5 });
    fx.addL1('inspections', { ageHours: 1 });
    const committed = fx.addL1('inspections', { ageHours: 8 });
    await discoverNewFiles(fx.db, fx.map, fx.stateDir, { plant: 'ulm', agentId: 'ulm-1' }, fx.clock.ms * 1000);
    fx.db.prepare(`UPDATE tier_files SET state = 'uploaded' WHERE local_path = ?`).run(uploaded.path);
    fx.db.prepare(`UPDATE tier_files SET state = 'committed' WHERE local_path = ?`).run(committed.path);
    const root = mkdtempSync(join(tmpdir(), 'policy-status-'));
    dirs.push(root);
    const reporter = new StatusReporter({
      config: { url: pathToFileURL(root).href, interval_seconds: 60 },
      plant: 'ulm',
      agentId: 'ulm-1',
      dbPath: fx.dbPath,
      policy: () => ({ source: 'file:///p.yaml', applied: { version: 4, applied_at: '2026-11-21T13:00:00.000Z', expires_at: '2027-01-01T00:00:00Z', warnings: [] }, refused: { version: 5, code: 'POLICY_SIGNATURE', reason: 'unknown key id k9', at: '2026-11-21T13:30:00.000Z' }, last_fetch: { at: '2026-11-21T13:59:00.000Z', ok: true, changed: false, error: null } }),
      snapshot: async () => ({ disk: { size_bytes: 1000, free_bytes: 250, watermark: 'ok' }, alerts: [{ id: 'feed_gap:readings:l1', kind: 'feed_gap' }] }),
      logger: recordingLogger().logger,
      nowMs: fx.nowMs,
    });
    await reporter.report();
    const written = JSON.parse(readFileSync(join(root, 'status', 'ulm.json'), 'utf8')) as PlantStatus;
    expect(written).toMatchObject({
      plant: 'ulm',
      agent_id: 'ulm-1',
      time: new Date(fx.clock.ms).toISOString(),
      interval_seconds: 60,
      policy: { applied_version: 4, refused: { version: 5, code: 'POLICY_SIGNATURE', reason: 'unknown key id k9' }, last_fetch_error: null },
      disk: { used_bytes: 750, size_bytes: 1000, used_percent: 75, watermark: 'ok' },
      alerts: [{ id: 'feed_gap:readings:l1' }],
    });
    const byName = Object.fromEntries(written.datasets.map((d) => [d.dataset, d]));
    // readings: 3 h old not uploaded, 5 h old uploaded not committed.
    expect(byName.readings).toMatchObject({ lag_to_warm_seconds: 3 * 3600, lag_to_catalog_seconds: 5 * 3600, not_uploaded_files: 1, uncommitted_files: 2 });
    expect(byName.readings!.oldest_uncommitted_at).toBe(new Date(fx.clock.ms - 5 * 3_600_000).toISOString());
    // inspections: the committed one does not count.
    expect(byName.inspections).toMatchObject({ lag_to_warm_seconds: 3600, lag_to_catalog_seconds: 0, uncommitted_files: 1 });
    expect(written.oldest_uncommitted_at).toBe(byName.readings!.oldest_uncommitted_at);
    expect(local.path).toBeTruthy();

    // The next report overwrites the same key.
    fx.clock.ms += HOUR_US / 1000;
    await reporter.report();
    const again = await new StatusLocation(pathToFileURL(root).href).readAll();
    expect(again).toHaveLength(1);
    expect(again[0]!.status!.time).toBe(new Date(fx.clock.ms).toISOString());
  });

  it('lakeside fleet status: three plants, who applied what, who is behind', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fleet-status-'));
    dirs.push(root);
    const now = Date.now();
    const location = new StatusLocation(pathToFileURL(root).href);
    const policy = (version: number | null, refused: PlantStatus['policy']['refused'] = null) => ({ source: 'x', applied: version === null ? null : { version, applied_at: '', expires_at: '', warnings: [] }, refused, last_fetch: null });
    const lag = (dataset: string, warm: number, catalog: number) => ({ dataset, lag_to_warm_seconds: warm, lag_to_catalog_seconds: catalog, oldest_uncommitted_at: null, not_uploaded_files: 0, not_uploaded_bytes: 0, uncommitted_files: 0 });
    const snapshot = (freePct: number) => ({ disk: { size_bytes: 100, free_bytes: freePct, watermark: 'ok' }, alerts: [] });
    await location.write('augsburg', buildPlantStatus({ plant: 'augsburg', agentId: 'augsburg', nowMs: now - 10_000, intervalSeconds: 60, policy: policy(7), snapshot: snapshot(40), datasets: [lag('readings', 120, 30), lag('frames', 4000, 0)] }));
    await location.write('ulm', buildPlantStatus({ plant: 'ulm', agentId: 'ulm-a', nowMs: now - 20_000, intervalSeconds: 60, policy: policy(6, { version: 7, code: 'POLICY_UNSAFE', reason: 'hot below floor', at: '' }), snapshot: snapshot(10), datasets: [lag('readings', 60, 0)] }));
    await location.write('zwickau', buildPlantStatus({ plant: 'zwickau', agentId: 'zwickau', nowMs: now - 3_600_000, intervalSeconds: 60, policy: policy(7), snapshot: { ...snapshot(50), alerts: [{ id: 'a' }, { id: 'b' }] }, datasets: [] }));

    const rows = fleetRows((await location.readAll()).map((r) => r.status!), now);
    const row = (plant: string) => rows.find((r) => r.plant === plant)!;
    expect(rows.map((r) => r.plant)).toEqual(['augsburg', 'ulm', 'zwickau']);
    expect(row('augsburg')).toMatchObject({ applied_version: 7, refused: null, worst_lag_to_warm_seconds: 4000, worst_lag_to_catalog_seconds: 30, disk_used_percent: 60, behind: [] });
    expect(row('ulm')).toMatchObject({ applied_version: 6, refused: '7: POLICY_UNSAFE', behind: ['policy 6 < 7'] });
    expect(row('zwickau').behind).toEqual([expect.stringMatching(/^status .* old$/)]);
    expect(row('zwickau').open_alerts).toBe(2);
    const table = renderFleet(rows);
    expect(table).toMatch(/ulm\s+ulm-a\s+6\s+7: POLICY_UNSAFE/);
    expect(table).toContain('BEHIND: policy 6 < 7');

    // The command itself, --json.
    const { stdout } = await run(process.execPath, ['bin/lakeside.js', 'fleet', 'status', '--from', pathToFileURL(root).href, '--json'], { cwd: REPO });
    const fromCli = JSON.parse(stdout) as FleetRow[];
    expect(fromCli.map((r) => [r.plant, r.applied_version, r.behind.length > 0])).toEqual([
      ['augsburg', 7, false],
      ['ulm', 6, true],
      ['zwickau', 7, true],
    ]);
  });
});
