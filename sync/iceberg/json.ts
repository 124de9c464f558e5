/**
 * JSON for Iceberg table metadata: 64-bit ids survive.
 *
 * Snapshot ids are int64; engines other than lakeside (Spark, PyIceberg, Flink) pick
 * them at random over the whole positive range, past 2^53, where a JS number loses
 * digits. An id parsed as a number and written back would name another snapshot.
 * - `parseIcebergJson`: an integer literal outside the safe range becomes a `bigint`
 *   (from its source text, never through a double); every other value as JSON.parse.
 * - `stringifyIcebergJson`: a `bigint` is written as a bare integer literal.
 * So `stringifyIcebergJson(parseIcebergJson(text))` keeps every id digit for digit.
 */

type Reviver = (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown;

const reviveLargeIntegers: Reviver = (_key, value, context) => {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && context.source !== undefined && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
};

const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

export function parseIcebergJson(text: string): unknown {
  return JSON.parse(text, reviveLargeIntegers as Parameters<typeof JSON.parse>[1]);
}

export function stringifyIcebergJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? rawJson(v.toString()) : v), space);
}

/** An int64 id as a bigint, whichever way it was parsed (number or bigint). */
export function toId(value: number | bigint): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}
