// GET /metrics and GET /v1/status through the API factory: the read role suffices,
// no token is refused when tokens are configured, the routes exist only when their
// ports are given, and the exposition keeps Prometheus' content type.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { LakesideMetrics } from '../../../agent/metrics/metrics.ts';
import { adminToken, readToken, testServer } from './fakes.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function withPorts() {
  const metrics = new LakesideMetrics({ defaultMetrics: false });
  metrics.ingestRows.inc({ dataset: 'sensors', source: 'mqtt:plant' }, 42);
  let scrapes = 0;
  return testServer({
    tokens: [readToken, adminToken],
    metrics: {
      metrics: async () => {
        scrapes++;
        return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
      },
    },
    status: { status: async () => ({ plant: 'p1', scrapes, alerts: [] }) },
  });
}

describe('operations routes', () => {
  it.each(['/metrics', '/v1/status'])('%s needs a token (401 without), and a read token is enough', async (url) => {
    app = withPorts();
    expect((await app.inject({ url })).statusCode).toBe(401);
    const res = await app.inject({ url, headers: { authorization: `Bearer ${readToken.token}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('serves the text exposition with its content type', async () => {
    app = withPorts();
    const res = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${readToken.token}` } });
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('lakeside_ingest_rows_total{dataset="sensors",source="mqtt:plant"} 42');
    const status = await app.inject({ url: '/v1/status', headers: { authorization: `Bearer ${adminToken.token}` } });
    expect(status.json()).toEqual({ plant: 'p1', scrapes: 1, alerts: [] });
  });

  it('has no /metrics or /v1/status without their ports', async () => {
    app = testServer();
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/v1/status' })).statusCode).toBe(404);
  });
});
