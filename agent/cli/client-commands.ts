/**
 * CLI commands that talk to a running daemon: `query`, `datasets`, `tail`, `status`.
 * Exit codes: 0 ok, 1 the daemon refused or failed (its error code is printed), 2 bad
 * input.
 */
import { Transform } from 'node:stream';
import { Option, type Command } from 'commander';
import { ApiClient, ApiError, type ClientOptions } from './api-client.ts';
import { formatStatus, type StatusReport } from './status-format.ts';
import { styleFor } from './style.ts';
import { formatTable } from './table.ts';

interface QueryResponse {
  columns: { name: string; type: string }[];
  rows: unknown[][];
  truncated: boolean;
  elapsed_ms: number;
  /** A query that failed after its first rows were sent (HTTP 200, the error after the rows). */
  error?: { code: string; message: string };
}

/** Passes a stream through and keeps its last few KB (where a streamed JSON result puts a late error). */
class TailKeeper extends Transform {
  private kept = Buffer.alloc(0);
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    const joined = Buffer.concat([this.kept, chunk]);
    this.kept = joined.subarray(Math.max(0, joined.length - 8192));
    done(null, chunk);
  }
  text(): string {
    return this.kept.toString('utf8');
  }
}

/** The `"error": { code, message }` member the API ends a JSON result with when the query failed mid-stream. */
function trailingQueryError(tail: string): { code: string; message: string } | null {
  const at = tail.lastIndexOf(',"error":{');
  if (at < 0) return null;
  try {
    const error = JSON.parse(tail.slice(at + ',"error":'.length, -1)) as { code?: unknown; message?: unknown };
    return typeof error.code === 'string' ? { code: error.code, message: String(error.message ?? '') } : null;
  } catch {
    return null;
  }
}

/** The shapes of GET /v1/datasets and GET /v1/latest (snake_case on the wire). */
interface DatasetInfo {
  name: string;
  columns: { name: string; type: string }[];
  rows: number;
  min_time: string | null;
  max_time: string | null;
  streams: { stream: Record<string, string>; last_time: string }[];
}

interface LatestValue {
  stream: Record<string, string>;
  time: string;
  values: Record<string, unknown>;
}

function withConnection(command: Command): Command {
  return command
    .option('--url <url>', 'the daemon API, e.g. http://127.0.0.1:7070')
    .option('-c, --config <file>', 'take the API address from this config file');
}

async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiError) {
      process.stderr.write(`lakeside: ${error.code}: ${error.message}\n`);
      process.exitCode = error.status === 400 ? 2 : 1;
      return;
    }
    throw error;
  }
}

/** `dataset` or `dataset:key=value,key=value` → query string of /v1/latest and /v1/window. */
export function streamQuery(spec: string): URLSearchParams {
  const [dataset, filter] = spec.split(':', 2) as [string, string | undefined];
  const params = new URLSearchParams({ dataset });
  for (const pair of (filter ?? '').split(',').filter(Boolean)) {
    const [key, value] = pair.split('=', 2);
    if (!key || value === undefined) throw new ApiError(400, 'BAD_STREAM', `expected key=value in "${pair}" (stream spec: dataset[:key=value,...])`);
    params.set(key, value);
  }
  return params;
}

export function registerClientCommands(program: Command): void {
  withConnection(program.command('query'))
    .argument('<sql>', 'a SELECT (or WITH, EXPLAIN, DESCRIBE, SHOW) over the hot tier')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
    .option('--max-rows <n>', 'at most this many rows', (v) => Number(v))
    .description('run SQL on the running daemon')
    .action((sql: string, options: ClientOptions & { format: string; maxRows?: number }) =>
      run(async () => {
        const client = await ApiClient.from(options);
        const body = { sql, ...(options.maxRows ? { max_rows: options.maxRows } : {}) };
        // CSV and JSON go to stdout as the daemon streams them (a large result never sits in
        // memory here); a table needs every row first to size its columns.
        if (options.format === 'csv') {
          await client.pipeTo('/v1/query', { method: 'POST', body: { ...body, format: 'csv' }, accept: 'text/csv' }, process.stdout);
          return;
        }
        if (options.format === 'json') {
          const tail = new TailKeeper();
          if (await client.pipeTo('/v1/query', { method: 'POST', body, accept: 'application/json' }, process.stdout, tail)) process.stdout.write('\n');
          const failed = trailingQueryError(tail.text());
          if (failed) throw new ApiError(0, failed.code, `${failed.message} (the rows before it were printed)`);
          return;
        }
        const result = await client.json<QueryResponse>('/v1/query', { method: 'POST', body });
        if (result.error) {
          process.stdout.write(formatTable(result.columns.map((c) => c.name), result.rows));
          throw new ApiError(0, result.error.code, `${result.error.message} (the rows before it were printed)`);
        }
        process.stdout.write(formatTable(result.columns.map((c) => c.name), result.rows));
        process.stderr.write(`${result.rows.length} row(s)${result.truncated ? ' (truncated)' : ''} in ${result.elapsed_ms} ms\n`);
      }),
    );

  withConnection(program.command('datasets'))
    .description('list datasets: rows, time range, streams and their freshness')
    .action((options: ClientOptions) =>
      run(async () => {
        const client = await ApiClient.from(options);
        const { datasets } = await client.json<{ datasets: DatasetInfo[] }>('/v1/datasets');
        process.stdout.write(
          formatTable(
            ['dataset', 'rows', 'from', 'to', 'streams', 'columns'],
            datasets.map((d) => [d.name, d.rows, d.min_time ?? '', d.max_time ?? '', d.streams.length, d.columns.map((c) => c.name).join(', ')]),
          ),
        );
      }),
    );

  withConnection(program.command('tail'))
    .argument('<stream>', 'dataset[:key=value,...], e.g. sensor_readings:line=coating_1,sensor=humidity')
    .option('--interval-ms <ms>', 'poll interval', (v) => Number(v), 1000)
    .description('print the latest values of a stream as they change, until Ctrl-C')
    .action((stream: string, options: ClientOptions & { intervalMs: number }) =>
      run(async () => {
        const client = await ApiClient.from(options);
        const params = streamQuery(stream);
        const seen = new Map<string, string>();
        for (;;) {
          const { streams } = await client.json<{ streams: LatestValue[] }>(`/v1/latest?${params}`);
          for (const value of streams) {
            const key = JSON.stringify(value.stream);
            if (seen.get(key) === value.time) continue;
            seen.set(key, value.time);
            process.stdout.write(`${value.time} ${Object.values(value.stream).join('/')} ${JSON.stringify(value.values)}\n`);
          }
          await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
        }
      }),
    );

  withConnection(program.command('status'))
    .option('--json', 'print GET /v1/status as JSON')
    .description("a summary of the daemon: health, readiness, landing, disk, sources, datasets, streams and open alerts")
    .action((options: ClientOptions & { json?: boolean }) =>
      run(async () => {
        const client = await ApiClient.from(options);
        const status = await client.json<StatusReport>('/v1/status');
        if (options.json) {
          process.stdout.write(`${JSON.stringify(status)}\n`);
        } else {
          const { datasets } = await client.json<{ datasets: DatasetInfo[] }>('/v1/datasets');
          process.stdout.write(formatStatus(client.baseUrl, status, datasets, styleFor(process.stdout)));
        }
        if (!status.health.ok) process.exitCode = 1;
      }),
    );
}
