import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { registerPolicyCommand } from '../../../agent/cli/policy-command.ts';
import { publishPolicy } from '../../../sync/policy/publish.ts';
import { FileObjectStore } from '../../../tiering/stores/file-store.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lakeside-policy-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function lakeside(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const result = { code: 0, out: '', err: '' };
  const program = new Command().exitOverride();
  registerPolicyCommand(program, {
    out: (text) => void (result.out += text),
    err: (text) => void (result.err += text),
    exit: (code) => void (result.code = code),
  });
  await program.parseAsync(['policy', ...args], { from: 'user' });
  return result;
}

function policy(version: number, extra: Record<string, unknown> = {}): string {
  return stringify({
    version,
    issued_at: '2026-01-01T00:00:00Z',
    expires_at: '2099-01-01T00:00:00Z',
    plants: ['*'],
    defaults: { datasets: { '*': { hot_retention_hours: 48 } } },
    ...extra,
  });
}

const CONFIG = `
plant: ulm
state_dir: ./state
tiering:
  disk_budget: { max_bytes: 1000000000 }
datasets:
  - name: sensor_readings
    time_column: ts
    columns: [{ name: value, type: double }]
policy:
  url: file:///tmp/policy.yaml
  trusted_keys: [{ id: central-1, public_key: PLACEHOLDER }]
  floors: { hot_retention_hours: 12 }
`;

describe('lakeside policy', () => {
  it('keygen → sign → verify → validate → diff → publish to a file:// location', async () => {
    const keys = join(dir, 'keys');
    const keygen = await lakeside('keygen', '--out', keys, '--key-id', 'central-1');
    expect(keygen.code).toBe(0);
    expect((await stat(join(keys, 'central-1.pem'))).mode & 0o777).toBe(0o600);
    const raw = (await readFile(join(keys, 'central-1.pub'), 'utf8')).trim();
    expect(keygen.out).toContain(`public_key: ${raw}`);
    expect((await lakeside('keygen', '--out', keys, '--key-id', 'central-1')).code).toBe(2); // never overwrites

    const v1 = join(dir, 'v1.yaml');
    const v2 = join(dir, 'v2.yaml');
    await writeFile(v1, policy(1));
    await writeFile(v2, policy(2, { overrides: { ulm: { datasets: { sensor_readings: { hot_retention_hours: 6 } } } }, allow_short_retention: true }));
    for (const file of [v1, v2]) expect((await lakeside('sign', file, '--key', join(keys, 'central-1.pem'), '--key-id', 'central-1')).code).toBe(0);

    const verified = await lakeside('verify', v1, '--trusted', join(keys, 'central-1.pub'));
    expect(verified).toMatchObject({ code: 0, out: `${v1}: good signature by key central-1\n` });
    expect((await lakeside('verify', v1, '--trusted', join(keys, 'central-1.pub.pem'))).code).toBe(0);
    // Rotation: a second key; either verifies when both are trusted.
    await lakeside('keygen', '--out', keys, '--key-id', 'central-2');
    const rotated = join(dir, 'rotated.yaml');
    await writeFile(rotated, policy(1));
    await lakeside('sign', rotated, '--key', join(keys, 'central-2.pem'), '--key-id', 'central-2');
    const both = await lakeside('verify', rotated, '--trusted', join(keys, 'central-1.pub'), join(keys, 'central-2.pub'));
    expect(both).toMatchObject({ code: 0, out: `${rotated}: good signature by key central-2\n` });
    expect((await lakeside('verify', rotated, '--trusted', join(keys, 'central-1.pub'))).code).toBe(1);
    const config = join(dir, 'agent.yaml');
    await writeFile(config, CONFIG.replace('PLACEHOLDER', raw));
    expect((await lakeside('verify', v1, '--config', config)).code).toBe(0);
    const otherId = await lakeside('verify', v1, '--trusted', `central-2=${join(keys, 'central-1.pub')}`);
    expect(otherId).toMatchObject({ code: 1, err: `${v1}: unknown key central-1\n` });

    const validated = await lakeside('validate', v2, '--config', config);
    expect(validated.code).toBe(0);
    expect(validated.out).toMatch(/^plant ulm: ok, version 2/);
    expect(validated.out).toMatch(/sensor_readings\s+6 h\s+90 d/);
    expect(validated.out).toMatch(/blobs\s+48 h/);

    const diff = await lakeside('diff', v1, v2);
    expect(diff.code).toBe(0);
    expect(diff.out).toMatch(/-\s+-\s+version\s+1\s+2/);
    expect(diff.out).toMatch(/ulm\s+sensor_readings\s+hot_retention_hours\s+48\s+6/);

    const central = join(dir, 'central');
    const target = `${pathToFileURL(central).href}/policy.yaml`;
    const published = await lakeside('publish', v1, '--to', target, '--trusted', join(keys, 'central-1.pub'));
    expect(published.code).toBe(0);
    expect(await readFile(join(central, 'policy.yaml'))).toEqual(await readFile(v1));
    expect(await readFile(join(central, 'policy.yaml.sig'))).toEqual(await readFile(`${v1}.sig`));
    // A newer version replaces both; the published pair verifies.
    expect((await lakeside('publish', v2, '--to', target, '--config', config)).code).toBe(0);
    expect(await readFile(join(central, 'policy.yaml'))).toEqual(await readFile(v2));
    expect((await lakeside('verify', join(central, 'policy.yaml'), '--config', config)).code).toBe(0);
  });

  it('refuses to publish a tampered document, and leaves the published one alone', async () => {
    const keys = join(dir, 'keys');
    await lakeside('keygen', '--out', keys, '--key-id', 'k');
    const file = join(dir, 'p.yaml');
    await writeFile(file, policy(3));
    await lakeside('sign', file, '--key', join(keys, 'k.pem'), '--key-id', 'k');
    await writeFile(file, policy(3).replace('48', '4'));
    const result = await lakeside('publish', file, '--to', pathToFileURL(join(dir, 'central', 'p.yaml')).href, '--trusted', join(keys, 'k.pub'));
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/not published: .*signature does not match \(tampered\?\)/);
    await expect(stat(join(dir, 'central', 'p.yaml'))).rejects.toThrow(/ENOENT/);
    expect((await lakeside('verify', file, '--trusted', join(keys, 'k.pub'))).code).toBe(1);
  });

  it('validate reports refusals per plant with their code, exit 1', async () => {
    const file = join(dir, 'p.yaml');
    await writeFile(file, policy(1, { plants: ['ulm', 'augsburg'], overrides: { augsburg: { datasets: { '*': { hot_retention_hours: 2 } } } } }));
    const result = await lakeside('validate', file);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/plant ulm: ok/);
    expect(result.out).toMatch(/plant augsburg: REFUSED POLICY_UNSAFE: plant augsburg, dataset \*: hot_retention_hours 2h is under this plant's floor of 24h/);
    expect(result.err).toMatch(/refused for 1 of 2 plant/);
    const scoped = await lakeside('validate', file, '--plant', 'berlin');
    expect(scoped.out).toMatch(/REFUSED POLICY_SCOPE/);
  });

  it('names bad input with exit 2', async () => {
    const missing = await lakeside('verify', join(dir, 'nope.yaml'), '--trusted', 'x.pub');
    expect(missing).toMatchObject({ code: 2, err: expect.stringMatching(/cannot read policy .*nope\.yaml \(ENOENT\)/) });
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, policy(1, { defaults: { datasets: { frames: { priority: 'high' } } } }));
    const invalid = await lakeside('validate', bad);
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/invalid policy .*bad\.yaml: defaults\.datasets\.frames\.priority: .*\(line \d+\)/);
    const noKeys = await lakeside('verify', bad);
    expect(noKeys.code).toBe(2);
    const keys = join(dir, 'keys');
    await lakeside('keygen', '--out', keys, '--key-id', 'k');
    await writeFile(bad, policy(1));
    await lakeside('sign', bad, '--key', join(keys, 'k.pem'), '--key-id', 'k');
    for (const to of ['http://x/y', 's3://bucket-only', 'file:relative/p.yaml']) {
      const target = await lakeside('publish', bad, '--to', to, '--trusted', join(keys, 'k.pub'));
      expect(target).toMatchObject({ code: 2, err: expect.stringContaining(`--to ${to}: expected`) });
    }
    const wrongKey = await lakeside('sign', bad, '--key', join(keys, 'k.pub.pem'), '--key-id', 'k');
    expect(wrongKey).toMatchObject({ code: 2, err: expect.stringMatching(/^private key .*k\.pub\.pem: /) });
  });

  it('prints a JSON Schema that describes the document', async () => {
    const result = await lakeside('schema');
    const schema = JSON.parse(result.out) as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['version', 'expires_at', 'plants', 'defaults', 'overrides', 'allow_short_retention']));
    expect(schema.required).toEqual(expect.arrayContaining(['version', 'expires_at', 'plants']));
    expect(schema.required).not.toContain('defaults');
  });

  it('is registered in the lakeside command (exit codes from the real binary)', () => {
    const main = join(import.meta.dirname, '../../../agent/cli/main.ts');
    const ok = spawnSync(process.execPath, [main, 'policy', 'schema'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('"allow_short_retention"');
    const missing = spawnSync(process.execPath, [main, 'policy', 'verify', join(dir, 'nope.yaml'), '--trusted', 'k.pub'], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
  });
});

describe('publishPolicy', () => {
  it('writes the signature before the document (a poller never sees a new document with an old signature)', async () => {
    const store = new FileObjectStore(join(dir, 'central'));
    await store.start();
    const order: string[] = [];
    const recording = Object.assign(Object.create(store) as FileObjectStore, {
      putBytes: (key: string, bytes: Uint8Array) => {
        order.push(key);
        return store.putBytes(key, bytes);
      },
    });
    await publishPolicy(recording, 'policy.yaml', Buffer.from('v1'), Buffer.from('sig1'));
    await publishPolicy(recording, 'policy.yaml', Buffer.from('v2'), Buffer.from('sig2'));
    expect(order).toEqual(['policy.yaml.sig', 'policy.yaml', 'policy.yaml.sig', 'policy.yaml']);
    expect(await readFile(join(dir, 'central', 'policy.yaml'), 'utf8')).toBe('v2');
    const again = await publishPolicy(recording, 'policy.yaml', Buffer.from('v2'), Buffer.from('sig2'));
    expect(again.every((r) => r.unchanged)).toBe(true);
    expect(order).toHaveLength(4);
  });
});
