// GET /v1/datasets, /v1/latest, /v1/window and the health probes.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { latestPort } from '../../../agent/api/adapters.ts';
import { LatestCache } from '../../../agent/latest/latest-cache.ts';
import { sensorRow, sensors, T0_MS, T0_US } from '../latest/fixture.ts';
import { FakeHealth, testServer } from './fakes.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('GET /v1/datasets', () => {
  it('lists schema, rows, time range and per-stream freshness in snake_case', async () => {
    app = testServer();
    const res = await app.inject('/v1/datasets');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      datasets: [
        {
          name: 'sensors',
          columns: [{ name: 'time', type: 'TIMESTAMP WITH TIME ZONE' }, { name: 'value', type: 'DOUBLE' }],
          rows: 1200,
          min_time: '2024-05-01T00:00:00.000Z',
          max_time: '2024-05-01T10:00:00.000Z',
          streams: [{ stream: { line: '3', sensor: 'humidity' }, last_time: '2024-05-01T10:00:00.000Z' }],
        },
      ],
    });
  });
});

describe('GET /v1/latest', () => {
  it('answers every stream, or those matching the key filters', async () => {
    app = testServer();
    const all = await app.inject('/v1/latest?dataset=sensors');
    expect(all.statusCode).toBe(200);
    expect(all.headers['cache-control']).toBe('no-store');
    expect(all.json().streams).toHaveLength(2);
    const one = await app.inject('/v1/latest?dataset=sensors&line=3');
    expect(one.json()).toEqual({
      dataset: 'sensors',
      streams: [
        { stream: { line: '3', sensor: 'humidity' }, time: '2024-05-01T10:00:00.000Z', time_us: 1714557600000000, values: { value: 41.5 } },
      ],
    });
  });

  it('refuses a missing dataset, a repeated key and an unknown dataset with stable codes', async () => {
    app = testServer();
    const missing = await app.inject('/v1/latest?line=3');
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toEqual({ code: 'BAD_REQUEST', message: 'querystring.dataset: required' });
    const twice = await app.inject('/v1/latest?dataset=sensors&line=3&line=4');
    expect(twice.statusCode).toBe(400);
    expect(twice.json().error.message).toContain('querystring.line');
    const unknown = await app.inject('/v1/latest?dataset=nope');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toEqual({ code: 'UNKNOWN_DATASET', message: 'no dataset "nope"' });
  });
});

describe('GET /v1/window', () => {
  it('answers the recent rows of one stream, honouring limit', async () => {
    app = testServer();
    const res = await app.inject('/v1/window?dataset=sensors&minutes=5&line=3&sensor=humidity&limit=2');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      dataset: 'sensors',
      stream: { line: '3', sensor: 'humidity' },
      minutes: 5,
      columns: ['time', 'value'],
      rows: [['2024-05-01T10:00:00.000Z', 41.5], ['5', 1]],
    });
  });

  it.each([
    ['/v1/window?dataset=sensors&line=3&sensor=humidity', 'querystring.minutes: required'],
    ['/v1/window?dataset=sensors&minutes=0&line=3&sensor=humidity', 'querystring.minutes'],
    ['/v1/window?dataset=sensors&minutes=abc&line=3&sensor=humidity', 'querystring.minutes'],
    ['/v1/window?dataset=sensors&minutes=5&limit=0&line=3&sensor=humidity', 'querystring.limit'],
    ['/v1/window?dataset=sensors&minutes=5&line=3', 'stream key needs line and sensor'],
  ])('refuses %s with BAD_REQUEST', async (url, message) => {
    app = testServer();
    const res = await app.inject(url);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('BAD_REQUEST');
    expect(res.json().error.message).toContain(message);
  });
});

describe('GET /v1/window over the latest-value cache', () => {
  it('sends the JSON rows of the cache (windowJson) as the same body the row path gives, and the same errors', async () => {
    const nowMs = T0_MS;
    const cache = new LatestCache({ datasets: [sensors], windowMinutes: 15, maxBytes: 64 << 20, now: () => nowMs });
    cache.onRows([
      sensorRow(T0_US - 90_000_000, 'coat3', 'humidity', 40),
      sensorRow(T0_US - 30_000_000, 'coat3', 'humidity', null, 'pct', false),
      sensorRow(T0_US - 20_000_000, 'coat3', 'humidity', 41.25, 'p"ct'),
      sensorRow(T0_US - 10_000_000, 'coat4', 'humidity', 7),
    ]);
    const { windowJson, ...rowsOnly } = latestPort(cache);
    let textCalls = 0;
    const port = {
      ...rowsOnly,
      windowJson: (...args: Parameters<NonNullable<typeof windowJson>>) => {
        textCalls++;
        return windowJson!(...args);
      },
    };
    const fast = testServer({ latest: port });
    const slow = testServer({ latest: rowsOnly });
    try {
      for (const url of [
        '/v1/window?dataset=sensors&minutes=1&line=coat3&sensor=humidity',
        '/v1/window?dataset=sensors&minutes=5&line=coat3&sensor=humidity&limit=2',
        '/v1/window?dataset=sensors&minutes=5&line=coat3&sensor=humidity', // again: the row text kept is used
        '/v1/window?dataset=sensors&minutes=5&line=coat9&sensor=humidity',
        '/v1/window?dataset=sensors&minutes=5&line=coat3',
        '/v1/window?dataset=nope&minutes=5&line=coat3',
      ]) {
        const [a, b] = await Promise.all([fast.inject(url), slow.inject(url)]);
        expect(a.statusCode, url).toBe(b.statusCode);
        expect(a.headers['content-type'], url).toBe(b.headers['content-type']);
        expect(a.json(), url).toEqual(b.json());
      }
      const body = (await fast.inject('/v1/window?dataset=sensors&minutes=1&line=coat3&sensor=humidity')).json();
      expect(body.rows).toEqual([
        [T0_US - 30_000_000, null, 'pct', false],
        [T0_US - 20_000_000, 41.25, 'p"ct', true],
      ]);
      expect(textCalls).toBe(7);
    } finally {
      await fast.close();
      await slow.close();
    }
  });
});

describe('/healthz and /readyz', () => {
  it('answer 200 when ok and 503 with reasons when not', async () => {
    const health = new FakeHealth();
    app = testServer({ health });
    expect((await app.inject('/healthz')).json()).toEqual({ ok: true, reasons: [] });
    expect((await app.inject('/readyz')).statusCode).toBe(200);
    health.live = { ok: false, reasons: ['landing writer stalled for 30 s'] };
    health.readiness = { ok: false, reasons: ['query engine starting', 'latest cache loading'] };
    const live = await app.inject('/healthz');
    expect(live.statusCode).toBe(503);
    expect(live.json()).toEqual({
      ok: false,
      reasons: ['landing writer stalled for 30 s'],
      error: { code: 'UNHEALTHY', message: 'landing writer stalled for 30 s' },
    });
    const ready = await app.inject('/readyz');
    expect(ready.statusCode).toBe(503);
    expect(ready.json().error).toEqual({ code: 'NOT_READY', message: 'query engine starting; latest cache loading' });
  });
});

describe('unknown routes', () => {
  it('answer 404 NOT_FOUND as JSON', async () => {
    app = testServer();
    const res = await app.inject('/v2/nothing?x=1');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /v2/nothing' } });
  });
});
