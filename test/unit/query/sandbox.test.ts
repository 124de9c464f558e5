import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryRejectedError } from '../../../agent/query/query-engine.ts';
import { checkFirstKeyword, explainedText } from '../../../agent/query/statement-guard.ts';
import { sensorRows, sensorsConfig, T0, MINUTE } from '../hot/fixture.ts';
import { createEngineFixture, type EngineFixture } from './engine-fixture.ts';

let ef: EngineFixture;
let hot: string;
let elsewhere: string;
let aHotFile: string;

beforeAll(async () => {
  ef = await createEngineFixture([sensorsConfig], { memory_limit_bytes: 300 * 1024 * 1024, threads: 2 });
  ef.fx.land(ef.fx.datasets[0]!, sensorRows(10, T0 + 1, MINUTE / 10));
  ef.seal();
  await ef.engine.refreshFromRegistry();
  hot = join(ef.fx.stateDir, 'hot');
  aHotFile = join(ef.fx.stateDir, (ef.fx.db.prepare('SELECT path FROM hot_files LIMIT 1').pluck().get() as string));
  elsewhere = mkdtempSync(join(tmpdir(), 'lakeside-elsewhere-'));
  copyFileSync(aHotFile, join(elsewhere, 'x.parquet'));
  writeFileSync(join(elsewhere, 'secret.csv'), 'a,b\n1,2\n');
  symlinkSync(join(elsewhere, 'x.parquet'), join(hot, 'link.parquet'));
  symlinkSync(elsewhere, join(hot, 'dirlink'));
  mkdirSync(`${hot}2`, { recursive: true });
  copyFileSync(aHotFile, join(`${hot}2`, 'sibling.parquet'));
});

afterAll(async () => {
  await ef.close();
  rmSync(elsewhere, { recursive: true, force: true });
});

async function refused(sql: string): Promise<QueryRejectedError> {
  const error = await ef.engine.query(sql).then(
    () => {
      throw new Error(`not refused: ${sql}`);
    },
    (e: unknown) => e,
  );
  expect(error, sql).toBeInstanceOf(QueryRejectedError);
  expect(error).toMatchObject({ code: 'QUERY_NOT_ALLOWED' });
  return error as QueryRejectedError;
}

async function setting(name: string): Promise<unknown> {
  return (await ef.engine.query(`SELECT current_setting('${name}')`)).rows[0]![0];
}

describe('sandbox', () => {
  it('reads the hot tier', async () => {
    expect((await ef.engine.query(`SELECT count(*) FROM read_parquet('${aHotFile}')`)).rows).toEqual([[10]]);
    const listed = (await ef.engine.query(`SELECT file FROM glob('${hot}/**/*.parquet') ORDER BY 1`)).rows.map((r) => r[0]);
    expect(listed).toContain(aHotFile);
    // A directory symlink pointing out is not followed.
    expect(listed.filter((p) => String(p).includes('dirlink'))).toEqual([]);
  });

  it('refuses files outside the hot directory', async () => {
    for (const sql of [
      `SELECT * FROM read_csv('/etc/passwd')`,
      `SELECT * FROM read_parquet('${join(elsewhere, 'x.parquet')}')`,
      `SELECT * FROM read_parquet('/tmp/elsewhere/x.parquet')`,
      `SELECT * FROM read_csv('${join(elsewhere, 'secret.csv')}')`,
      `SELECT * FROM glob('/etc/*')`,
      `SELECT * FROM read_parquet('${hot}/../../${elsewhere.split('/').pop()}/x.parquet')`,
      `SELECT * FROM read_parquet('${hot}/sensors/../../landing.db')`,
      `SELECT * FROM read_parquet('${hot}/link.parquet')`,
      `SELECT * FROM read_parquet('${hot}/dirlink/x.parquet')`,
      `SELECT * FROM read_parquet('${hot}2/sibling.parquet')`,
      `SELECT * FROM read_blob('${ef.fx.dbPath}')`,
    ]) {
      const error = await refused(sql);
      expect(error.statementType).toBe('SANDBOX');
      expect(error.message).toMatch(/Permission Error/);
    }
  });

  it('refuses writes, attaches, extensions and settings, with no side effect', async () => {
    const before = { memory: await setting('memory_limit'), threads: await setting('threads') };
    const cases: [string, string][] = [
      [`COPY (SELECT 1) TO '${hot}/x.csv'`, 'COPY'],
      [`COPY (SELECT 1) TO '${join(elsewhere, 'y.csv')}'`, 'COPY'],
      [`EXPORT DATABASE '${hot}/exported'`, 'EXPORT'],
      [`ATTACH ':memory:' AS x`, 'ATTACH'],
      [`INSTALL httpfs`, 'INSTALL'],
      [`LOAD httpfs`, 'LOAD'],
      [`SET memory_limit='10GB'`, 'SET'],
      [`RESET threads`, 'RESET'],
      [`CREATE TABLE t AS SELECT 1`, 'CREATE'],
      [`CREATE TEMP TABLE t AS SELECT 1`, 'CREATE'],
      [`INSERT INTO quarantine SELECT * FROM quarantine`, 'INSERT'],
      [`DELETE FROM quarantine`, 'DELETE'],
      [`DROP VIEW sensors`, 'DROP'],
      [`PRAGMA version`, 'PRAGMA'],
      [`CALL pragma_version()`, 'CALL'],
      [`SELECT 1; SELECT 2`, 'MULTIPLE'],
      [`SELECT 1; DROP VIEW sensors`, 'MULTIPLE'],
      [`EXPLAIN ANALYZE COPY (SELECT 1) TO '${hot}/e.csv'`, 'COPY'],
      [`EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1`, 'CREATE'],
      [`WITH a AS (SELECT 1) INSERT INTO quarantine SELECT * FROM quarantine`, 'INSERT'],
      [`/* comment */ -- another\n (ATTACH ':memory:' AS y)`, 'ATTACH'],
      [`  `, 'EMPTY'],
    ];
    for (const [sql, type] of cases) {
      const error = await refused(sql);
      expect(error.statementType, sql).toBe(type);
      expect(error.message, sql).toMatch(/not allowed|statements found|no statement/);
    }
    expect(existsSync(join(hot, 'x.csv'))).toBe(false);
    expect(existsSync(join(hot, 'e.csv'))).toBe(false);
    expect(existsSync(join(hot, 'exported'))).toBe(false);
    expect(existsSync(join(elsewhere, 'y.csv'))).toBe(false);
    expect({ memory: await setting('memory_limit'), threads: await setting('threads') }).toEqual(before);
    expect(before.threads).toBe(2);
    expect(before.memory).toBe('300.0 MiB');
    const databases = await ef.engine.query('SELECT database_name FROM duckdb_databases() ORDER BY 1');
    expect(databases.rows).toEqual([['memory'], ['system'], ['temp']]);
    const tables = await ef.engine.query("SELECT table_name FROM duckdb_tables() ORDER BY 1");
    expect(tables.rows).toEqual([['quarantine']]);
    expect((await ef.engine.query('SELECT count(*) FROM sensors')).rows).toEqual([[10]]);
  });

  it('the configuration is locked even past the allow-list', async () => {
    const locked = await ef.engine.query("SELECT value FROM duckdb_settings() WHERE name IN ('lock_configuration', 'enable_external_access', 'autoload_known_extensions', 'autoinstall_known_extensions', 'allow_community_extensions') ORDER BY name");
    expect(locked.rows).toEqual([['false'], ['false'], ['false'], ['false'], ['true']]);
  });

  it('allows the read-only statements', async () => {
    for (const sql of [
      'SELECT 1',
      'WITH a AS (SELECT 1 AS x) SELECT x FROM a',
      'FROM sensors LIMIT 1',
      'VALUES (1), (2)',
      'DESCRIBE sensors',
      'SHOW TABLES',
      'SUMMARIZE sensors',
      'EXPLAIN SELECT * FROM sensors',
      'EXPLAIN ANALYZE SELECT count(*) FROM sensors',
      '-- why\n(SELECT 1) UNION ALL (SELECT 2);',
    ]) {
      await expect(ef.engine.query(sql), sql).resolves.toBeTruthy();
    }
  });
});

describe('statement guard (lexical)', () => {
  it('names the first keyword and sees through comments and parentheses', () => {
    expect(checkFirstKeyword('/* x */ select 1')).toBe('SELECT');
    expect(() => checkFirstKeyword('-- a\n ( insert into t values (1))')).toThrow(/INSERT statements are not allowed/);
    expect(explainedText('EXPLAIN ANALYZE SELECT 1')).toBe(' SELECT 1');
    expect(explainedText('EXPLAIN (FORMAT json) SELECT 1')).toBe(' SELECT 1');
  });
});
