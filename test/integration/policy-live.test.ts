// Central policies with the real daemon as a child process, the policy on a file://
// location, signed in the test with node:crypto (Ed25519, the detached-signature JSON).
//   1. Policy v1 closes the upload window of frames and blobs: frames are ingested,
//      compacted and registered for upload, and stay local.
//   2. v2 is published while the daemon runs: it opens the window and shortens the hot
//      window, and the same process (no restart) uploads, commits and evicts them; its
//      compaction window and target file size for frames show as applied in /v1/status.
//   3. The policy location disappears and the daemon restarts: v2 is applied from disk
//      before the first (failing) fetch, and new frames follow it (uploaded, evicted),
//      where the config file alone would keep them for 72 hours.
// Status reports (status/<plant>.json) and the policy version metric follow along.
// No timing assertions: the test waits for conditions.
import Database from 'better-sqlite3';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon, type ChildDaemon } from '../support/child-daemon.ts';
import { freePort } from '../support/free-port.ts';
import { framesTieringConfig } from '../support/tiering-daemon-config.ts';
import { waitFor } from '../support/wait-for.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const RAW_PUBLIC = publicKey.export({ type: 'spki', format: 'der' }).subarray(12).toString('base64');

/** Writes the document and its detached signature, signature first (the agent re-fetches a half-published pair). */
function publish(dir: string, doc: object): void {
  const bytes = Buffer.from(JSON.stringify(doc, null, 2));
  const signature = { alg: 'ed25519', key_id: 'central-1', signature: sign(null, bytes, privateKey).toString('base64') };
  writeFileSync(join(dir, 'policy.json.sig'), JSON.stringify(signature));
  writeFileSync(join(dir, 'policy.json'), bytes);
}

function policy(version: number, datasets: Record<string, object>): object {
  return {
    version,
    issued_at: new Date(Date.now() - 60_000).toISOString(),
    expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    plants: ['polplant'],
    allow_short_retention: true,
    defaults: { datasets },
  };
}

interface Row {
  kind: string;
  local_path: string;
  state: string;
  local_state: string;
}

function rows(stateDir: string): Row[] {
  if (!existsSync(join(stateDir, 'landing.db'))) return [];
  const db = new Database(join(stateDir, 'landing.db'), { readonly: true, fileMustExist: true });
  try {
    if (!db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get()) return [];
    return db.prepare('SELECT kind, local_path, state, local_state FROM tier_files ORDER BY id').all() as Row[];
  } finally {
    db.close();
  }
}

function dropFrames(dropDir: string, prefix: string, n: number): void {
  const past = (Date.now() - 5 * 60_000) / 1000;
  mkdirSync(join(dropDir, 'l1'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const file = join(dropDir, 'l1', `${prefix}${i}.bin`);
    writeFileSync(file, randomBytes(4096));
    utimesSync(file, past, past);
  }
}

const policyLog = (d: ChildDaemon, code: string) => d.logs().filter((l) => l.code === code);
/** Waits for a log line with these fields; answers its JSON. */
async function logged(d: ChildDaemon, fields: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const line = await d.waitForLine((l) => l.json !== undefined && Object.entries(fields).every(([k, v]) => l.json![k] === v), timeoutMs);
  return line.json!;
}

describe('central policy on a running daemon', () => {
  let dir: string;
  const daemons: ChildDaemon[] = [];
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('applies a new version live, and keeps the last good one across a restart with the centre unreachable', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lakeside-policy-live-'));
    const stateDir = join(dir, 'state');
    const dropDir = join(dir, 'drop');
    const centre = join(dir, 'centre');
    const reports = join(dir, 'reports');
    mkdirSync(centre, { recursive: true });
    const apiPort = await freePort();
    const configPath = join(dir, 'lakeside.yaml');
    // A window that is closed now: the hour half a day away.
    const closed = [`* ${(new Date().getUTCHours() + 12) % 24} * * *`];
    writeFileSync(
      configPath,
      `${framesTieringConfig({ plant: 'polplant', stateDir, dropDir, apiPort })}  warm: { url: "${pathToFileURL(join(dir, 'warm')).href}" }
  wait_for_hour_merge: false
  scan_interval_ms: 200
  eviction_interval_ms: 300
  retry_initial_ms: 100
  retry_max_ms: 1000
policy:
  url: "${pathToFileURL(join(centre, 'policy.json')).href}"
  poll_interval_seconds: 1
  trusted_keys: [{ id: central-1, public_key: "${RAW_PUBLIC}" }]
  status: { url: "${pathToFileURL(reports).href}", interval_seconds: 1 }
`,
    );
    publish(centre, policy(1, { frames: { upload_windows: closed }, blobs: { upload_windows: closed } }));

    // 1. v1: held back.
    const first = await startDaemon({ config: configPath });
    daemons.push(first);
    await logged(first, { code: 'POLICY_APPLIED', version: 1 });
    dropFrames(dropDir, 'a', 4);
    // Registered for upload (the uploader's pass that found them would have uploaded them next)…
    await waitFor(() => rows(stateDir).filter((r) => r.kind === 'data').length > 0 || undefined, 'frames registered in the tier map', 60_000);
    // …and a few passes later still local: the window holds them.
    await waitFor(() => existsSync(join(reports, 'status', 'polplant.json')) || undefined, 'a status report', 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(rows(stateDir).every((r) => r.state === 'local')).toBe(true);
    const held = JSON.parse(readFileSync(join(reports, 'status', 'polplant.json'), 'utf8'));
    expect(held.policy.applied_version).toBe(1);

    // 2. v2, live: the window opens, the hot window shrinks to 36 s (the frames are 5 minutes old).
    const pid = first.pid;
    // It also sets frames' compaction window (1 → 2 minutes) and target file size: applied live by the hot tier.
    publish(centre, policy(2, { frames: { hot_retention_hours: 0.01, compaction_window_minutes: 2, target_file_bytes: 1 << 20 } }));
    await logged(first, { code: 'POLICY_APPLIED', version: 2 });
    await waitFor(() => {
      const data = rows(stateDir).filter((r) => r.kind === 'data');
      return data.length > 0 && data.every((r) => r.state === 'committed' && r.local_state === 'evicted') ? data : undefined;
    }, () => `frames uploaded and evicted live: ${JSON.stringify(rows(stateDir))}`, 60_000);
    expect(first.pid).toBe(pid);
    const metrics = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
    expect(metrics).toMatch(/^lakeside_policy_version 2$/m);
    const status = (await (await fetch(`http://127.0.0.1:${apiPort}/v1/status`)).json()) as { policy: { applied: { version: number; warnings: string[]; hot: object } } };
    expect(status.policy.applied.version).toBe(2);
    expect(status.policy.applied.hot).toEqual({ frames: { compaction_window_minutes: 2, target_file_bytes: 1 << 20 } });
    expect(status.policy.applied.warnings).toEqual([]);
    // A tampered v3 is refused, v2 stays.
    writeFileSync(join(centre, 'policy.json'), JSON.stringify(policy(3, { frames: { hot_retention_hours: 0.02 } })));
    await logged(first, { code: 'POLICY_REFUSED', version: 3, reason_code: 'POLICY_SIGNATURE' });
    await waitFor(() => {
      const report = JSON.parse(readFileSync(join(reports, 'status', 'polplant.json'), 'utf8'));
      return report.policy.refused?.version === 3 ? report : undefined;
    }, 'the refusal in the status report', 30_000);
    await first.stop();

    // 3. The centre is unreachable; restart: v2 from disk, before the first fetch fails.
    rmSync(centre, { recursive: true, force: true });
    const second = await startDaemon({ config: configPath });
    daemons.push(second);
    const applied = await logged(second, { code: 'POLICY_APPLIED' });
    expect(applied).toMatchObject({ version: 2, from: 'last good on disk' });
    await logged(second, { code: 'POLICY_FETCH_FAILED' });
    const logs = second.logs();
    expect(logs.findIndex((l) => l.code === 'POLICY_APPLIED')).toBeLessThan(logs.findIndex((l) => l.code === 'POLICY_FETCH_FAILED'));
    const before = rows(stateDir).filter((r) => r.kind === 'data').length;
    dropFrames(dropDir, 'b', 3);
    await waitFor(() => {
      const data = rows(stateDir).filter((r) => r.kind === 'data');
      return data.length > before && data.every((r) => r.state === 'committed' && r.local_state === 'evicted') ? data : undefined;
    }, () => `new frames follow v2 after the restart: ${JSON.stringify(rows(stateDir))}`, 60_000);
    expect(policyLog(second, 'POLICY_REFUSED')).toEqual([]);
    await second.stop();
  }, 240_000);
});
