// POST /v1/query: JSON, CSV and Arrow results, content negotiation, body validation,
// port error codes, and streaming of a large result.
import { request as httpRequest } from 'node:http';
import { tableFromIPC } from 'apache-arrow';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiServer } from '../../../agent/api/server.ts';
import { FakeQuery, FakeStreamingQuery, portError, testServer } from './fakes.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function post(server: FastifyInstance, body: unknown, headers: Record<string, string> = {}) {
  return server.inject({ method: 'POST', url: '/v1/query', payload: body as object, headers });
}

describe('POST /v1/query', () => {
  it('answers JSON with columns, rows, truncated and elapsed_ms, passing the limits to the port', async () => {
    const query = new FakeQuery();
    app = testServer({ query });
    const res = await post(app, { sql: 'SELECT 1', max_rows: 10, timeout_ms: 500 });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      columns: [{ name: 'line', type: 'VARCHAR' }, { name: 'value', type: 'DOUBLE' }, { name: 'n', type: 'BIGINT' }],
      rows: [['coating-3', 41.5, 1], ['say "hi", then\nleave', null, '9007199254740993']],
      truncated: false,
      elapsed_ms: 12,
    });
    // Without include_warm, evicted data of a range the WHERE bounds is fetched back ('if-bounded').
    expect(query.calls).toEqual([{ sql: 'SELECT 1', opts: { timeoutMs: 500, maxRows: 10, includeWarm: 'if-bounded' } }]);
  });

  it('answers RFC 4180 CSV for format=csv and for Accept: text/csv', async () => {
    app = testServer();
    const expected = 'line,value,n\r\ncoating-3,41.5,1\r\n"say ""hi"", then\nleave",,9007199254740993\r\n';
    const byFormat = await post(app, { sql: 'SELECT 1', format: 'csv' });
    expect(byFormat.headers['content-type']).toMatch(/^text\/csv/);
    expect(byFormat.body).toBe(expected);
    const byAccept = await post(app, { sql: 'SELECT 1' }, { accept: 'text/csv' });
    expect(byAccept.body).toBe(expected);
  });

  it('answers an Arrow IPC stream that apache-arrow reads back', async () => {
    app = testServer();
    for (const res of [
      await post(app, { sql: 'SELECT 1', format: 'arrow' }),
      await post(app, { sql: 'SELECT 1' }, { accept: 'application/vnd.apache.arrow.stream' }),
    ]) {
      expect(res.headers['content-type']).toBe('application/vnd.apache.arrow.stream');
      const table = tableFromIPC(res.rawPayload);
      expect(table.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(['line:Utf8', 'value:Float64', 'n:Int64']);
      expect(table.numRows).toBe(2);
      expect(table.getChild('line')?.toArray()).toEqual(['coating-3', 'say "hi", then\nleave']);
      expect(table.getChild('value')?.get(1)).toBeNull();
      expect(table.getChild('n')?.get(1)).toBe(9007199254740993n);
    }
  });

  it('an explicit format wins over Accept', async () => {
    app = testServer();
    const res = await post(app, { sql: 'SELECT 1', format: 'json' }, { accept: 'text/csv' });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  it.each([
    [{}, 'body.sql: required'],
    [{ sql: '' }, 'body.sql'],
    [{ sql: 'SELECT 1', format: 'xml' }, 'body.format: must be one of json, csv, arrow'],
    [{ sql: 'SELECT 1', max_rows: 0 }, 'body.max_rows'],
    [{ sql: 'SELECT 1', timeout_ms: 1.5 }, 'body.timeout_ms'],
    [{ sql: 'SELECT 1', maxRows: 5 }, 'body.maxRows: unknown field'],
  ])('refuses the body %j with BAD_REQUEST naming the field', async (body, message) => {
    app = testServer();
    const res = await post(app, body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('BAD_REQUEST');
    expect(res.json().error.message).toContain(message);
  });

  it('refuses malformed JSON and other content types with stable codes', async () => {
    app = testServer();
    const bad = await app.inject({ method: 'POST', url: '/v1/query', payload: '{"sql":', headers: { 'content-type': 'application/json' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('BAD_REQUEST');
    const text = await app.inject({ method: 'POST', url: '/v1/query', payload: 'SELECT 1', headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it.each([
    ['QUERY_NOT_ALLOWED', 400],
    ['QUERY_FAILED', 422],
    ['QUERY_TIMEOUT', 504],
    ['CACHE_BUDGET_EXCEEDED', 507],
    ['WARM_UNAVAILABLE', 503],
  ])('maps a port error %s to %i with its message', async (code, status) => {
    const query = new FakeQuery();
    query.fail = portError(code, `refused: ${code}`);
    app = testServer({ query });
    const res = await post(app, { sql: 'COPY t TO x' });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: { code, message: `refused: ${code}` } });
  });

  it('passes include_warm to the port as µs, and refuses a range that does not parse or is empty', async () => {
    const query = new FakeQuery();
    app = testServer({ query });
    const ok = await post(app, { sql: 'SELECT 1', include_warm: { from: '2026-11-01T00:00:00Z', to: '2026-11-02T00:00:00Z', dataset: 'frames' } });
    expect(ok.statusCode).toBe(200);
    expect(query.calls[0]!.opts).toEqual({ includeWarm: { fromUs: Date.UTC(2026, 10, 1) * 1000, toUs: Date.UTC(2026, 10, 2) * 1000, dataset: 'frames' } });
    for (const include_warm of [{ from: 'soon', to: '2026-11-02T00:00:00Z' }, { from: '2026-11-02T00:00:00Z', to: '2026-11-01T00:00:00Z' }, { from: '2026-11-01T00:00:00Z' }]) {
      const res = await post(app, { sql: 'SELECT 1', include_warm });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toMatch(/include_warm/);
    }
    expect(query.calls).toHaveLength(1);
    expect((await post(app, { sql: 'SELECT 1', include_warm: 'auto' })).statusCode).toBe(200);
    expect(query.calls[1]!.opts).toEqual({ includeWarm: 'auto' });
    expect((await post(app, { sql: 'SELECT 1', include_warm: 'all' })).statusCode).toBe(400);
  });

  it('hides an unexpected error behind INTERNAL and logs it', async () => {
    const query = new FakeQuery();
    query.fail = new Error('duckdb exploded at /var/lib/lakeside');
    app = testServer({ query });
    const res = await post(app, { sql: 'SELECT 1' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
});

describe('POST /v1/query with a streaming port', () => {
  it('streams a large JSON, CSV and Arrow result in chunks', async () => {
    const query = new FakeStreamingQuery(50, 2000);
    app = testServer({ query });
    const json = await post(app, { sql: 'SELECT *' });
    expect(json.headers['transfer-encoding']).toBe('chunked');
    const body = json.json();
    expect(body.rows).toHaveLength(100_000);
    expect(body.rows[99_999]).toEqual(['line-49', 99_999, 1999]);
    expect(body).toMatchObject({ truncated: false, elapsed_ms: 7 });

    const csv = await post(app, { sql: 'SELECT *', format: 'csv' });
    expect(csv.headers['transfer-encoding']).toBe('chunked');
    const lines = csv.body.split('\r\n');
    expect(lines[0]).toBe('line,value,n');
    expect(lines).toHaveLength(100_002); // header, rows, empty after the last CRLF

    const arrow = await post(app, { sql: 'SELECT *', format: 'arrow' });
    const table = tableFromIPC(arrow.rawPayload);
    expect(table.numRows).toBe(100_000);
    expect(table.batches).toHaveLength(50);
    expect(table.getChild('value')?.get(99_999)).toBe(99_999);
  });

  it('pulls batches only as fast as the client reads (a slow client holds the query back)', async () => {
    const query = new FakeStreamingQuery(100_000, 1000);
    app = testServer({ query });
    const { url } = await startApiServer(app, { host: '127.0.0.1', port: 0 });
    const firstChunk = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', (chunk: Buffer) => {
          res.pause();
          setTimeout(() => {
            req.destroy();
            resolve(chunk.length);
          }, 200);
        });
      });
      req.on('error', reject);
      req.end(JSON.stringify({ sql: 'SELECT *', format: 'csv' }));
    });
    expect(firstChunk).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(query.produced).toBeLessThan(1000); // of 100,000 batches
    expect(query.finished).toBe(true); // the port's iterator was closed when the client left
  });

  it('an error before the first row is a status code', async () => {
    const query = new FakeStreamingQuery(1, 1);
    query.fail = portError('QUERY_NOT_ALLOWED', 'ATTACH is not allowed');
    app = testServer({ query });
    const res = await post(app, { sql: "ATTACH 'x'" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('QUERY_NOT_ALLOWED');
  });

  it('an error mid-stream ends JSON with an error member after the rows', async () => {
    const query = new FakeStreamingQuery(10, 3);
    query.failAfterBatches = 2;
    app = testServer({ query });
    const res = await post(app, { sql: 'SELECT *' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.rows).toHaveLength(6);
    expect(body.truncated).toBe(true);
    expect(body.error).toEqual({ code: 'QUERY_TIMEOUT', message: 'query interrupted after 100 ms' });
  });

  it('an empty streamed result is still a valid JSON body and Arrow stream', async () => {
    const query = new FakeStreamingQuery(0, 0);
    app = testServer({ query });
    expect((await post(app, { sql: 'SELECT *' })).json()).toMatchObject({ rows: [], truncated: false });
    const table = tableFromIPC((await post(app, { sql: 'SELECT *', format: 'arrow' })).rawPayload);
    expect(table.numRows).toBe(0);
    expect(table.schema.fields.map((f) => f.name)).toEqual(['line', 'value', 'n']);
  });
});
