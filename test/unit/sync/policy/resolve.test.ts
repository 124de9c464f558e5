import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { diffPolicies } from '../../../../sync/policy/diff.ts';
import { parsePolicyDocument } from '../../../../sync/policy/parse.ts';
import { resolvePolicy } from '../../../../sync/policy/resolve.ts';
import { BASE, policyBytes } from './fixtures.ts';

function doc(overrides: Record<string, unknown> = {}) {
  const parsed = parsePolicyDocument(policyBytes(overrides));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.document;
}

const layered = {
  defaults: {
    bandwidth_bytes_per_second: 2_000_000,
    datasets: {
      '*': { hot_retention_hours: 48, priority: 1, compaction_window_minutes: 15 },
      frames: { hot_retention_hours: 30, priority: 2 },
    },
  },
  overrides: {
    ulm: {
      bandwidth_bytes_per_second: null,
      datasets: { '*': { hot_retention_hours: 40, priority: 3 }, frames: { priority: 4 } },
    },
  },
};

describe('resolvePolicy', () => {
  it('resolves config < defaults.* < defaults.<dataset> < overrides.<plant>.* < overrides.<plant>.<dataset>', () => {
    const ulm = resolvePolicy(doc(layered), 'ulm', ['frames', 'sensor_readings'], BASE);
    // frames: priority from overrides.ulm.frames, hot from overrides.ulm.*, compaction from defaults.*,
    // warm/cold/class/windows/overflow from the config file.
    expect(ulm.datasets.frames).toEqual({
      hot_retention_hours: 40,
      warm_retention_days: 90,
      cold_retention_days: 730,
      cold_storage_class: 'GLACIER_IR',
      compaction_window_minutes: 15,
      target_file_bytes: null,
      priority: 4,
      bandwidth_share: null,
      upload_windows: ['* 22-23 * * *'],
      overflow: 'drop_oldest',
    });
    expect(ulm.datasets.sensor_readings).toMatchObject({ hot_retention_hours: 40, priority: 3, overflow: 'keep', upload_windows: [] });
    expect(ulm.bandwidthBytesPerSecond).toBeNull(); // the override's null (no cap) wins over the default

    const augsburg = resolvePolicy(doc(layered), 'augsburg', ['frames', 'sensor_readings'], BASE);
    expect(augsburg.datasets.frames).toMatchObject({ hot_retention_hours: 30, priority: 2 });
    expect(augsburg.datasets.sensor_readings).toMatchObject({ hot_retention_hours: 48, priority: 1 });
    expect(augsburg.bandwidthBytesPerSecond).toBe(2_000_000);
    expect(augsburg.version).toBe(5);
    expect(augsburg.expiresAt).toBe('2026-12-31T00:00:00Z');
  });

  it('falls back to the config file where the document is silent, and warns about datasets the plant lacks', () => {
    const empty = resolvePolicy(doc({ defaults: { datasets: { ghosts: { priority: 1 } } } }), 'ulm', ['sensor_readings'], BASE);
    expect(empty.datasets.sensor_readings).toMatchObject({ hot_retention_hours: 72, warm_retention_days: 90, compaction_window_minutes: 10, priority: 0 });
    expect(empty.bandwidthBytesPerSecond).toBeNull();
    expect(empty.warnings).toEqual(['the policy names datasets this plant does not have (ignored): ghosts']);
  });

  it('reads JSON documents too', () => {
    const parsed = parsePolicyDocument(Buffer.from(JSON.stringify({ version: 1, issued_at: '2026-01-01T00:00:00Z', expires_at: '2027-01-01T00:00:00Z', plants: ['ulm'] })));
    expect(parsed.ok && parsed.document.plants).toEqual(['ulm']);
  });

  it('names the YAML line of a bad field and refuses an expiry before the issue date', () => {
    const text = stringify({ version: 1, issued_at: '2026-01-01T00:00:00Z', expires_at: '2025-01-01T00:00:00Z', plants: ['ulm'] });
    const parsed = parsePolicyDocument(Buffer.from(text));
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.reason).toMatch(/^expires_at: must be after issued_at \(line 3\)/);
    expect(parsePolicyDocument(Buffer.from('version: [1\n')).ok).toBe(false);
    expect(parsePolicyDocument(Buffer.from('')).ok).toBe(false);
  });
});

describe('diffPolicies', () => {
  it('lists what changes per plant and dataset, and where an override hides a default change', () => {
    const older = doc(layered);
    const newer = doc({
      ...layered,
      version: 6,
      defaults: { ...layered.defaults, datasets: { ...layered.defaults.datasets, '*': { hot_retention_hours: 24, priority: 1, compaction_window_minutes: 15 } } },
    });
    const rows = diffPolicies(older, newer).map((c) => `${c.plant} ${c.dataset} ${c.field} ${c.old} → ${c.new}`);
    // frames has its own default (30 h) and ulm its own override (40 h): neither changes.
    expect(rows).toEqual(['- - version 5 → 6', '* * hot_retention_hours 48 → 24']);
  });

  it('shows fields set on one side only as (config)', () => {
    const rows = diffPolicies(doc(), doc({ overrides: { ulm: { datasets: { frames: { overflow: 'keep' } } } } }));
    expect(rows).toEqual([{ plant: 'ulm', dataset: 'frames', field: 'overflow', old: '(config)', new: 'keep' }]);
  });
});
