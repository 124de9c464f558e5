// `lakeside query | datasets | tail` as an operator runs them: the real bin/lakeside.js
// in a child process, over HTTP, against a real API server on a loopback port (the
// query engine over a real hot tier, the real /v1/datasets adapter over the landing
// database, the latest-value cache). Checks what lands on stdout and stderr and the
// exit code, including a refused query and a daemon that is not there.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RowValue } from '../../../config/dataset.ts';
import { LandingReader, latestPort, queryPort } from '../../../agent/api/adapters.ts';
import { buildApiServer, startApiServer } from '../../../agent/api/server.ts';
import { createLogger } from '../../../agent/log.ts';
import { LatestCache } from '../../../agent/latest/latest-cache.ts';
import { formatTimeUs } from '../../../agent/mapping/time.ts';
import { nodeBinary, REPO_ROOT } from '../../support/child-daemon.ts';
import { freePort } from '../../support/free-port.ts';
import { keyedReadingsConfig } from '../../support/sensor-dataset.ts';
import { waitFor } from '../../support/wait-for.ts';
import { runCommand, type RunResult } from '../../support/run-command.ts';
import { blobsAt, FakeHealth } from '../api/fakes.ts';
import { createEngineFixture, type EngineFixture } from '../query/engine-fixture.ts';

const BIN = join(REPO_ROOT, 'bin', 'lakeside.js');
/** Ten minutes ago, on a whole second, plus 123 µs: recent enough for the latest cache's window. */
const BASE_US = (Math.floor(Date.now() / 1000) - 600) * 1_000_000 + 123;
const SEC = 1_000_000;
const sealed: RowValue[][] = [
  [BASE_US, 'l1', 'temp', 21.5, 'plain'],
  [BASE_US + SEC, 'l1', 'hum', 40.25, 'say "hi", then leave'],
  [BASE_US + 2 * SEC, 'l2', 'temp', null, null],
];
const landed: RowValue[][] = [[BASE_US + 3 * SEC, 'l2', 'temp', 19, 'landed only']];

let ef: EngineFixture;
let reader: LandingReader;
let cache: LatestCache;
let app: FastifyInstance;
let url: string;
/** GET /v1/latest requests served: each `tail` poll is one. */
let latestCalls = 0;

beforeAll(async () => {
  ef = await createEngineFixture([keyedReadingsConfig]);
  const ds = ef.fx.datasets[0]!;
  ef.fx.land(ds, sealed);
  ef.seal();
  await ef.engine.refreshFromRegistry();
  ef.fx.land(ds, landed);
  cache = new LatestCache({ datasets: ef.fx.datasets, windowMinutes: 60, maxBytes: 16 * 1024 * 1024 });
  cache.onRows([...sealed, ...landed].map((values) => ({ dataset: ds.name, values })));
  reader = new LandingReader(ef.fx.dbPath);
  const latest = latestPort(cache);
  app = buildApiServer({
    query: queryPort(ef.engine),
    latest: {
      ...latest,
      latest(dataset, filter) {
        latestCalls++;
        return latest.latest(dataset, filter);
      },
    },
    datasets: reader.datasetsPort(ef.fx.datasets, cache),
    health: new FakeHealth(),
    blobs: blobsAt('/nonexistent', new Map()),
    tokens: [],
    logger: createLogger('silent'),
  });
  ({ url } = await startApiServer(app, { host: '127.0.0.1', port: 0 }));
});

afterAll(async () => {
  await app?.close();
  reader?.close();
  await ef?.close();
});

const cliEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.LAKESIDE_TOKEN;
  return env;
};

function lakeside(args: string[]): Promise<RunResult> {
  return runCommand(nodeBinary(), [BIN, ...args], { env: cliEnv(), timeoutMs: 30_000 });
}

const SELECT_READINGS = 'SELECT time, line, sensor, value, unit FROM readings ORDER BY time';

describe('lakeside query', () => {
  it('prints a table: the column names, a rule, then one aligned line per row', async () => {
    const result = await lakeside(['query', '--url', url, SELECT_READINGS]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2 + sealed.length);
    expect(lines[0]).toMatch(/^time\s+line\s+sensor\s+value\s+unit$/);
    expect(lines[1]).toMatch(/^-+( {2}-+){4}$/);
    expect(lines[2]).toMatch(new RegExp(`^${formatTimeUs(BASE_US)}\\s+l1\\s+temp\\s+21\\.5\\s+plain$`));
    expect(lines[3]).toMatch(new RegExp(`^${formatTimeUs(BASE_US + SEC)}\\s+l1\\s+hum\\s+40\\.25\\s+say "hi", then leave$`));
    expect(lines[4]).toMatch(new RegExp(`^${formatTimeUs(BASE_US + 2 * SEC)}\\s+l2\\s+temp$`)); // nulls are blank
    // Columns line up: each header starts where its values start.
    const at = (line: string, text: string) => line.indexOf(text);
    expect(at(lines[2]!, 'l1')).toBe(at(lines[0]!, 'line'));
    expect(at(lines[3]!, 'say')).toBe(at(lines[0]!, 'unit'));
    expect(result.stderr).toMatch(/^3 row\(s\) in \d+ ms$/m);
  });

  it('prints RFC 4180 CSV: a header line, then rows with commas and quotes quoted', async () => {
    const result = await lakeside(['query', '--url', url, '--format', 'csv', SELECT_READINGS]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      'time,line,sensor,value,unit\r\n' +
        `${formatTimeUs(BASE_US)},l1,temp,21.5,plain\r\n` +
        `${formatTimeUs(BASE_US + SEC)},l1,hum,40.25,"say ""hi"", then leave"\r\n` +
        `${formatTimeUs(BASE_US + 2 * SEC)},l2,temp,,\r\n`,
    );
  });

  it('streams a large CSV and a JSON result through to stdout whole', async () => {
    const rows = 200_000;
    const csv = await lakeside(['query', '--url', url, '--format', 'csv', `SELECT range AS n, 'x,' || range AS s FROM range(${rows})`]);
    expect(csv.code, csv.stderr).toBe(0);
    const lines = csv.stdout.split('\r\n');
    expect(lines).toHaveLength(rows + 2); // header, rows, the empty string after the last CRLF
    expect(lines[0]).toBe('n,s');
    expect(lines[rows]).toBe(`${rows - 1},"x,${rows - 1}"`);
    const json = await lakeside(['query', '--url', url, '--format', 'json', SELECT_READINGS]);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as { columns: { name: string }[]; rows: unknown[][] };
    expect(body.columns.map((c) => c.name)).toEqual(['time', 'line', 'sensor', 'value', 'unit']);
    expect(body.rows).toHaveLength(sealed.length);
  });

  it('a query failing after its first rows were sent exits 1 naming the error, in every format', async () => {
    const failing = "SELECT CASE WHEN range < 250000 THEN range ELSE error('boom at the end') END AS n FROM range(300000)";
    for (const format of ['json', 'table', 'csv']) {
      const result = await lakeside(['query', '--url', url, '--format', format, failing]);
      expect(result.code, `${format}: ${result.stderr}`).toBe(1);
      expect(result.stderr, format).toMatch(format === 'csv' ? /^lakeside: STREAM_ABORTED: the daemon ended the result early/m : /^lakeside: QUERY_FAILED: the query failed after \d+ row/m);
      expect(result.stderr, format).not.toMatch(/\n\s+at /); // a message, not a stack trace
      expect(result.stdout.length, format).toBeGreaterThan(0); // the rows before the error were printed
    }
  });

  it('stops quietly when the reader of its output goes away (`| head`)', async () => {
    const child = spawn(nodeBinary(), [BIN, 'query', '--url', url, '--format', 'csv', 'SELECT range AS n FROM range(3000000)'], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once('data', () => child.stdout.destroy()); // like head after its lines
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('refuses an unknown output format, naming it', async () => {
    const result = await lakeside(['query', '--url', url, '--format', 'xml', SELECT_READINGS]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/xml/);
  });

  it('refuses a COPY with its error code on stderr and a non-zero exit, writing nothing', async () => {
    const target = join(ef.fx.stateDir, 'hot', 'stolen.csv');
    const result = await lakeside(['query', '--url', url, `COPY readings TO '${target}'`]);
    expect(result.code).toBe(2); // the daemon answered 400: the statement is the caller's to change
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^lakeside: QUERY_NOT_ALLOWED: .*only one read-only statement/m);
    expect(existsSync(target)).toBe(false);
  });

  it('names a failing query (unknown column) and exits 1', async () => {
    const result = await lakeside(['query', '--url', url, 'SELECT no_such_column FROM readings']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^lakeside: QUERY_FAILED: .*no_such_column/m);
  });

  it('says no daemon answers at the address and exits 1', async () => {
    const port = await freePort(); // nothing listens there
    const result = await lakeside(['query', '--url', `http://127.0.0.1:${port}`, 'SELECT 1']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`lakeside: UNREACHABLE: no lakeside API at http://127.0.0.1:${port} (ECONNREFUSED)`);
  });
});

describe('lakeside datasets', () => {
  it('lists each dataset with its rows (sealed + landed), time range, streams and columns', async () => {
    const result = await lakeside(['datasets', '--url', url]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^dataset\s+rows\s+from\s+to\s+streams\s+columns$/);
    expect(lines.slice(2)).toHaveLength(1);
    expect(lines[2]!.split(/ {2,}/)).toEqual([
      'readings',
      String(sealed.length + landed.length),
      formatTimeUs(BASE_US),
      formatTimeUs(BASE_US + 3 * SEC),
      '3', // l1/temp, l1/hum, l2/temp
      'time, line, sensor, value, unit',
    ]);
  });
});

describe('lakeside tail', () => {
  it("prints the stream's latest value, then each newer row of that stream once as it arrives, and nothing of other streams", async () => {
    const child = spawn(nodeBinary(), [BIN, 'tail', '--url', url, '--interval-ms', '50', 'readings:line=l1,sensor=temp'], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines: string[] = [];
    const waiters: (() => void)[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      for (const wake of waiters.splice(0)) wake();
    });
    child.on('exit', () => {
      for (const wake of waiters.splice(0)) wake();
    });
    /** Resolves once `wanted` was printed; rejects after 15 s or if the CLI exits. */
    const untilLine = (wanted: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line "${wanted}" from lakeside tail within 15 s; stdout: ${lines.join(' | ')}; stderr: ${stderr}`)), 15_000);
        const check = (): void => {
          if (lines.includes(wanted)) {
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`lakeside tail exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr}`));
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    /** Waits until the CLI has sent 3 more polls, so it has printed whatever the ones before brought. */
    const threeMorePolls = async (): Promise<void> => {
      const from = latestCalls;
      await waitFor(() => latestCalls >= from + 3 || child.exitCode !== null, 'three more polls of /v1/latest');
    };
    const first = `${formatTimeUs(BASE_US)} l1/temp {"value":21.5,"unit":"plain"}`;
    try {
      await untilLine(first);
      await threeMorePolls();
      expect(lines).toEqual([first]); // an unchanged value is not printed again
      // A row of another stream, then a newer row of the tailed one.
      cache.onRows([{ dataset: 'readings', values: [BASE_US + 5 * SEC, 'l1', 'hum', 1, 'other stream'] }]);
      cache.onRows([{ dataset: 'readings', values: [BASE_US + 6 * SEC, 'l1', 'temp', 22.75, 'new, "quoted"'] }]);
      const newer = `${formatTimeUs(BASE_US + 6 * SEC)} l1/temp {"value":22.75,"unit":"new, \\"quoted\\""}`;
      await untilLine(newer);
      await threeMorePolls();
      expect(lines).toEqual([first, newer]);
      expect(stderr).toBe('');
    } finally {
      const exited = new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
