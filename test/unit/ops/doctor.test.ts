// `lakeside doctor`: each check on a real config file and real sockets (a broker that
// is not there, a TCP port that listens), and a config error reported as a failure;
// the S3 stores, the catalog, the policy locations and Kafka brokers of a real config
// are all reached for.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../../config/loader.ts';
import { remoteEndpoints, runDoctor } from '../../../agent/ops/doctor.ts';
import { freePort } from '../../support/free-port.ts';

let dir: string;
let server: Server | null = null;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lakeside-doctor-'));
});
afterEach(async () => {
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = null;
  await rm(dir, { recursive: true, force: true });
});

async function configWith(extra: string): Promise<string> {
  const path = join(dir, 'lakeside.yaml');
  await writeFile(
    path,
    `plant: doc
state_dir: ${join(dir, 'state')}
datasets:
  - { name: readings, time_column: ts, columns: [{ name: value, type: double }] }
${extra}`,
  );
  return path;
}

describe('doctor', () => {
  it('reports an invalid config as a failure naming the field, and runs nothing else', async () => {
    const results = await runDoctor(await configWith('alerts: { feed_gap: { k: 0 } }'));
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ check: 'config', status: 'fail', detail: expect.stringMatching(/alerts\.feed_gap\.k/) });
  });

  it('checks state directory, disk and clock, an unreachable broker and a reachable webhook host', async () => {
    await mkdir(join(dir, 'state'), { mode: 0o755 });
    await chmod(join(dir, 'state'), 0o755);
    server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const webhookPort = (server.address() as AddressInfo).port;
    const deadPort = await freePort();
    const path = await configWith(`sources:
  mqtt:
    - name: plant
      url: mqtt://127.0.0.1:${deadPort}
      client_id: lakeside-doc
      routes: [{ filter: 'a/#', dataset: readings, fields: { ts: { received_at: true }, value: { json: v } } }]
alerts:
  webhook: { url: 'http://127.0.0.1:${webhookPort}/hook' }
`);
    const results = await runDoctor(path, { timeoutMs: 2000 });
    const byCheck = (check: string) => results.filter((r) => r.check === check);
    expect(byCheck('config')[0]!.status).toBe('ok');
    expect(byCheck('state directory').map((r) => r.status)).toEqual(['ok', 'warn']); // writable; others can read it
    expect(byCheck('state directory')[1]!.detail).toMatch(/mode 755/);
    expect(byCheck('disk')[0]!.detail).toMatch(/GiB free of/);
    expect(byCheck('clock')[0]!.status).toBe('ok');
    expect(byCheck('mqtt')).toEqual([expect.objectContaining({ status: 'fail', detail: expect.stringMatching(new RegExp(`source plant: mqtt://127.0.0.1:${deadPort} refused or unreachable`)) })]);
    expect(byCheck('webhook')).toEqual([expect.objectContaining({ status: 'ok', detail: `alerts.webhook.url: 127.0.0.1:${webhookPort} reachable` })]);
  });

  it('reaches the S3 store and fails on an unreachable catalog and token endpoint', async () => {
    server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const s3Port = (server.address() as AddressInfo).port;
    const [catalogPort, tokenPort] = [await freePort(), await freePort()];
    const path = await configWith(`tiering:
  warm: { url: 's3://plant-warm/ulm', endpoint: 'http://127.0.0.1:${s3Port}', force_path_style: true }
catalog:
  type: rest
  rest:
    uri: http://127.0.0.1:${catalogPort}/api/catalog
    oauth2: { token_endpoint: 'http://127.0.0.1:${tokenPort}/token', client_id: lakeside, client_secret: '\${file:${join(dir, 'client-secret')}}' }
`);
    await writeFile(join(dir, 'client-secret'), 'not-used');
    const results = await runDoctor(path, { timeoutMs: 2000 });
    expect(results.filter((r) => r.check === 's3')).toEqual([
      { check: 's3', status: 'ok', detail: `tiering.warm: 127.0.0.1:${s3Port} reachable` },
      // Something listens, but it is no S3 server: the listing fails.
      expect.objectContaining({ status: 'fail', detail: expect.stringMatching(/^tiering.warm: s3:\/\/plant-warm\/ulm cannot be listed/) }),
    ]);
    expect(results.filter((r) => r.check === 'catalog')).toEqual([
      expect.objectContaining({ status: 'fail', detail: expect.stringMatching(new RegExp(`^catalog.rest.uri: 127.0.0.1:${catalogPort} unreachable`)) }),
      expect.objectContaining({ status: 'fail', detail: expect.stringMatching(new RegExp(`^catalog.rest.oauth2.token_endpoint: 127.0.0.1:${tokenPort} unreachable`)) }),
      expect.objectContaining({ status: 'fail', detail: expect.stringMatching(/^catalog.rest.uri: GET \/v1\/config failed/) }),
    ]);
  });

  it('lists the remote services of every section: S3 stores (AWS by region without an endpoint), catalog, policy locations, Kafka brokers, webhook; file: stores are local', async () => {
    const path = await configWith(`tiering:
  warm: { url: 's3://plant-warm/ulm', region: eu-central-1 }
  cold: { url: 'file:///srv/archive' }
catalog:
  type: rest
  rest: { uri: 'https://catalog.example.com/api/catalog' }
policy:
  url: s3://policies/plant.yaml
  store: { endpoint: 'http://minio.plant.local:9000', force_path_style: true }
  status: { url: 'file:///srv/status' }
  trusted_keys: [{ id: k1, public_key: MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE= }]
  mqtt_nudge: { url: 'mqtt://centre.example.com', topic: lakeside/policy }
sources:
  kafka:
    - name: mes
      brokers: ['kafka1.plant.local:9092', 'kafka2.plant.local:9093']
      client_id: lakeside
      group_id: lakeside
      routes: [{ topic: mes.orders, dataset: readings, fields: { ts: { received_at: true }, value: { json: v } } }]
alerts:
  webhook: { url: 'https://hooks.example.com/lakeside' }
`);
    const { config } = await loadConfigFile(path);
    expect(remoteEndpoints(config)).toEqual([
      { check: 's3', path: 'tiering.warm', url: 'https://s3.eu-central-1.amazonaws.com' },
      { check: 'catalog', path: 'catalog.rest.uri', url: 'https://catalog.example.com/api/catalog' },
      { check: 'policy', path: 'policy.url', url: 'http://minio.plant.local:9000' },
      { check: 'policy', path: 'policy.mqtt_nudge.url', url: 'mqtt://centre.example.com' },
      { check: 'kafka', path: 'sources.kafka mes brokers[0]', url: 'tcp://kafka1.plant.local:9092' },
      { check: 'kafka', path: 'sources.kafka mes brokers[1]', url: 'tcp://kafka2.plant.local:9093' },
      { check: 'webhook', path: 'alerts.webhook.url', url: 'https://hooks.example.com/lakeside' },
    ]);
  });

  it('lists the S3 store with its credentials and asks the catalog for its config: refused credentials fail, naming the field, never the secret', async () => {
    let s3Status = 403;
    const requests: string[] = [];
    const s3 = createHttpServer((request, response) => {
      requests.push(`${request.method} ${request.url}`);
      if (s3Status === 403) {
        response.writeHead(403, { 'content-type': 'application/xml' });
        response.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The access key does not exist.</Message></Error>');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/xml' });
      response.end('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>plant-warm</Name><Prefix>ulm/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>');
    });
    let catalogStatus = 401;
    const catalog = createHttpServer((request, response) => {
      if (catalogStatus !== 200 || !request.url?.startsWith('/api/catalog/v1/config')) {
        response.writeHead(catalogStatus === 200 ? 404 : catalogStatus, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { message: 'Not authorized', type: 'NotAuthorizedException', code: 401 } }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ defaults: {}, overrides: { prefix: 'ulm' } }));
    });
    const listen = (s: HttpServer) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
    const [s3Port, catalogPort] = [await listen(s3), await listen(catalog)];
    try {
      await writeFile(join(dir, 's3-key-id'), 'AKIATEST');
      await writeFile(join(dir, 's3-secret'), 'very-secret-s3-key');
      await writeFile(join(dir, 'catalog-token'), 'very-secret-token');
      const path = await configWith(`tiering:
  warm:
    url: 's3://plant-warm/ulm'
    endpoint: 'http://127.0.0.1:${s3Port}'
    region: eu-central-1
    force_path_style: true
    credentials: { access_key_id: '\${file:${join(dir, 's3-key-id')}}', secret_access_key: '\${file:${join(dir, 's3-secret')}}' }
catalog:
  type: rest
  rest: { uri: 'http://127.0.0.1:${catalogPort}/api/catalog', token: '\${file:${join(dir, 'catalog-token')}}' }
`);
      const refused = (await runDoctor(path, { timeoutMs: 5000 })).filter((r) => r.detail.includes('listed') || r.detail.includes('/v1/config'));
      expect(refused).toEqual([
        expect.objectContaining({ check: 's3', status: 'fail', detail: expect.stringMatching(/^tiering.warm: s3:\/\/plant-warm\/ulm cannot be listed: .*(InvalidAccessKeyId|403|access key)/) }),
        expect.objectContaining({ check: 'catalog', status: 'fail', detail: expect.stringMatching(/^catalog.rest.uri: GET \/v1\/config failed: .*401/) }),
      ]);
      expect(JSON.stringify(refused)).not.toMatch(/very-secret/);
      expect(requests.some((r) => r.startsWith('GET /plant-warm') && r.includes('list-type=2'))).toBe(true); // a real ListObjectsV2 of the bucket

      s3Status = 200;
      catalogStatus = 200;
      const accepted = (await runDoctor(path, { timeoutMs: 5000 })).filter((r) => r.detail.includes('listed') || r.detail.includes('/v1/config'));
      expect(accepted).toEqual([
        { check: 's3', status: 'ok', detail: 'tiering.warm: s3://plant-warm/ulm listed (empty)' },
        { check: 'catalog', status: 'ok', detail: 'catalog.rest.uri: GET /v1/config answered (prefix ulm)' },
      ]);
    } finally {
      for (const s of [s3, catalog]) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
      }
    }
  });
});
