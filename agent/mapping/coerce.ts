/**
 * Coercion of one raw value (from JSON, a topic level, a path field or a const) to a
 * column type. The same rules hold wherever the value comes from:
 *
 * - string:  a string as is; a finite number is stringified (ids such as `1042` are
 *            often sent as numbers); booleans, objects and arrays are refused.
 * - int:     a whole number in the int32 range; long: a safe integer (±2^53-1);
 *            double: a finite number. For all three a string of decimal digits is
 *            accepted too (`"41.2"`, `"-7"`), because topic levels and file names are
 *            text and many devices quote numbers; blanks, hex, exponents, `NaN` are not.
 * - boolean: `true`/`false`, or the strings `"true"`/`"false"`; never 0/1.
 * - timestamp: see time.ts (per the field's format).
 *
 * `coerce` returns `INVALID` instead of building an error, so the happy path does not
 * allocate; `expectation` words the refusal only when one is needed.
 */
import type { ColumnType, TimeFormat } from '../../config/schema.ts';
import type { RowValue } from '../../config/dataset.ts';
import { parseTimeUs } from './time.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Coerced = RowValue | typeof INVALID;

const INTEGER_TEXT = /^-?\d+$/;
const DECIMAL_TEXT = /^-?\d+(?:\.\d+)?$/;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/** A coercer for one column; `format` only for timestamp columns. */
export function coercerFor(type: ColumnType, format?: TimeFormat): (raw: unknown) => Coerced {
  switch (type) {
    case 'string':
      return (raw) => (typeof raw === 'string' ? raw : typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : INVALID);
    case 'int':
      return (raw) => {
        const n = typeof raw === 'number' ? raw : typeof raw === 'string' && INTEGER_TEXT.test(raw) ? Number(raw) : NaN;
        return Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX ? n : INVALID;
      };
    case 'long':
      return (raw) => {
        const n = typeof raw === 'number' ? raw : typeof raw === 'string' && INTEGER_TEXT.test(raw) ? Number(raw) : NaN;
        return Number.isSafeInteger(n) ? n : INVALID;
      };
    case 'double':
      return (raw) => {
        const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL_TEXT.test(raw) ? Number(raw) : NaN;
        return Number.isFinite(n) ? n : INVALID;
      };
    case 'boolean':
      return (raw) => (typeof raw === 'boolean' ? raw : raw === 'true' ? true : raw === 'false' ? false : INVALID);
    case 'timestamp': {
      const timeFormat = format ?? 'iso8601';
      return (raw) => {
        const us = parseTimeUs(raw, timeFormat);
        return typeof us === 'number' ? us : INVALID;
      };
    }
    case 'blob':
      return () => INVALID;
  }
}

/** What a column accepts, for a refusal's text. */
export function expectation(type: ColumnType, format?: TimeFormat, raw?: unknown): string {
  switch (type) {
    case 'string':
      return 'expected a string';
    case 'int':
      return 'expected a whole number in the 32-bit range';
    case 'long':
      return 'expected a whole number within ±2^53';
    case 'double':
      return 'expected a number';
    case 'boolean':
      return 'expected true or false';
    case 'timestamp': {
      const why = parseTimeUs(raw, format ?? 'iso8601');
      return `expected an ${format ?? 'iso8601'} time${typeof why === 'string' ? ` (${why})` : ''}`;
    }
    case 'blob':
      return 'a blob comes from the payload';
  }
}

/** A short, safe rendering of a refused value: JSON, cut at `max` characters. */
export function preview(raw: unknown, max = 60): string {
  let text: string;
  try {
    text = raw === undefined ? 'nothing' : (JSON.stringify(raw) ?? String(raw));
  } catch {
    text = String(raw);
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
