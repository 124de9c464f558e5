// Central policies over S3 (versitygw of the services harness): the agent's conditional
// fetch of the policy pair (IfNoneMatch: unchanged until either half changes), status
// reports written to s3://…/status/<plant>.json (overwritten), and
// `lakeside fleet status --from s3://…` reading them back.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicySource, loadedStoreConfig } from '../../sync/policy/fetch.ts';
import { buildPlantStatus, StatusLocation } from '../../sync/policy/status-report.ts';
import { s3ClientConfig } from '../../tiering/stores/s3-store.ts';
import { startS3Server, type S3Server } from '../services/s3-server.ts';
import { nodeBinary, REPO_ROOT } from '../support/child-daemon.ts';

const run = promisify(execFile);
let server: S3Server;

describe('central policy and status over S3 (versitygw)', () => {
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['central'] });
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('fetches the pair conditionally, writes status reports, and fleet status reads them', async () => {
    const store = { endpoint: server.endpoint, region: server.region, force_path_style: true, credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey } };
    const client = new S3Client(s3ClientConfig(loadedStoreConfig('s3://central', store)));
    const put = (key: string, body: string) => client.send(new PutObjectCommand({ Bucket: 'central', Key: key, Body: body }));
    try {
      await put('policies/fleet.yaml', 'version: 1\n');
      await put('policies/fleet.yaml.sig', 'sig-1');
      const source = new PolicySource({ url: 's3://central/policies/fleet.yaml', store });
      const first = await source.fetch();
      expect(first.changed && Buffer.from(first.document).toString()).toBe('version: 1\n');
      expect(await source.fetch()).toEqual({ changed: false });
      await put('policies/fleet.yaml', 'version: 2\n');
      const second = await source.fetch();
      expect(second.changed && Buffer.from(second.document).toString()).toBe('version: 2\n');
      expect(second.changed && Buffer.from(second.signature).toString()).toBe('sig-1');
      expect(await source.fetch()).toEqual({ changed: false });
      source.close();
      const missing = new PolicySource({ url: 's3://central/policies/absent.yaml', store });
      await expect(missing.fetch()).rejects.toMatchObject({ code: 'POLICY_SOURCE_UNREACHABLE', retriable: true });
      missing.close();

      const location = new StatusLocation('s3://central/fleet', store);
      const now = Date.now();
      const snapshot = { disk: { size_bytes: 100, free_bytes: 50, watermark: 'ok' }, alerts: [] };
      for (const [plant, version] of [['ulm', 3], ['augsburg', 2], ['zwickau', 3]] as const) {
        await location.write(plant, buildPlantStatus({ plant, agentId: plant, nowMs: now - 60_000, intervalSeconds: 60, policy: null, snapshot, datasets: [] }));
        await location.write(plant, buildPlantStatus({ plant, agentId: plant, nowMs: now, intervalSeconds: 60, policy: { source: 's3', applied: { version, applied_at: '', expires_at: '', warnings: [] }, refused: null, last_fetch: null }, snapshot, datasets: [] }));
      }
      const read = await location.readAll();
      expect(read.map((r) => [r.status?.plant, r.status?.policy.applied_version])).toEqual([['augsburg', 2], ['ulm', 3], ['zwickau', 3]]);
      location.close();

      const { stdout } = await run(nodeBinary(), ['bin/lakeside.js', 'fleet', 'status', '--from', 's3://central/fleet', '--endpoint', server.endpoint, '--region', server.region, '--force-path-style'], {
        cwd: REPO_ROOT,
        env: { ...process.env, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
      });
      expect(stdout).toMatch(/augsburg\s+augsburg\s+2 .*BEHIND: policy 2 < 3/);
      expect(stdout).toMatch(/^ulm\s+ulm\s+3 /m);
    } finally {
      client.destroy();
    }
  }, 120_000);
});
