/**
 * GET /v1/datasets, /v1/latest, /v1/window. Every query parameter other than the
 * reserved ones (`dataset`, and for windows `minutes` and `limit`) is a stream-key
 * filter `<key>=<value>`; a key given twice is a 400. The latest-value port is
 * synchronous and answers from memory: these handlers add no awaits on that path.
 * A window of 1,000 rows is ~30 KB of JSON at ~1,200 req/s: when the port can give the
 * rows as JSON bytes (`windowJson`), those bytes are sent as they are.
 */
import type { FastifyInstance } from 'fastify';
import { jsonValue } from '../formats.ts';
import type { DatasetsPort, LatestPort } from '../ports.ts';

type Filter = Record<string, string>;

const streamKeys = { type: 'string' } as const;
const CLOSING_BRACE = Buffer.from('}');

const latestQuery = {
  type: 'object',
  required: ['dataset'],
  properties: { dataset: { type: 'string', minLength: 1 } },
  additionalProperties: streamKeys,
} as const;

const windowQuery = {
  type: 'object',
  required: ['dataset', 'minutes'],
  properties: {
    dataset: { type: 'string', minLength: 1 },
    minutes: { type: 'number', exclusiveMinimum: 0 },
    limit: { type: 'integer', minimum: 1 },
  },
  additionalProperties: streamKeys,
} as const;

function without(query: Record<string, unknown>, reserved: readonly string[]): Filter {
  const filter: Filter = {};
  for (const [key, value] of Object.entries(query)) if (!reserved.includes(key)) filter[key] = String(value);
  return filter;
}

const plainJson = (value: unknown): boolean =>
  value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));

/**
 * Window rows as JSON values. The usual window (numbers, strings, booleans, nulls) is
 * returned as it is: copying every row through jsonValue cost about 40 % of the
 * serialisation of a 1,000-row window, on the request path of /v1/window.
 */
function jsonRows(rows: unknown[][]): unknown[][] {
  for (const row of rows) for (const value of row) if (!plainJson(value)) return rows.map((r) => r.map(jsonValue));
  return rows;
}

function jsonRecord(values: Record<string, unknown>): Record<string, unknown> {
  return jsonValue(values) as Record<string, unknown>;
}

export function registerReadRoutes(app: FastifyInstance, ports: { latest: LatestPort; datasets: DatasetsPort }): void {
  app.get('/v1/datasets', { config: { access: 'read' } }, async (_request, reply) => {
    const datasets = await ports.datasets.datasets();
    reply.header('cache-control', 'no-store');
    return {
      datasets: datasets.map((d) => ({
        name: d.name,
        columns: d.columns,
        rows: d.rows,
        min_time: d.minTime,
        max_time: d.maxTime,
        streams: d.streams.map((s) => ({ stream: s.stream, last_time: s.lastTime })),
      })),
    };
  });

  app.get<{ Querystring: { dataset: string } & Filter }>(
    '/v1/latest',
    { schema: { querystring: latestQuery }, config: { access: 'read' } },
    async (request, reply) => {
      const { dataset } = request.query;
      const filter = without(request.query, ['dataset']);
      const entries = ports.latest.latest(dataset, Object.keys(filter).length > 0 ? filter : undefined);
      reply.header('cache-control', 'no-store');
      return {
        dataset,
        streams: entries.map((e) => ({ stream: e.stream, time: e.time, time_us: e.timeUs, values: jsonRecord(e.values) })),
      };
    },
  );

  app.get<{ Querystring: { dataset: string; minutes: number; limit?: number } & Filter }>(
    '/v1/window',
    { schema: { querystring: windowQuery }, config: { access: 'read' } },
    async (request, reply) => {
      const { dataset, minutes, limit } = request.query;
      const stream = without(request.query, ['dataset', 'minutes', 'limit']);
      reply.header('cache-control', 'no-store');
      if (ports.latest.windowJson) {
        // The rows come as JSON text: the same body as below, without row arrays.
        const window = ports.latest.windowJson(dataset, stream, minutes, limit);
        const head = JSON.stringify({ dataset, stream, minutes, columns: window.columns });
        const body = Buffer.concat([Buffer.from(`${head.slice(0, -1)},"rows":`), window.rowsJson, CLOSING_BRACE]);
        return reply.type('application/json; charset=utf-8').send(body);
      }
      const window = ports.latest.window(dataset, stream, minutes, limit);
      return { dataset, stream, minutes, columns: window.columns, rows: jsonRows(window.rows) };
    },
  );
}
