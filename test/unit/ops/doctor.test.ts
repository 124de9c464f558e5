// `lakeside doctor`: each check on a real config file and real sockets (a broker that
// is not there, a TCP port that listens), and a config error reported as a failure.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { endpointsIn, runDoctor } from '../../../agent/ops/doctor.ts';
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
    expect(byCheck('endpoints')).toEqual([expect.objectContaining({ status: 'ok', detail: `alerts.webhook.url: 127.0.0.1:${webhookPort} reachable` })]);
  });

  it('finds endpoints in config sections it does not know yet (S3, catalog)', () => {
    expect(endpointsIn({ warm: { endpoint: 'https://s3.plant.local:9000', bucket: 'b' }, catalog: { uri: 'x', rest_url: 'http://cat:8181' }, note: 'http://not-a-key' }, 'tiering')).toEqual([
      { path: 'tiering.warm.endpoint', url: 'https://s3.plant.local:9000' },
      { path: 'tiering.catalog.rest_url', url: 'http://cat:8181' },
    ]);
  });
});
