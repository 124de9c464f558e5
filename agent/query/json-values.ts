/**
 * DuckDB values → JSON-safe values, the one encoding every reader of `query()` gets:
 * - integers (BIGINT, HUGEINT, …): a number when it is a safe integer, else its
 *   decimal string; DECIMAL: its decimal string (exact);
 * - TIMESTAMP WITH TIME ZONE: an ISO-8601 string in UTC with microseconds,
 *   `2026-11-21T14:40:00.000001Z`; plain TIMESTAMP likewise without the `Z`;
 *   ±infinity as `"infinity"` / `"-infinity"`;
 * - DOUBLE/FLOAT: numbers, NaN and ±Infinity as strings (JSON has none);
 * - everything else as DuckDB's JSON converter does (dates and times as strings,
 *   lists as arrays, structs as objects, blobs as escaped strings).
 */
import {
  DuckDBTypeId,
  JsonDuckDBValueConverter,
  type DuckDBTimestampTZValue,
  type DuckDBTimestampValue,
  type DuckDBValueConverter,
  type Json,
} from '@duckdb/node-api';

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function integerValue(value: bigint): number | string {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
}

/** µs since the epoch → ISO-8601 with 6 fractional digits (UTC). */
export function isoFromMicros(micros: bigint, zone: 'Z' | ''): string {
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const subMillis = micros - millis * 1000n;
  const iso = new Date(Number(millis)).toISOString(); // …HH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}${subMillis.toString().padStart(3, '0')}${zone}`;
}

function timestampString(value: DuckDBTimestampValue | DuckDBTimestampTZValue, zone: 'Z' | ''): string {
  if (!value.isFinite) return value.micros > 0n ? 'infinity' : '-infinity';
  const millis = Number(value.micros / 1000n);
  // Outside what Date can represent (±275k years): DuckDB's own text.
  if (Math.abs(millis) > 8.64e15) return value.toString();
  return isoFromMicros(value.micros, zone);
}

export const jsonSafeConverter: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
      return integerValue(value as bigint);
    case DuckDBTypeId.TIMESTAMP_TZ:
      return timestampString(value as DuckDBTimestampTZValue, 'Z');
    case DuckDBTypeId.TIMESTAMP:
      return timestampString(value as DuckDBTimestampValue, '');
    default:
      // Nested values (lists, structs) come back through this converter.
      return JsonDuckDBValueConverter(value, type, converter);
  }
};
