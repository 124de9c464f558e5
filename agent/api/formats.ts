/**
 * Result formats of POST /v1/query. JSON: `{ columns, rows, truncated, elapsed_ms }`
 * where values are JSON-safe (bigint → number when exact, else string; Date → ISO
 * string; bytes → base64). CSV: RFC 4180 — a header row of column names, CRLF line
 * ends, a field quoted when it holds a comma, quote, CR or LF (quotes doubled), null
 * as an empty field. Arrow: an IPC stream (schema, record batches, end marker) whose
 * column types follow the engine's type names; unknown types become Utf8; a repeated
 * column name gets a suffix (`a`, `a_2`) because Arrow fields need distinct names.
 */
import {
  Binary, Bool, Field, Float32, Float64, Int32, Int64, makeData, RecordBatch, Schema, Struct, TimestampMillisecond, Utf8,
  vectorFromArray, type DataType,
} from 'apache-arrow';
import type { QueryColumn } from './ports.ts';

export type ResultFormat = 'json' | 'csv' | 'arrow';

export const contentTypeOf: Record<ResultFormat, string> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  arrow: 'application/vnd.apache.arrow.stream',
};

/** An explicit `format` wins; otherwise the Accept header; otherwise JSON. */
export function negotiateFormat(format: ResultFormat | undefined, accept: string | undefined): ResultFormat {
  if (format) return format;
  const wanted = (accept ?? '').toLowerCase();
  if (wanted.includes('application/vnd.apache.arrow.stream')) return 'arrow';
  if (wanted.includes('text/csv')) return 'csv';
  return 'json';
}

// ---- JSON

export function jsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  }
  return value;
}

export function jsonRow(row: unknown[]): string {
  return JSON.stringify(row.map(jsonValue));
}

// ---- CSV

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const v = jsonValue(value);
  const text = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function csvLine(values: unknown[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

export function csvHeader(columns: QueryColumn[]): string {
  return csvLine(columns.map((c) => c.name));
}

// ---- Arrow

function arrowType(engineType: string): DataType {
  const t = engineType.toUpperCase();
  if (t === 'BOOLEAN' || t === 'BOOL') return new Bool();
  if (t === 'TINYINT' || t === 'SMALLINT' || t === 'INTEGER' || t === 'INT' || t === 'UTINYINT' || t === 'USMALLINT') return new Int32();
  if (t === 'BIGINT' || t === 'UINTEGER') return new Int64();
  if (t === 'FLOAT' || t === 'REAL') return new Float32();
  if (t === 'DOUBLE' || t.startsWith('DECIMAL')) return new Float64();
  if (t.startsWith('TIMESTAMP')) return new TimestampMillisecond(t.includes('TIME ZONE') ? 'UTC' : null);
  if (t === 'BLOB') return new Binary();
  return new Utf8();
}

function toArrowValue(type: DataType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (type instanceof Int64) return typeof value === 'bigint' ? value : BigInt(Math.trunc(Number(value)));
  if (type instanceof Int32 || type instanceof Float32 || type instanceof Float64) return Number(value);
  if (type instanceof Bool) return Boolean(value);
  if (type instanceof TimestampMillisecond) {
    if (value instanceof Date) return value.getTime();
    if (typeof value === 'bigint') return Number(value / 1000n); // the engine's native microseconds
    if (typeof value === 'string') return Date.parse(value);
    return Number(value);
  }
  if (type instanceof Binary) return value instanceof Uint8Array ? value : Buffer.from(String(value));
  const v = jsonValue(value);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Arrow IPC cannot carry two fields of one name: a repeated name gets `_2`, `_3`, ... */
function uniqueNames(columns: QueryColumn[]): string[] {
  const seen = new Set<string>();
  return columns.map(({ name }) => {
    let unique = name;
    for (let n = 2; seen.has(unique); n++) unique = `${name}_${n}`;
    seen.add(unique);
    return unique;
  });
}

/** One record batch of `rows` (row-major) with types from `columns`. */
export function arrowBatch(columns: QueryColumn[], rows: unknown[][]): RecordBatch {
  const names = uniqueNames(columns);
  const fields = columns.map((column, index) => new Field(names[index]!, arrowType(column.type), true));
  const children = fields.map((field, index) => {
    const vector = vectorFromArray(rows.map((row) => toArrowValue(field.type, row[index])) as never[], field.type);
    return vector.data[0] ?? makeData({ type: field.type, length: 0 } as never);
  });
  const data = makeData({ type: new Struct(fields), length: rows.length, nullCount: 0, children });
  return new RecordBatch(new Schema(fields), data);
}
