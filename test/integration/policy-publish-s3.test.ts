// `lakeside policy publish --to s3://…` against the real S3-compatible server of the
// services harness (versitygw): the signature and the document land under the key,
// a newer version replaces both (the object stores only create: delete + create), and
// the published pair verifies when fetched back.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { registerPolicyCommand } from '../../agent/cli/policy-command.ts';
import { storeSchema } from '../../config/tiering-schema.ts';
import { verifySignature } from '../../sync/policy/signature.ts';
import { S3ObjectStore } from '../../tiering/stores/s3-store.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';

let server: S3Server;
let dir: string;

async function lakeside(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const result = { code: 0, out: '', err: '' };
  const program = new Command().exitOverride();
  registerPolicyCommand(program, { out: (t) => void (result.out += t), err: (t) => void (result.err += t), exit: (c) => void (result.code = c) });
  await program.parseAsync(['policy', ...args], { from: 'user' });
  return result;
}

describe('lakeside policy publish to S3 (versitygw)', () => {
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['central'] });
    dir = await mkdtemp(join(tmpdir(), 'lakeside-policy-s3-'));
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uploads the .sig and the document, and replaces both with a newer version', async () => {
    const keys = join(dir, 'keys');
    expect((await lakeside('keygen', '--out', keys, '--key-id', 'central-1')).code).toBe(0);
    const publicKey = (await readFile(join(keys, 'central-1.pub'), 'utf8')).trim();
    process.env.LAKESIDE_POLICY_TEST_KEY = server.accessKeyId;
    process.env.LAKESIDE_POLICY_TEST_SECRET = server.secretAccessKey;
    const config = join(dir, 'agent.yaml');
    await writeFile(
      config,
      stringify({
        plant: 'ulm',
        datasets: [{ name: 'sensor_readings', time_column: 'ts', columns: [{ name: 'value', type: 'double' }] }],
        policy: {
          url: 's3://central/policies/fleet.yaml',
          trusted_keys: [{ id: 'central-1', public_key: publicKey }],
          store: {
            endpoint: server.endpoint,
            region: server.region,
            force_path_style: true,
            credentials: { access_key_id: '${env:LAKESIDE_POLICY_TEST_KEY}', secret_access_key: '${env:LAKESIDE_POLICY_TEST_SECRET}' },
          },
        },
      }),
    );
    // Reading back with the server's keys (as the loader leaves a config: references resolved).
    const settings = storeSchema.parse({ url: 's3://central', endpoint: server.endpoint, region: server.region, force_path_style: true });
    const store = new S3ObjectStore({ ...settings, credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } });
    try {
      for (const version of [1, 2]) {
        const file = join(dir, `v${version}.yaml`);
        await writeFile(file, stringify({ version, issued_at: '2026-01-01T00:00:00Z', expires_at: '2099-01-01T00:00:00Z', plants: ['*'] }));
        expect((await lakeside('sign', file, '--key', join(keys, 'central-1.pem'), '--key-id', 'central-1')).code).toBe(0);
        const published = await lakeside('publish', file, '--to', 's3://central/policies/fleet.yaml', '--config', config);
        expect(published).toMatchObject({ code: 0, err: '' });
        expect(published.out).toContain(`published version ${version} signed by central-1`);
        const document = Buffer.from(await text(await store.get('policies/fleet.yaml')));
        const signature = Buffer.from(await text(await store.get('policies/fleet.yaml.sig')));
        expect(document).toEqual(await readFile(file));
        expect(verifySignature(document, signature, [{ id: 'central-1', public_key: publicKey }]).ok).toBe(true);
      }
      // Publishing the same pair again changes nothing (the stored sha256 matches).
      const again = await lakeside('publish', join(dir, 'v2.yaml'), '--to', 's3://central/policies/fleet.yaml', '--config', config);
      expect(again.out).toMatch(/^unchanged s3:\/\/central\/policies\/fleet\.yaml\.sig\nunchanged s3:\/\/central\/policies\/fleet\.yaml\n/);
    } finally {
      await store.close();
      delete process.env.LAKESIDE_POLICY_TEST_KEY;
      delete process.env.LAKESIDE_POLICY_TEST_SECRET;
    }
  });
});
