// PyIceberg as the independent reader that catalog tests assert with: what lakeside
// commits must read back through another implementation of the Iceberg spec. Each call
// runs test/services/pyiceberg_reader.py in a cached venv against a REST catalog and
// its S3 storage, and returns the script's JSON.
//
// Invariants:
// - The venv is built once in the services cache (`python3 -m venv`, then
//   `pip install pyiceberg[pyarrow]==PYICEBERG_VERSION pyarrow==PYARROW_VERSION`); a
//   missing python3 or a failed install throws, never skips.
// - One process per call, no state between calls: every call reloads the catalog, so it
//   sees exactly what the catalog serves at that moment.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedEntry, runCommand } from './service-cache.ts';

export const PYICEBERG_VERSION = '0.12.0';
export const PYARROW_VERSION = '26.0.1';

const READER = fileURLToPath(new URL('./pyiceberg_reader.py', import.meta.url));
const LOCAL_READER = fileURLToPath(new URL('./pyiceberg_local.py', import.meta.url));

/** Builds the venv once; returns its python executable. */
export async function provisionPyiceberg(): Promise<string> {
  const python = process.env.PYTHON ?? 'python3';
  const dir = await cachedEntry(`pyiceberg-${PYICEBERG_VERSION}-pyarrow-${PYARROW_VERSION}`, async (temp) => {
    await runCommand(python, ['-m', 'venv', temp], { what: `creating a Python venv with ${python}` });
    await runCommand(
      join(temp, 'bin', 'python'),
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--no-input',
        `pyiceberg[pyarrow]==${PYICEBERG_VERSION}`,
        `pyarrow==${PYARROW_VERSION}`,
      ],
      { what: `installing pyiceberg ${PYICEBERG_VERSION} from PyPI` },
    );
  });
  // The venv's python finds its site-packages relative to itself, so the renamed
  // folder works; its pip shebangs would not, which is why pip is run as a module.
  return join(dir, 'bin', 'python');
}

export type PyIcebergOp =
  | 'namespaces'
  | 'tables'
  | 'metadata'
  | 'snapshots'
  | 'files'
  | 'scan'
  | 'create_and_append'
  | 'script'
  | 'batch';

/**
 * Runs one reader op against the catalog described by Iceberg client properties (see
 * `IcebergRest.clientProperties`) and returns its JSON result. `{ script }` runs Python
 * code with `catalog` and `args` in scope; it returns whatever the code assigns to `result`.
 */
export async function pyiceberg<T = unknown>(
  properties: Record<string, string>,
  op: PyIcebergOp | { script: string },
  args: Record<string, unknown> = {},
  opts: { timeoutMs?: number } = {},
): Promise<T> {
  const python = await provisionPyiceberg();
  const request =
    typeof op === 'string' ? { properties, op, args } : { properties, op: 'script', args: { code: op.script, args } };
  const what = `pyiceberg ${typeof op === 'string' ? op : 'script'}`;
  return runPythonJson<T>(python, READER, request, what, opts.timeoutMs ?? 120_000);
}

/**
 * PyIceberg reading a table from its files, no catalog (test/services/pyiceberg_local.py):
 * `metadata` is a local vN.metadata.json path; returns the snapshot, the manifest list and
 * entries as PyIceberg decodes them, with `scan` the rows of a full table scan, and with
 * `rewrite` a manifest and a manifest list written by PyIceberg's own writers.
 */
export async function pyicebergLocal<T = unknown>(request: {
  metadata: string;
  scan?: boolean;
  filter?: string;
  /** PyIceberg's writers copy the current snapshot's live entries (as EXISTING) into this manifest and list. */
  rewrite?: { manifest: string; list: string; snapshot_id: string; codec?: 'null' | 'deflate' | 'zstandard' };
}): Promise<T> {
  const python = await provisionPyiceberg();
  return runPythonJson<T>(python, LOCAL_READER, request, 'pyiceberg (local files)', 120_000);
}

function runPythonJson<T>(python: string, script: string, request: unknown, what: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${what}: could not run ${python}: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${what} failed (code ${code}, signal ${signal}):\n${stderr.split('\n').slice(-30).join('\n')}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as T);
      } catch (e) {
        reject(new Error(`${what}: output is not JSON (${(e as Error).message}): ${stdout.slice(0, 500)}`));
      }
    });
    child.stdin.end(JSON.stringify(request));
  });
}

// Typed results of the ops, for the tests that assert with them.
/** Snapshot ids are decimal strings: they exceed 2^53 and would round as numbers. */
export interface PySnapshot {
  snapshot_id: string;
  parent_snapshot_id: string | null;
  sequence_number: number;
  timestamp_ms: number;
  operation: string | null;
  summary: Record<string, string>;
  manifest_list: string;
  schema_id: number | null;
}

export interface PyDataFile {
  file_path: string;
  file_format: string;
  record_count: number;
  file_size_in_bytes: number;
  partition: Record<string, unknown>;
}

export interface PyScan {
  row_count: number;
  columns: string[];
  rows?: Array<Record<string, unknown>>;
}

/**
 * Several ops in one Python process (each process start costs about a second for
 * pyarrow's import): results in request order, all read from the same catalog session.
 */
export function pyicebergBatch<T extends unknown[] = unknown[]>(
  properties: Record<string, string>,
  requests: Array<{ op: Exclude<PyIcebergOp, 'batch'>; args?: Record<string, unknown> }>,
): Promise<T> {
  return pyiceberg<T>(properties, 'batch', { requests });
}

/** The reader ops bound to one catalog. */
export function pyicebergClient(properties: Record<string, string>) {
  return {
    namespaces: () => pyiceberg<string[][]>(properties, 'namespaces'),
    tables: (namespace: string) => pyiceberg<string[][]>(properties, 'tables', { namespace }),
    metadata: (table: string) => pyiceberg<Record<string, unknown>>(properties, 'metadata', { table }),
    snapshots: (table: string) => pyiceberg<PySnapshot[]>(properties, 'snapshots', { table }),
    files: (table: string, snapshotId?: string) => pyiceberg<PyDataFile[]>(properties, 'files', { table, snapshot_id: snapshotId }),
    scan: (
      table: string,
      o: { snapshotId?: string; rowFilter?: string; selectedFields?: string[]; withRows?: boolean; orderBy?: string[] } = {},
    ) =>
      pyiceberg<PyScan>(properties, 'scan', {
        table,
        snapshot_id: o.snapshotId,
        row_filter: o.rowFilter,
        selected_fields: o.selectedFields,
        with_rows: o.withRows ?? true,
        order_by: o.orderBy,
      }),
    createAndAppend: (
      table: string,
      rows: Array<Record<string, unknown>>,
      schema?: Array<{ name: string; type: string; required?: boolean }>,
    ) => pyiceberg<{ metadata_location: string; snapshots: PySnapshot[] }>(properties, 'create_and_append', { table, rows, schema }),
  };
}
