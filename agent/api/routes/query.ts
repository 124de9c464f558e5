/**
 * POST /v1/query: SQL → JSON, CSV or Arrow IPC. Invariants: the status code is decided
 * before the first byte (refusals, SQL and timeout errors of the port's first step
 * become 4xx/5xx); when the port can stream, rows are pulled batch by batch only as
 * fast as the client reads them (chunked transfer, memory bounded by a batch). An
 * error after the first byte cannot change the status: JSON then ends with an
 * `"error": { code, message }` member after the rows (still valid JSON); CSV and Arrow
 * end the connection early, so the client sees an incomplete chunked body.
 */
import { Readable, pipeline } from 'node:stream';
import { RecordBatchStreamWriter, Table, tableToIPC, type RecordBatch } from 'apache-arrow';
import type { FastifyInstance, FastifyBaseLogger } from 'fastify';
import { ApiErrorCode } from '../error-codes.ts';
import { ApiError, toApiError } from '../errors.ts';
import { arrowBatch, contentTypeOf, csvHeader, csvLine, jsonRow, negotiateFormat, type ResultFormat } from '../formats.ts';
import type { QueryOptions, QueryPort, QueryResult, QueryStream } from '../ports.ts';

interface QueryBody {
  sql: string;
  format?: ResultFormat;
  max_rows?: number;
  timeout_ms?: number;
  include_warm?: { from: string; to: string; dataset?: string } | 'auto' | false;
}

const bodySchema = {
  type: 'object',
  required: ['sql'],
  additionalProperties: false,
  properties: {
    sql: { type: 'string', minLength: 1 },
    format: { type: 'string', enum: ['json', 'csv', 'arrow'] },
    max_rows: { type: 'integer', minimum: 1 },
    timeout_ms: { type: 'integer', minimum: 1 },
    /**
     * Fetch the evicted data files of [from, to) (ISO-8601) from warm into the read cache
     * first; "auto": of the range the query's WHERE puts on the time columns (400 if it
     * does not bound every dataset); false: local files only. Absent: like "auto" when
     * the WHERE bounds every dataset, else local files only.
     */
    include_warm: {
      anyOf: [
        { type: 'string', enum: ['auto'] },
        { type: 'boolean', enum: [false] },
        {
          type: 'object',
          required: ['from', 'to'],
          additionalProperties: false,
          properties: { from: { type: 'string', minLength: 1 }, to: { type: 'string', minLength: 1 }, dataset: { type: 'string', minLength: 1 } },
        },
      ],
    },
  },
} as const;

/** ISO-8601 → µs since the epoch; a 400 naming the field otherwise. */
function isoToUs(value: string, field: string): number {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new ApiError(ApiErrorCode.badRequest, `body.include_warm.${field}: expected an ISO-8601 time, e.g. 2026-11-01T00:00:00Z`);
  return ms * 1000;
}

function includeWarmOption(body: QueryBody['include_warm']): QueryOptions['includeWarm'] {
  if (body === undefined) return 'if-bounded';
  if (body === false) return undefined;
  if (body === 'auto') return 'auto';
  const fromUs = isoToUs(body.from, 'from');
  const toUs = isoToUs(body.to, 'to');
  if (toUs <= fromUs) throw new ApiError(ApiErrorCode.badRequest, 'body.include_warm: "to" must be after "from"');
  return { fromUs, toUs, ...(body.dataset !== undefined ? { dataset: body.dataset } : {}) };
}

export function registerQueryRoute(app: FastifyInstance, port: QueryPort): void {
  app.post<{ Body: QueryBody }>('/v1/query', { schema: { body: bodySchema }, config: { access: 'read' } }, async (request, reply) => {
    const { sql, format: asked, max_rows: maxRows, timeout_ms: timeoutMs } = request.body;
    const format = negotiateFormat(asked, request.headers.accept);
    const includeWarm = includeWarmOption(request.body.include_warm);
    const opts: QueryOptions = { timeoutMs, maxRows, ...(includeWarm ? { includeWarm } : {}) };
    reply.type(contentTypeOf[format]).header('cache-control', 'no-store');
    if (port.queryStream) {
      const stream = await port.queryStream(sql, opts);
      return reply.send(streamBody(format, stream, request.log));
    }
    return reply.send(wholeBody(format, await port.query(sql, opts)));
  });
}

function wholeBody(format: ResultFormat, result: QueryResult): string | Buffer {
  if (format === 'arrow') return Buffer.from(tableToIPC(new Table([arrowBatch(result.columns, result.rows)]), 'stream'));
  if (format === 'csv') return csvHeader(result.columns) + result.rows.map(csvLine).join('');
  return `{"columns":${JSON.stringify(result.columns)},"rows":[${result.rows.map(jsonRow).join(',')}],"truncated":${result.truncated},"elapsed_ms":${result.elapsedMs}}`;
}

function streamBody(format: ResultFormat, stream: QueryStream, log: FastifyBaseLogger): Readable {
  if (format === 'arrow') return arrowStream(stream, log);
  return Readable.from(format === 'csv' ? csvChunks(stream, log) : jsonChunks(stream, log));
}

async function* csvChunks(stream: QueryStream, log: FastifyBaseLogger): AsyncGenerator<Buffer> {
  yield Buffer.from(csvHeader(stream.columns));
  try {
    for await (const rows of stream.batches) yield Buffer.from(rows.map(csvLine).join(''));
  } catch (error) {
    throw logged(error, log);
  }
}

async function* jsonChunks(stream: QueryStream, log: FastifyBaseLogger): AsyncGenerator<Buffer> {
  yield Buffer.from(`{"columns":${JSON.stringify(stream.columns)},"rows":[`);
  let first = true;
  try {
    for await (const rows of stream.batches) {
      if (rows.length === 0) continue;
      yield Buffer.from((first ? '' : ',') + rows.map(jsonRow).join(','));
      first = false;
    }
  } catch (error) {
    const { code, message } = logged(error, log);
    yield Buffer.from(`],"truncated":true,"elapsed_ms":null,"error":${JSON.stringify({ code, message })}}`);
    return;
  }
  const { truncated, elapsedMs } = stream.summary();
  yield Buffer.from(`],"truncated":${truncated},"elapsed_ms":${elapsedMs}}`);
}

function arrowStream(stream: QueryStream, log: FastifyBaseLogger): Readable {
  async function* batches(): AsyncGenerator<RecordBatch> {
    let sent = false;
    try {
      for await (const rows of stream.batches) {
        if (rows.length === 0 && sent) continue;
        yield arrowBatch(stream.columns, rows);
        sent = true;
      }
    } catch (error) {
      throw logged(error, log);
    }
    if (!sent) yield arrowBatch(stream.columns, []);
  }
  const writer = RecordBatchStreamWriter.throughNode();
  // pipeline destroys the writer (and so the response) when the source fails, and the
  // source (and so the port's iterator) when the client goes away.
  pipeline(Readable.from(batches()), writer, () => {});
  return writer as unknown as Readable;
}

/** A failure after the first byte: logged here because no error handler will see it. */
function logged(error: unknown, log: FastifyBaseLogger): { code: string; message: string } & Error {
  const apiError = toApiError(error);
  log.warn({ err: error, code: apiError.code }, 'query failed while streaming its result');
  return apiError;
}
