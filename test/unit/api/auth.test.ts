// Bearer tokens with roles: missing, unknown and read-on-admin tokens are refused
// (401/403) on every protected route; probes stay open; token values never reach the log.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { adminToken, capturedLogger, FakeQuery, readToken, testServer } from './fakes.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const readRoutes = [
  { method: 'POST' as const, url: '/v1/query', payload: { sql: 'SELECT 1' } },
  { method: 'GET' as const, url: '/v1/datasets' },
  { method: 'GET' as const, url: '/v1/latest?dataset=sensors' },
  { method: 'GET' as const, url: '/v1/window?dataset=sensors&minutes=1&line=3&sensor=humidity' },
  { method: 'GET' as const, url: `/v1/blobs/${'0'.repeat(64)}` },
  { method: 'GET' as const, url: '/v1/no-such-route' },
];

describe('with tokens configured', () => {
  it.each(readRoutes)('$method $url needs a token: none → 401 with WWW-Authenticate', async (route) => {
    app = testServer({ tokens: [readToken, adminToken] });
    const res = await app.inject(route);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="lakeside"');
    expect(res.json()).toEqual({ error: { code: 'UNAUTHENTICATED', message: 'missing bearer token' } });
  });

  it.each(['Bearer wrong-token', 'Bearer ', 'Basic Z3JhZmFuYTpyZWFk', `Bearer ${readToken.token}x`, readToken.token])(
    'refuses the Authorization header %j with 401',
    async (authorization) => {
      app = testServer({ tokens: [readToken, adminToken] });
      const res = await app.inject({ url: '/v1/datasets', headers: { authorization } });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHENTICATED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="lakeside"/);
    },
  );

  it('admits read and admin tokens on read routes', async () => {
    app = testServer({ tokens: [readToken, adminToken] });
    for (const token of [readToken, adminToken]) {
      const res = await app.inject({ method: 'POST', url: '/v1/query', payload: { sql: 'SELECT 1' }, headers: bearer(token.token) });
      expect(res.statusCode).toBe(200);
    }
    const lowercase = await app.inject({ url: '/v1/datasets', headers: { authorization: `bearer ${readToken.token}` } });
    expect(lowercase.statusCode).toBe(200);
    const unknownRoute = await app.inject({ url: '/v1/no-such-route', headers: bearer(readToken.token) });
    expect(unknownRoute.statusCode).toBe(404);
  });

  it('refuses a read token on an admin route with 403 and admits an admin token', async () => {
    app = testServer({ tokens: [readToken, adminToken] });
    const read = await app.inject({ url: '/v1/config', headers: bearer(readToken.token) });
    expect(read.statusCode).toBe(403);
    expect(read.json().error).toEqual({ code: 'FORBIDDEN', message: 'token "grafana" has role read; this route needs admin' });
    expect((await app.inject('/v1/config')).statusCode).toBe(401);
    const admin = await app.inject({ url: '/v1/config', headers: bearer(adminToken.token) });
    expect(admin.statusCode).toBe(200);
    expect(admin.json().config.plant).toBe('p1');
  });

  it('leaves /healthz and /readyz open', async () => {
    app = testServer({ tokens: [readToken] });
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    expect((await app.inject('/readyz')).statusCode).toBe(200);
  });

  it('never writes a token to the log, whether admitted, refused or failing', async () => {
    const { logger, captured } = capturedLogger();
    const query = new FakeQuery();
    query.fail = new Error('boom');
    app = testServer({ tokens: [readToken, adminToken], logger, query });
    await app.inject({ url: '/v1/datasets', headers: bearer(readToken.token) });
    await app.inject({ url: '/v1/config', headers: bearer(readToken.token) });
    await app.inject({ url: '/v1/datasets', headers: bearer('not-a-real-token-5e6f') });
    await app.inject({ method: 'POST', url: '/v1/query', payload: { sql: 'SELECT 1' }, headers: bearer(adminToken.token) });
    // Should anything log the request's headers, the logger redacts the header.
    app.log.info({ headers: { authorization: `Bearer ${adminToken.token}` } }, 'headers');
    const log = captured.text();
    expect(captured.lines.length).toBeGreaterThan(4);
    expect(log).toContain('UNAUTHENTICATED');
    expect(log).toContain('FORBIDDEN');
    expect(log).toContain('INTERNAL');
    expect(log).toContain('"authorization":"[redacted]"');
    for (const secret of [readToken.token, adminToken.token, 'not-a-real-token-5e6f']) expect(log).not.toContain(secret);
  });
});

describe('without tokens', () => {
  it('every route is open, the admin route included', async () => {
    app = testServer({ tokens: [] });
    expect((await app.inject('/v1/datasets')).statusCode).toBe(200);
    expect((await app.inject('/v1/config')).statusCode).toBe(200);
  });

  it('/v1/config exists only when a config port is given', async () => {
    app = testServer({ config: undefined });
    expect((await app.inject('/v1/config')).json().error.code).toBe('NOT_FOUND');
  });
});
