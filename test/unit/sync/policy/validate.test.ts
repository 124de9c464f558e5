import { describe, expect, it } from 'vitest';
import { checkPolicy, type PolicyCheckInput } from '../../../../sync/policy/validate.ts';
import { sha256Hex } from '../../../../sync/policy/signature.ts';
import { BASE, FLOORS, NOW_MS, policyBytes, signer } from './fixtures.ts';

const central = signer('central-1');

function input(document: Uint8Array, extra: Partial<PolicyCheckInput> = {}): PolicyCheckInput {
  return {
    document,
    signature: central.sign(document),
    trustedKeys: [central.trusted],
    plant: 'ulm',
    datasets: ['sensor_readings', 'frames'],
    base: BASE,
    lastGoodVersion: 4,
    floors: FLOORS,
    diskBudgetBytes: null,
    nowMs: NOW_MS,
    ...extra,
  };
}

function refusal(result: ReturnType<typeof checkPolicy>) {
  if (result.ok) throw new Error('expected a refusal, the policy was accepted');
  return result;
}

describe('checkPolicy', () => {
  it('accepts a good policy and returns the effective settings', () => {
    const result = checkPolicy(input(policyBytes()));
    if (!result.ok) throw new Error(result.reason);
    expect(result.document.version).toBe(5);
    expect(result.keyId).toBe('central-1');
    expect(result.effective.datasets.sensor_readings!.hot_retention_hours).toBe(48);
    expect(result.effective.warnings).toEqual([]);
  });

  it('refuses a document with one byte changed after signing (POLICY_SIGNATURE)', () => {
    const doc = policyBytes();
    const signature = central.sign(doc);
    const tampered = Buffer.from(doc);
    tampered[tampered.indexOf('48')] = '9'.charCodeAt(0);
    const result = refusal(checkPolicy(input(tampered, { signature })));
    expect(result.code).toBe('POLICY_SIGNATURE');
    expect(result.reason).toMatch(/^signature does not match \(tampered\?\)/);
    expect(result.version).toBe(5);
  });

  it('refuses a signature by a key it does not trust, even a valid one', () => {
    const stranger = signer('rogue');
    const doc = policyBytes();
    const result = refusal(checkPolicy(input(doc, { signature: stranger.sign(doc) })));
    expect(result).toMatchObject({ code: 'POLICY_SIGNATURE', reason: 'unknown key rogue' });
  });

  it('refuses a trusted key id whose key did not sign (a forged key id)', () => {
    const stranger = signer('central-1');
    const doc = policyBytes();
    const result = refusal(checkPolicy(input(doc, { signature: stranger.sign(doc) })));
    expect(result).toMatchObject({ code: 'POLICY_SIGNATURE', reason: 'signature does not match (tampered?)' });
  });

  it('checks the signature before anything else (an unsigned bad document is not parsed)', () => {
    const doc = Buffer.from('version: [\n');
    const result = refusal(checkPolicy(input(doc, { signature: Buffer.from('{}') })));
    expect(result.code).toBe('POLICY_SIGNATURE');
    expect(result.reason).toMatch(/malformed signature file: alg/);
    const json = Buffer.from(JSON.stringify({ version: 9, plants: 'all' }));
    expect(refusal(checkPolicy(input(json, { signature: Buffer.from('{}') }))).version).toBe(9);
  });

  it('accepts documents signed by either of two trusted keys (rotation)', () => {
    const next = signer('central-2');
    const doc = policyBytes();
    const keys = [central.trusted, next.trusted];
    expect(checkPolicy(input(doc, { trustedKeys: keys })).ok).toBe(true);
    const byNext = checkPolicy(input(doc, { trustedKeys: keys, signature: next.sign(doc) }));
    expect(byNext.ok && byNext.keyId).toBe('central-2');
    // The old key retired: its signatures are refused.
    expect(refusal(checkPolicy(input(doc, { trustedKeys: [next.trusted] }))).reason).toBe('unknown key central-1');
  });

  it('accepts a PEM public key as well as raw base64', () => {
    expect(checkPolicy(input(policyBytes(), { trustedKeys: [{ id: 'central-1', public_key: central.publicKeyPem }] })).ok).toBe(true);
  });

  it('refuses a schema error naming the field (POLICY_SCHEMA)', () => {
    const result = refusal(checkPolicy(input(policyBytes({ defaults: { datasets: { frames: { overflow: 'delete_all' } } } }))));
    expect(result.code).toBe('POLICY_SCHEMA');
    expect(result.reason).toMatch(/defaults\.datasets\.frames\.overflow/);
    expect(result.version).toBe(5);
    const cron = refusal(checkPolicy(input(policyBytes({ defaults: { datasets: { frames: { upload_windows: ['at night'] } } } }))));
    expect(cron.reason).toMatch(/upload_windows\[0\]: expected a 5-field cron/);
    const unknown = refusal(checkPolicy(input(policyBytes({ hot_hours: 3 }))));
    expect(unknown.reason).toMatch(/hot_hours: unknown key/);
  });

  it('refuses an older version and the same version with other content (POLICY_ROLLBACK)', () => {
    const older = refusal(checkPolicy(input(policyBytes({ version: 3 }))));
    expect(older).toMatchObject({ code: 'POLICY_ROLLBACK', version: 3, reason: 'version 3 is older than the last good version 4' });

    const applied = policyBytes({ version: 4 });
    const same = checkPolicy(input(applied, { lastGoodSha256: sha256Hex(applied) }));
    expect(same.ok).toBe(true);
    const changed = refusal(checkPolicy(input(policyBytes({ version: 4, description: 'edited' }), { lastGoodSha256: sha256Hex(applied) })));
    expect(changed.code).toBe('POLICY_ROLLBACK');
    expect(changed.reason).toMatch(/already applied with other content/);
    expect(refusal(checkPolicy(input(applied))).reason).toBe('version 4 is not newer than the last good version 4');
    expect(checkPolicy(input(policyBytes({ version: 1 }), { lastGoodVersion: null })).ok).toBe(true);
  });

  it('refuses an expired policy (POLICY_EXPIRED)', () => {
    const result = refusal(checkPolicy(input(policyBytes(), { nowMs: Date.parse('2027-01-01T00:00:00Z') })));
    expect(result).toMatchObject({ code: 'POLICY_EXPIRED', reason: 'expired at 2026-12-31T00:00:00Z' });
  });

  it("refuses another plant's policy (POLICY_SCOPE)", () => {
    const doc = policyBytes({ plants: ['augsburg', 'berlin'] });
    const result = refusal(checkPolicy(input(doc)));
    expect(result).toMatchObject({ code: 'POLICY_SCOPE', reason: 'plant ulm is not in the policy\'s plants (augsburg, berlin)' });
    expect(checkPolicy(input(doc, { plant: 'berlin' })).ok).toBe(true);
  });

  it('refuses retention under a floor without the flag, accepts it with the flag (POLICY_UNSAFE)', () => {
    const short = { defaults: { datasets: { sensor_readings: { hot_retention_hours: 6 } } } };
    const result = refusal(checkPolicy(input(policyBytes(short))));
    expect(result.code).toBe('POLICY_UNSAFE');
    expect(result.reason).toMatch(/dataset sensor_readings: hot_retention_hours 6h is under this plant's floor of 24h \(set allow_short_retention: true/);
    const cold = refusal(checkPolicy(input(policyBytes({ overrides: { ulm: { datasets: { '*': { cold_retention_days: 30 } } } } }))));
    expect(cold.reason).toMatch(/cold_retention_days 30 days is under this plant's floor of 365 days/);

    const allowed = checkPolicy(input(policyBytes({ ...short, allow_short_retention: true })));
    if (!allowed.ok) throw new Error(allowed.reason);
    expect(allowed.effective.datasets.sensor_readings!.hot_retention_hours).toBe(6);
  });

  it('refuses a policy that turns on drop_oldest (it would delete uncommitted data), even with the flag', () => {
    const dropping = { allow_short_retention: true, defaults: { datasets: { '*': { overflow: 'drop_oldest' } } } };
    const result = refusal(checkPolicy(input(policyBytes(dropping))));
    expect(result.code).toBe('POLICY_UNSAFE');
    expect(result.reason).toMatch(/dataset sensor_readings: overflow: drop_oldest would let the policy delete uncommitted data/);
    // frames already says drop_oldest in the plant's own config: the policy may keep that.
    const framesOnly = checkPolicy(input(policyBytes({ defaults: { datasets: { frames: { overflow: 'drop_oldest' } } } })));
    expect(framesOnly.ok).toBe(true);
    // And may narrow it back to keep.
    const narrowed = checkPolicy(input(policyBytes({ defaults: { datasets: { frames: { overflow: 'keep' } } } })));
    expect(narrowed.ok && narrowed.effective.datasets.frames!.overflow).toBe('keep');
  });

  it('refuses a cold retention not longer than the warm retention', () => {
    const result = refusal(checkPolicy(input(policyBytes({ defaults: { datasets: { '*': { warm_retention_days: 400, cold_retention_days: 400 } } } }))));
    expect(result.code).toBe('POLICY_UNSAFE');
    expect(result.reason).toMatch(/cold_retention_days 400 is not longer than warm_retention_days 400/);
    expect(checkPolicy(input(policyBytes({ defaults: { datasets: { '*': { warm_retention_days: 30, cold_retention_days: null } } } }))).ok).toBe(true);
  });

  it('refuses a compaction window that does not divide a day (a file would span two UTC days), accepts one that does', () => {
    const result = refusal(checkPolicy(input(policyBytes({ overrides: { ulm: { datasets: { sensor_readings: { compaction_window_minutes: 7 } } } } }))));
    expect(result.code).toBe('POLICY_UNSAFE');
    expect(result.reason).toMatch(/plant ulm, dataset sensor_readings: compaction_window_minutes 7 does not divide a day \(1440 minutes\)/);
    expect(refusal(checkPolicy(input(policyBytes({ defaults: { datasets: { '*': { compaction_window_minutes: 50 } } } })))).code).toBe('POLICY_UNSAFE');
    const ok = checkPolicy(input(policyBytes({ defaults: { datasets: { sensor_readings: { compaction_window_minutes: 5, target_file_bytes: 64 << 20 } } } })));
    if (!ok.ok) throw new Error(ok.reason);
    expect(ok.effective.datasets.sensor_readings).toMatchObject({ compaction_window_minutes: 5, target_file_bytes: 64 << 20 });
    expect(ok.effective.datasets.frames).toMatchObject({ compaction_window_minutes: 10, target_file_bytes: null }); // the config file's
  });

  it('clamps a hot window that does not fit the disk budget, with a warning', () => {
    const gib = 2 ** 30;
    // 48 h × (1 + 1) GiB/h = 96 GiB needed; 85% of 50 GiB = 42.5 GiB fits.
    const result = checkPolicy(input(policyBytes(), { diskBudgetBytes: 50 * gib, estimatedHotBytesPerHour: { sensor_readings: gib, frames: gib } }));
    if (!result.ok) throw new Error(result.reason);
    const hours = result.effective.datasets.sensor_readings!.hot_retention_hours;
    expect(hours).toBeLessThanOrEqual(21.25);
    expect(hours).toBeGreaterThan(21);
    expect(result.effective.datasets.frames!.hot_retention_hours).toBe(hours);
    expect(result.effective.warnings.join('\n')).toMatch(/hot window clamped to fit the disk budget .*sensor_readings 48 h → 21\.2\d? h/);
    const fits = checkPolicy(input(policyBytes(), { diskBudgetBytes: 500 * gib, estimatedHotBytesPerHour: { sensor_readings: gib, frames: gib } }));
    expect(fits.ok && fits.effective.warnings).toEqual([]);
  });
});
