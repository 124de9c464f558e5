/**
 * Event time parsing: every accepted value becomes an integer count of microseconds
 * since the Unix epoch (UTC).
 *
 * Decisions:
 * - epoch_s / epoch_ms: a JSON number or a decimal string (`"1732190000.123"`);
 *   fractions allowed. Strings are converted digit by digit, so `"1732190000.123456"`
 *   is exact; numbers are rounded to the nearest µs.
 * - epoch_us: a whole number (JSON number or digit string); a fraction is refused
 *   (nothing below a µs can be kept, and a fraction hints at a wrong unit).
 * - iso8601: `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `Z` or an offset (`+02:00`,
 *   `+0200`, `+02`); `T`, `t` or a space between date and time. A time **without a
 *   zone is refused**: guessing UTC or local time shifts readings by hours, silently.
 *   Digits below a µs are truncated. Leap seconds (`:60`) are refused.
 * - Anything else (booleans, objects, exponents in strings, blanks) is refused.
 *
 * A parse returns the µs value, or a string saying why not (never throws).
 */
import type { TimeFormat } from '../../config/schema.ts';

/** Microseconds since the epoch, or the reason the value is not a time. */
export type TimeResult = number | string;

const SCALE: Record<Exclude<TimeFormat, 'iso8601'>, number> = { epoch_s: 1_000_000, epoch_ms: 1_000, epoch_us: 1 };
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;

export function parseTimeUs(value: unknown, format: TimeFormat): TimeResult {
  if (format === 'iso8601') return typeof value === 'string' ? parseIso8601(value) : `expected an ISO-8601 string, got ${kindOf(value)}`;
  const scale = SCALE[format];
  if (typeof value === 'number') return fromNumber(value, scale, format);
  if (typeof value === 'string') return fromDecimalString(value, scale, format);
  return `expected a number for ${format}, got ${kindOf(value)}`;
}

function fromNumber(value: number, scale: number, format: string): TimeResult {
  if (!Number.isFinite(value)) return `not a finite number`;
  if (scale === 1 && !Number.isInteger(value)) return `${format} must be a whole number`;
  const us = scale === 1 ? value : Math.round(value * scale);
  return Number.isSafeInteger(us) ? us : `out of range for ${format}`;
}

function fromDecimalString(text: string, scale: number, format: string): TimeResult {
  const match = DECIMAL.exec(text);
  if (!match) return `not a decimal number`;
  const [, sign, whole, fraction = ''] = match;
  if (scale === 1 && fraction !== '' && !/^0*$/.test(fraction)) return `${format} must be a whole number`;
  const digits = scale === 1_000_000 ? 6 : scale === 1_000 ? 3 : 0;
  // Exact: whole * scale + the first `digits` of the fraction, rounded on the next one.
  let us = Number(whole) * scale + (digits ? Number(fraction.slice(0, digits).padEnd(digits, '0')) : 0);
  if (fraction.length > digits && fraction.charCodeAt(digits) >= 53 /* '5' */) us += 1;
  if (sign) us = -us;
  return Number.isSafeInteger(us) ? us : `out of range for ${format}`;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function parseIso8601(text: string): TimeResult {
  const m = ISO.exec(text);
  if (!m) return /^\d{4}-\d{2}-\d{2}$/.test(text) ? 'a date without a time of day' : 'not an ISO-8601 date-time';
  const [, ys, mos, ds, hs, mis, ss = '0', fraction = '', zulu, sign, ohs, oms = '0'] = m;
  if (zulu === undefined && sign === undefined) return 'no time zone (add Z or an offset such as +01:00)';
  const year = Number(ys), month = Number(mos), day = Number(ds);
  const hour = Number(hs), minute = Number(mis), second = Number(ss);
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0)) return 'no such date';
  if (hour > 23 || minute > 59 || second > 59) return 'no such time of day';
  let offsetMinutes = 0;
  if (sign !== undefined) {
    const oh = Number(ohs), om = Number(oms);
    if (oh > 23 || om > 59) return 'no such offset';
    offsetMinutes = (sign === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const days = daysFromCivil(year, month, day);
  const seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offsetMinutes * 60;
  const micros = fraction === '' ? 0 : Number(fraction.slice(0, 6).padEnd(6, '0'));
  return seconds * 1_000_000 + micros;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value === 'boolean' ? String(value) : `a ${typeof value}`;
}

/** `2024-11-21T12:13:20.123456Z`, for messages. */
export function formatTimeUs(us: number): string {
  const ms = Math.floor(us / 1000);
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return `${us} µs`;
  const micros = String(us - ms * 1000).padStart(3, '0');
  return date.toISOString().replace('Z', `${micros}Z`);
}
