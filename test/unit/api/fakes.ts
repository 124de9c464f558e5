// Fake ports and a builder for API tests: every port answers from plain data, and a
// captured logger keeps every log line for inspection.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../../agent/log.ts';
import type { ApiToken } from '../../../agent/api/auth.ts';
import type {
  BlobsPort, DatasetsPort, HealthPort, HealthStatus, LatestPort, QueryColumn, QueryPort, QueryResult, QueryStream,
} from '../../../agent/api/ports.ts';
import { buildApiServer, type ApiServerDeps } from '../../../agent/api/server.ts';

export function portError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export const columns: QueryColumn[] = [
  { name: 'line', type: 'VARCHAR' },
  { name: 'value', type: 'DOUBLE' },
  { name: 'n', type: 'BIGINT' },
];

export const rows: unknown[][] = [
  ['coating-3', 41.5, 1n],
  ['say "hi", then\nleave', null, 9007199254740993n],
];

export class FakeQuery implements QueryPort {
  calls: { sql: string; opts: unknown }[] = [];
  result: QueryResult = { columns, rows, truncated: false, elapsedMs: 12 };
  fail: Error | undefined;

  async query(sql: string, opts: { timeoutMs?: number; maxRows?: number }): Promise<QueryResult> {
    this.calls.push({ sql, opts });
    if (this.fail) throw this.fail;
    return this.result;
  }
}

/** A streaming query port producing `batchCount` batches of `batchRows` rows, counting what it produced. */
export class FakeStreamingQuery extends FakeQuery {
  produced = 0;
  finished = false;
  failAfterBatches: number | undefined;
  batchCount: number;
  batchRows: number;

  constructor(batchCount: number, batchRows: number) {
    super();
    this.batchCount = batchCount;
    this.batchRows = batchRows;
  }

  async queryStream(sql: string, opts: { timeoutMs?: number; maxRows?: number }): Promise<QueryStream> {
    this.calls.push({ sql, opts });
    if (this.fail) throw this.fail;
    const self = this;
    async function* batches(): AsyncGenerator<unknown[][]> {
      try {
        for (let b = 0; b < self.batchCount; b++) {
          if (self.failAfterBatches === b) throw portError('QUERY_TIMEOUT', 'query interrupted after 100 ms');
          self.produced++;
          yield Array.from({ length: self.batchRows }, (_, i) => [`line-${b}`, b * self.batchRows + i, BigInt(i)]);
          await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        self.finished = true;
      }
    }
    return { columns, batches: batches(), summary: () => ({ truncated: false, elapsedMs: 7 }) };
  }
}

export const latestPort: LatestPort = {
  latest(dataset, filter) {
    if (dataset !== 'sensors') throw portError('UNKNOWN_DATASET', `no dataset "${dataset}"`);
    const all = [
      { stream: { line: '3', sensor: 'humidity' }, time: '2024-05-01T10:00:00.000Z', timeUs: 1714557600000000, values: { value: 41.5 } },
      { stream: { line: '4', sensor: 'humidity' }, time: '2024-05-01T10:00:01.000Z', timeUs: 1714557601000000, values: { value: 39 } },
    ];
    return all.filter((e) => Object.entries(filter ?? {}).every(([k, v]) => e.stream[k as 'line'] === v));
  },
  window(dataset, stream, minutes, limit) {
    if (dataset !== 'sensors') throw portError('UNKNOWN_DATASET', `no dataset "${dataset}"`);
    if (!stream.line || !stream.sensor) throw portError('BAD_REQUEST', 'stream key needs line and sensor');
    const all = [['2024-05-01T09:59:00.000Z', 40], ['2024-05-01T10:00:00.000Z', 41.5], [String(minutes), 1n]];
    return { columns: ['time', 'value'], rows: limit ? all.slice(-limit) : all };
  },
};

export const datasetsPort: DatasetsPort = {
  async datasets() {
    return [
      {
        name: 'sensors',
        columns: [{ name: 'time', type: 'TIMESTAMP WITH TIME ZONE' }, { name: 'value', type: 'DOUBLE' }],
        rows: 1200,
        minTime: '2024-05-01T00:00:00.000Z',
        maxTime: '2024-05-01T10:00:00.000Z',
        streams: [{ stream: { line: '3', sensor: 'humidity' }, lastTime: '2024-05-01T10:00:00.000Z' }],
      },
    ];
  },
};

export class FakeHealth implements HealthPort {
  live: HealthStatus = { ok: true, reasons: [] };
  readiness: HealthStatus = { ok: true, reasons: [] };
  health(): HealthStatus {
    return this.live;
  }
  ready(): HealthStatus {
    return this.readiness;
  }
}

export function blobsAt(root: string, infos: Map<string, { sizeBytes: number; contentType: string | null }>): BlobsPort {
  return {
    blobPath: (sha) => `${root}/${sha.slice(0, 2)}/${sha}`,
    blobInfo: (sha) => infos.get(sha) ?? null,
  };
}

export interface Captured {
  lines: string[];
  text(): string;
}

export function capturedLogger(): { logger: ReturnType<typeof createLogger>; captured: Captured } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger('trace', sink), captured: { lines, text: () => lines.join('') } };
}

export const readToken: ApiToken = { name: 'grafana', role: 'read', token: 'read-secret-7f3a9c' };
export const adminToken: ApiToken = { name: 'ops', role: 'admin', token: 'admin-secret-4b1d2e' };

export function testServer(overrides: Partial<ApiServerDeps> = {}): FastifyInstance {
  return buildApiServer({
    query: new FakeQuery(),
    latest: latestPort,
    datasets: datasetsPort,
    health: new FakeHealth(),
    blobs: blobsAt('/nonexistent', new Map()),
    config: { redacted: () => ({ plant: 'p1', api: { tokens: [{ name: 'ops', role: 'admin', token: '<redacted>' }] } }) },
    tokens: [],
    logger: capturedLogger().logger,
    ...overrides,
  });
}
