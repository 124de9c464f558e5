// The policy component: a fetched policy is checked and applied, saved as the last good
// one and survives a restart while the centre is unreachable; a refused one changes
// nothing and says why. The validator is a stand-in here (its own tests live beside
// validate.ts): "signed" means the signature is `ok:` + the document's SHA-256.
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EffectivePolicy } from '../../../../config/policy-schema.ts';
import { agentPolicyConfigSchema } from '../../../../config/policy-schema.ts';
import { tieringSchema } from '../../../../config/tiering-schema.ts';
import type { PolicyChecker } from '../../../../sync/policy/check.ts';
import { PolicyFetchError, type FetchOutcome } from '../../../../sync/policy/fetch.ts';
import { PolicyAgent, type HotSettingsTarget } from '../../../../sync/policy/policy-agent.ts';
import type { DatasetHotSettings } from '../../../../agent/hot/dataset-settings.ts';
import { waitFor } from '../../../support/wait-for.ts';
import { recordingLogger } from '../../tiering/fixture.ts';

const NOW = Date.UTC(2026, 10, 21, 14, 0);

function policyBytes(version: number, hotHours = 10, expiresAt = '2027-01-01T00:00:00Z', compactionWindow = 10, targetFileBytes: number | null = null): Uint8Array {
  return Buffer.from(JSON.stringify({ version, expires_at: expiresAt, hot: hotHours, cw: compactionWindow, tb: targetFileBytes }));
}
const sign = (doc: Uint8Array): Uint8Array => Buffer.from(`ok:${createHash('sha256').update(doc).digest('hex')}`);

/** The stand-in validator: signature, version (no rollback), expiry; resolves to one dataset. */
const standInChecker: PolicyChecker = (input) => {
  let doc: { version: number; expires_at: string; hot: number; cw: number; tb?: number | null };
  const version = (() => {
    try {
      doc = JSON.parse(Buffer.from(input.document).toString('utf8'));
      return doc.version;
    } catch {
      return null;
    }
  })();
  if (Buffer.from(input.signature).toString() !== Buffer.from(sign(input.document)).toString()) return { ok: false, version, code: 'POLICY_SIGNATURE', reason: 'bad signature' };
  const d = doc!;
  if (input.lastGoodVersion !== null && d.version <= input.lastGoodVersion) return { ok: false, version, code: 'POLICY_ROLLBACK', reason: `version ${d.version} is not above ${input.lastGoodVersion}` };
  if (Date.parse(d.expires_at) <= input.nowMs) return { ok: false, version, code: 'POLICY_EXPIRED', reason: 'expired' };
  const effective: EffectivePolicy = {
    version: d.version,
    expiresAt: d.expires_at,
    bandwidthBytesPerSecond: null,
    warnings: [],
    datasets: {
      readings: { hot_retention_hours: d.hot, warm_retention_days: 90, cold_retention_days: null, cold_storage_class: null, compaction_window_minutes: d.cw, target_file_bytes: d.tb ?? null, priority: 0, bandwidth_share: null, upload_windows: [], overflow: 'keep' },
    },
  };
  return { ok: true, document: {} as never, effective };
};

class FakeSource {
  readonly description = 'fake://policy';
  next: (() => FetchOutcome) | null = null;
  fetches = 0;
  async fetch(): Promise<FetchOutcome> {
    this.fetches++;
    if (!this.next) throw new PolicyFetchError('POLICY_SOURCE_UNREACHABLE', 'connect ECONNREFUSED', true);
    return this.next();
  }
  serve(document: Uint8Array, signature = sign(document)): void {
    this.next = () => ({ changed: true, document, signature });
  }
  close(): void {}
}

describe('PolicyAgent', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function agent(stateDir: string, source: FakeSource, applied: EffectivePolicy[], log = recordingLogger(), nowMs = NOW, hot: HotSettingsTarget = { applyDatasetSettings: (s) => s }) {
    const versions: number[] = [];
    const a = new PolicyAgent({
      config: agentPolicyConfigSchema.parse({ url: 'file:///nowhere/policy.yaml', trusted_keys: [{ id: 'k1', public_key: 'x' }], poll_interval_seconds: 3600 }),
      plant: 'ulm',
      stateDir,
      datasets: ['readings'],
      base: { tiering: tieringSchema.parse({}), hot: { compaction_window_minutes: 10 } },
      check: standInChecker,
      apply: (effective) => {
        if (effective.datasets.readings!.hot_retention_hours < 0) throw new Error('cannot apply a negative window');
        applied.push(effective);
      },
      onApplied: (v) => versions.push(v),
      hot,
      logger: log.logger,
      source,
      nowMs: () => nowMs,
    });
    return { agent: a, versions, log };
  }

  function stateDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'policy-agent-'));
    dirs.push(dir);
    return dir;
  }

  it('applies a fetched policy, keeps it on disk, and refuses a bad one without changing anything', async () => {
    const dir = stateDir();
    const source = new FakeSource();
    const applied: EffectivePolicy[] = [];
    const { agent: a, versions, log } = agent(dir, source, applied);
    source.serve(policyBytes(3, 5));
    await a.pollOnce();
    expect(applied.map((p) => p.version)).toEqual([3]);
    expect(versions).toEqual([3]);
    expect(a.status.applied?.version).toBe(3);
    expect(readFileSync(join(dir, 'policy', 'current.yaml'), 'utf8')).toBe(Buffer.from(policyBytes(3, 5)).toString());
    expect(log.records.find((r) => r.obj.code === 'POLICY_APPLIED')?.obj.version).toBe(3);
    expect(a.status.applied?.warnings).toEqual([]); // the stand-in's compaction window is the base's

    // Tampered: the signature no longer matches. Then an older version. Then one the tiering cannot apply.
    const tampered = policyBytes(4, 1);
    source.serve(tampered, sign(policyBytes(4, 5)));
    await a.pollOnce();
    expect(a.status.refused).toMatchObject({ version: 4, code: 'POLICY_SIGNATURE' });
    source.serve(policyBytes(2, 5));
    await a.pollOnce();
    expect(a.status.refused).toMatchObject({ version: 2, code: 'POLICY_ROLLBACK' });
    source.serve(policyBytes(5, -1));
    await a.pollOnce();
    expect(a.status.refused).toMatchObject({ version: 5, code: 'POLICY_APPLY_FAILED' });
    expect(applied.map((p) => p.version)).toEqual([3]);
    expect(a.status.applied?.version).toBe(3);
    expect(readFileSync(join(dir, 'policy', 'current.yaml'), 'utf8')).toBe(Buffer.from(policyBytes(3, 5)).toString());
    const refusals = log.records.filter((r) => r.obj.code === 'POLICY_REFUSED');
    expect(refusals.map((r) => r.obj.reason_code)).toEqual(['POLICY_SIGNATURE', 'POLICY_ROLLBACK', 'POLICY_APPLY_FAILED']);
    const state = JSON.parse(readFileSync(join(dir, 'policy', 'state.json'), 'utf8'));
    expect(state.applied.version).toBe(3);
    expect(state.refused).toMatchObject({ version: 5, code: 'POLICY_APPLY_FAILED' });

    // The same refused document again is not logged again; a newer valid one clears the refusal.
    await a.pollOnce();
    expect(log.records.filter((r) => r.obj.code === 'POLICY_REFUSED')).toHaveLength(3);
    source.serve(policyBytes(6, 2, undefined, 5));
    await a.pollOnce();
    expect(a.status).toMatchObject({ applied: { version: 6 }, refused: null });
    expect(versions).toEqual([3, 6]);
    // The compaction window applies (through the hot tier): no warning, the state says what is in force.
    expect(a.status.applied?.warnings).toEqual([]);
    expect(a.status.applied?.hot).toEqual({ readings: { compaction_window_minutes: 5, target_file_bytes: null } });
  });

  it('applies each dataset\'s compaction window and target file size through the hot tier, restores the defaults, refuses a window that does not divide a day', async () => {
    const dir = stateDir();
    const source = new FakeSource();
    const applied: EffectivePolicy[] = [];
    const calls: Record<string, DatasetHotSettings>[] = [];
    const sealer: HotSettingsTarget = {
      applyDatasetSettings: (settings) => {
        calls.push(structuredClone(settings));
        return settings;
      },
    };
    const { agent: a } = agent(dir, source, applied, recordingLogger(), NOW, sealer);
    source.serve(policyBytes(3, 5, undefined, 5, 64 << 20));
    await a.pollOnce();
    expect(calls).toEqual([{ readings: { compactionWindowMinutes: 5, targetFileBytes: 64 << 20 } }]);
    expect(a.status.applied).toMatchObject({ version: 3, warnings: [], hot: { readings: { compaction_window_minutes: 5, target_file_bytes: 64 << 20 } } });
    // What /v1/status shows survives in state.json.
    expect(JSON.parse(readFileSync(join(dir, 'policy', 'state.json'), 'utf8')).applied.hot).toEqual({ readings: { compaction_window_minutes: 5, target_file_bytes: 64 << 20 } });

    // The next policy sets neither: the config file's window and row cap come back.
    source.serve(policyBytes(4, 5));
    await a.pollOnce();
    expect(calls[1]).toEqual({ readings: { compactionWindowMinutes: 10, targetFileBytes: null } });
    expect(a.status.applied?.hot).toEqual({ readings: { compaction_window_minutes: 10, target_file_bytes: null } });

    // A window that does not divide a day (the stand-in validator lets it through): refused
    // before anything applies, neither tiering nor the hot tier changes.
    source.serve(policyBytes(5, 5, undefined, 7));
    await a.pollOnce();
    expect(a.status.refused).toMatchObject({ version: 5, code: 'POLICY_APPLY_FAILED' });
    expect(a.status.refused?.reason).toMatch(/dataset readings: compaction_window_minutes 7 does not divide a day/);
    expect(applied.map((p) => p.version)).toEqual([3, 4]);
    expect(calls).toHaveLength(2);
    expect(a.status.applied?.version).toBe(4);

    // A restart applies the last good policy's hot settings before any fetch.
    const restarted: Record<string, DatasetHotSettings>[] = [];
    const run2 = agent(dir, new FakeSource(), [], recordingLogger(), NOW, { applyDatasetSettings: (s) => (restarted.push(s), s) });
    await run2.agent.start();
    await run2.agent.stop();
    expect(restarted).toEqual([{ readings: { compactionWindowMinutes: 10, targetFileBytes: null } }]);
  });

  it('re-applies the last good policy at start, before any fetch, while the centre is unreachable', async () => {
    const dir = stateDir();
    const first = new FakeSource();
    const applied: EffectivePolicy[] = [];
    const run1 = agent(dir, first, applied);
    first.serve(policyBytes(7, 3));
    await run1.agent.pollOnce();
    expect(applied.map((p) => p.version)).toEqual([7]);

    // Restart: the source is down. start() applies v7 from disk before its first fetch.
    const down = new FakeSource();
    const appliedAfter: EffectivePolicy[] = [];
    const run2 = agent(dir, down, appliedAfter);
    await run2.agent.start();
    expect(down.fetches).toBe(0);
    expect(appliedAfter.map((p) => [p.version, p.datasets.readings!.hot_retention_hours])).toEqual([[7, 3]]);
    expect(run2.versions).toEqual([7]);
    await run2.agent.stop();
    await run2.agent.pollOnce(); // what the timer would do
    expect(run2.log.records.some((r) => r.obj.code === 'POLICY_FETCH_FAILED')).toBe(true);
    expect(run2.agent.status).toMatchObject({ applied: { version: 7 }, last_fetch: { ok: false } });
    expect(appliedAfter).toHaveLength(1);
  });

  it('keeps a last good policy that expired while the centre was away, and refuses a tampered one on disk', async () => {
    const dir = stateDir();
    const source = new FakeSource();
    const run1 = agent(dir, source, []);
    source.serve(policyBytes(2, 4, '2026-11-21T15:00:00Z'));
    await run1.agent.pollOnce();
    // A restart after the expiry: applied as of when it was accepted, with a warning.
    const later = agent(dir, new FakeSource(), [], recordingLogger(), NOW + 3 * 3_600_000);
    await later.agent.start();
    await later.agent.stop();
    expect(later.agent.status.applied?.version).toBe(2);
    expect(later.log.records.find((r) => r.obj.code === 'POLICY_APPLIED')?.obj.expired).toBe(true);

    // Someone edits the document on disk: it no longer verifies, nothing applies.
    writeFileSync(join(dir, 'policy', 'current.yaml'), policyBytes(2, 1));
    const applied: EffectivePolicy[] = [];
    const run3 = agent(dir, new FakeSource(), applied);
    await run3.agent.start();
    await run3.agent.stop();
    expect(applied).toEqual([]);
    expect(run3.agent.status.applied).toBeNull();
    expect(run3.log.records.find((r) => r.obj.code === 'POLICY_REFUSED')?.obj.from).toBe('last good on disk');
  });

  it('finds the newest whole pair after a crash between the renames of a save', async () => {
    const dir = stateDir();
    const source = new FakeSource();
    const run1 = agent(dir, source, []);
    source.serve(policyBytes(1, 4));
    await run1.agent.pollOnce();
    // A crash after pending.yaml became current.yaml, before the signature's rename.
    const v2 = policyBytes(2, 6);
    writeFileSync(join(dir, 'policy', 'current.yaml'), v2);
    writeFileSync(join(dir, 'policy', 'pending.yaml.sig'), sign(v2));
    const applied: EffectivePolicy[] = [];
    const run2 = agent(dir, new FakeSource(), applied);
    await run2.agent.start();
    await run2.agent.stop();
    expect(applied.map((p) => p.version)).toEqual([2]);
    expect(readFileSync(join(dir, 'policy', 'current.yaml.sig'), 'utf8')).toBe(Buffer.from(sign(v2)).toString());
  });
});

describe('PolicyAgent: the MQTT nudge', () => {
  it('fetches at once when a message arrives on the nudge topic, long before the next poll', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'policy-nudge-'));
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const applied: number[] = [];
    const a = new PolicyAgent({
      config: agentPolicyConfigSchema.parse({
        url: pathToFileURL(join(dir, 'policy.json')).href,
        poll_interval_seconds: 3600,
        trusted_keys: [{ id: 'k1', public_key: 'x' }],
        mqtt_nudge: { url, topic: 'central/policy' },
      }),
      plant: 'ulm',
      stateDir: join(dir, 'state'),
      datasets: ['readings'],
      base: { tiering: tieringSchema.parse({}), hot: { compaction_window_minutes: 10 } },
      check: standInChecker,
      apply: (effective) => applied.push(effective.version),
      hot: { applyDatasetSettings: (settings) => settings },
      logger: recordingLogger().logger,
    });
    const publisher = await mqtt.connectAsync(url);
    try {
      writeFileSync(join(dir, 'policy.json'), policyBytes(1));
      writeFileSync(join(dir, 'policy.json.sig'), sign(policyBytes(1)));
      await a.start();
      await waitFor(() => applied.includes(1) || undefined, 'the first fetch at start');
      await waitFor(() => broker.connectedClients >= 2 || undefined, 'the nudge subscriber to connect');
      writeFileSync(join(dir, 'policy.json.sig'), sign(policyBytes(2)));
      writeFileSync(join(dir, 'policy.json'), policyBytes(2));
      // The subscription may be a moment behind the CONNACK: nudge until it lands.
      await waitFor(async () => {
        await publisher.publishAsync('central/policy', 'version 2', { qos: 1, retain: true });
        return applied.includes(2) || undefined;
      }, 'the nudged fetch to apply version 2');
      expect(applied).toEqual([1, 2]);
    } finally {
      await publisher.endAsync();
      await a.stop();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
