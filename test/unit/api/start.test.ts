// startApiServer: refuses to expose an unauthenticated API beyond loopback, listens,
// and serves TLS with the certificate files read at start.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopbackHost, startApiServer } from '../../../agent/api/server.ts';
import { hasOpenssl, writeSelfSignedCert } from '../../support/tls-cert.ts';
import { readToken, testServer } from './fakes.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('startApiServer', () => {
  it.each(['0.0.0.0', '::', '10.1.2.3', 'plant-server.local'])('refuses %s without tokens, naming the config fields', async (host) => {
    app = testServer({ tokens: [] });
    await expect(startApiServer(app, { host, port: 0 })).rejects.toMatchObject({
      code: 'API_EXPOSED_WITHOUT_TOKENS',
      message: expect.stringMatching(/api\.listen_host.*api\.tokens/),
    });
    expect(app.server.listening).toBe(false);
  });

  it('listens on a non-loopback host when tokens are configured', async () => {
    app = testServer({ tokens: [readToken] });
    const { url } = await startApiServer(app, { host: '0.0.0.0', port: 0 });
    expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    const port = new URL(url).port;
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
  });

  it('listens on loopback without tokens', async () => {
    app = testServer({ tokens: [] });
    const { url } = await startApiServer(app, { host: '127.0.0.1', port: 0 });
    expect(await (await fetch(`${url}/v1/latest?dataset=sensors&line=3`)).json()).toMatchObject({ dataset: 'sensors' });
  });

  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.168.1.1', '::ffff:10.0.0.1', 'example.com']) expect(isLoopbackHost(host)).toBe(false);
  });

  // Never skipped in CI (.ci/run installs openssl); a developer machine without it skips.
  it.skipIf(!hasOpenssl() && process.env.CI !== 'true')('serves https with the certificate and key read at start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'api-tls-'));
    try {
      const certFile = join(dir, 'cert.pem');
      const keyFile = join(dir, 'key.pem');
      app = testServer({ tls: { certFile, keyFile } });
      // The files are read at start, not at build: they may appear after building.
      writeSelfSignedCert(certFile, keyFile);
      expect(existsSync(certFile)).toBe(true);
      const { url } = await startApiServer(app, { host: '127.0.0.1', port: 0 });
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const body = await new Promise<string>((resolve, reject) => {
        httpsGet(`${url}/healthz`, { rejectUnauthorized: false }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      expect(JSON.parse(body)).toEqual({ ok: true, reasons: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails start with the file error when the certificate is missing', async () => {
    app = testServer({ tls: { certFile: '/nonexistent/cert.pem', keyFile: '/nonexistent/key.pem' } });
    await expect(startApiServer(app, { host: '127.0.0.1', port: 0 })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
