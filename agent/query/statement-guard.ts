/**
 * The statement allow-list of on-site SQL: exactly one statement that only reads.
 *
 * Two checks, both must pass, and only the second one lets a statement run:
 * 1. Lexical, before DuckDB sees more than the parser: the first keyword (after
 *    comments and opening parentheses) must be SELECT, WITH, FROM (DuckDB's FROM-first
 *    SELECT), VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN. This runs BEFORE `prepare`
 *    because binding some statements already has effects (binding `EXPORT DATABASE`
 *    creates its directory) and because DuckDB rewrites `PRAGMA x` into a SELECT.
 * 2. DuckDB's own parser and binder: `extractStatements` must find exactly one
 *    statement, and the prepared statement's type must be SELECT (SHOW, DESCRIBE and
 *    SUMMARIZE are SELECTs to DuckDB), or EXPLAIN whose explained statement passes
 *    both checks itself (`EXPLAIN ANALYZE` runs it).
 * The sandbox (sandbox.ts) still guards what a SELECT may read.
 */
import { StatementType, type DuckDBConnection, type DuckDBPreparedStatement } from '@duckdb/node-api';
import { QueryRejectedError } from './errors.ts';

const ALLOWED_FIRST_WORDS = new Set(['SELECT', 'WITH', 'FROM', 'VALUES', 'DESCRIBE', 'SHOW', 'SUMMARIZE', 'EXPLAIN']);

const ALLOWED_HINT = 'only one read-only statement is allowed: SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN';

/** Skips whitespace, `--` and `/* *\/` comments and `(`; returns the offset of the first other character. */
function skipNoise(sql: string, from: number): number {
  let i = from;
  for (;;) {
    const rest = sql.slice(i);
    const space = /^[\s(]+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    if (rest.startsWith('--')) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      continue;
    }
    if (rest.startsWith('/*')) {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      continue;
    }
    return i;
  }
}

function firstWordAt(sql: string, from: number): { word: string; end: number } {
  const start = skipNoise(sql, from);
  const match = /^[A-Za-z_]+/.exec(sql.slice(start));
  return { word: match ? match[0].toUpperCase() : '', end: start + (match ? match[0].length : 0) };
}

/** The text of the statement an EXPLAIN wraps: after `EXPLAIN`, an optional `ANALYZE` and an optional `(options)`. */
export function explainedText(sql: string): string {
  const explain = firstWordAt(sql, 0);
  let i = explain.end;
  const next = firstWordAt(sql, i);
  if (next.word === 'ANALYZE' || next.word === 'ANALYSE') i = next.end;
  const options = /^\s*\([^()]*\)/.exec(sql.slice(i));
  if (options) i += options[0].length;
  return sql.slice(i);
}

/** Check 1 alone (no DuckDB): throws QueryRejectedError naming the first keyword. */
export function checkFirstKeyword(sql: string): string {
  const { word } = firstWordAt(sql, 0);
  if (!word) throw new QueryRejectedError('EMPTY', `no statement found; ${ALLOWED_HINT}`);
  if (!ALLOWED_FIRST_WORDS.has(word)) throw new QueryRejectedError(word, `${word} statements are not allowed; ${ALLOWED_HINT}`);
  if (word === 'EXPLAIN') {
    const inner = firstWordAt(explainedText(sql), 0).word;
    if (!ALLOWED_FIRST_WORDS.has(inner) || inner === 'EXPLAIN') {
      throw new QueryRejectedError(inner || 'EMPTY', `EXPLAIN of ${inner || 'nothing'} is not allowed; ${ALLOWED_HINT}`);
    }
  }
  return word;
}

function typeName(type: StatementType): string {
  return (StatementType as unknown as Record<number, string>)[type] ?? `TYPE_${type}`;
}

async function prepareOne(connection: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
  const extracted = await connection.extractStatements(sql);
  if (extracted.count !== 1) {
    throw new QueryRejectedError('MULTIPLE', `${extracted.count} statements found; ${ALLOWED_HINT}`);
  }
  return extracted.prepare(0);
}

/**
 * Both checks; returns the prepared (bound, not run) statement. Errors other than
 * QueryRejectedError are DuckDB's (syntax, binding, sandbox) and are the caller's to map.
 */
export async function prepareAllowed(connection: DuckDBConnection, sql: string): Promise<DuckDBPreparedStatement> {
  const word = checkFirstKeyword(sql);
  if (word === 'EXPLAIN') {
    // The explained statement passes on its own first (prepared, never run).
    const inner = await prepareOne(connection, explainedText(sql));
    const innerType = inner.statementType;
    inner.destroySync();
    if (innerType !== StatementType.SELECT) {
      throw new QueryRejectedError(typeName(innerType), `EXPLAIN of a ${typeName(innerType)} statement is not allowed; ${ALLOWED_HINT}`);
    }
  }
  const prepared = await prepareOne(connection, sql);
  const type = prepared.statementType;
  const expected = word === 'EXPLAIN' ? StatementType.EXPLAIN : StatementType.SELECT;
  if (type !== expected) {
    prepared.destroySync();
    throw new QueryRejectedError(typeName(type), `${typeName(type)} statements are not allowed; ${ALLOWED_HINT}`);
  }
  return prepared;
}
