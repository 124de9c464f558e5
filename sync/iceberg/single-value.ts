/**
 * Iceberg's binary single-value serialization (spec, Appendix D), used for the bounds
 * of data files and of manifest-list partition summaries, and the order of values
 * that those bounds follow.
 *
 * - boolean: 1 byte (0 false, 1 true); int and date: 4-byte little-endian;
 *   long, timestamp, timestamptz: 8-byte little-endian (µs); float / double:
 *   4 / 8-byte little-endian IEEE 754; string: UTF-8 bytes, no length; binary as is.
 * - NaN has no serialization here: it is never a bound.
 * - Strings order by their UTF-8 bytes (= code points), not by UTF-16 units.
 */
import type { IcebergPrimitive } from './metadata.ts';

export type SingleValue = number | bigint | string | boolean | Uint8Array;

export function encodeSingleValue(type: IcebergPrimitive, value: SingleValue): Buffer {
  switch (type) {
    case 'boolean':
      return Buffer.from([value ? 1 : 0]);
    case 'int':
    case 'date': {
      const buf = Buffer.alloc(4);
      buf.writeInt32LE(Number(value));
      return buf;
    }
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz': {
      if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error(`single value: ${value} is not an exact ${type}`);
      const buf = Buffer.alloc(8);
      buf.writeBigInt64LE(BigInt(value as number | bigint));
      return buf;
    }
    case 'float':
    case 'double': {
      if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`single value: ${String(value)} is not a ${type} bound`);
      const buf = Buffer.alloc(type === 'float' ? 4 : 8);
      if (type === 'float') buf.writeFloatLE(value);
      else buf.writeDoubleLE(value);
      return buf;
    }
    case 'string':
      return Buffer.from(String(value), 'utf8');
    case 'binary':
      return Buffer.from(value as Uint8Array);
    default:
      throw new Error(`single value: type ${type} is not supported`);
  }
}

/** Total order of non-null, non-NaN values of one type (-0 before +0, strings by UTF-8). */
export function compareSingleValues(a: SingleValue, b: SingleValue): number {
  if (typeof a === 'string' && typeof b === 'string') return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b);
  if (typeof a === 'number' && typeof b === 'number' && a === 0 && b === 0) return Object.is(a, -0) === Object.is(b, -0) ? 0 : Object.is(a, -0) ? -1 : 1;
  const x = typeof a === 'boolean' ? Number(a) : (a as number | bigint);
  const y = typeof b === 'boolean' ? Number(b) : (b as number | bigint);
  return x < y ? -1 : x > y ? 1 : 0;
}
