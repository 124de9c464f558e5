import { describe, expect, it } from 'vitest';
import { formatTimeUs, parseIso8601, parseTimeUs } from '../../../agent/mapping/time.ts';

const T = 1_732_190_000_123_000; // 2024-11-21T11:53:20.123Z in µs

describe('epoch formats', () => {
  it.each([
    [1_732_190_000.123, 'epoch_s', T],
    ['1732190000.123', 'epoch_s', T],
    ['1732190000.1234567', 'epoch_s', T + 457], // exact digits, rounded on the 7th
    [1_732_190_000, 'epoch_s', T - 123_000],
    [1_732_190_000_123, 'epoch_ms', T],
    ['1732190000123', 'epoch_ms', T],
    [1_732_190_000_123.5, 'epoch_ms', T + 500],
    ['1732190000123.456', 'epoch_ms', T + 456],
    [1_732_190_000_123_000, 'epoch_us', T],
    ['1732190000123000', 'epoch_us', T],
    ['-1', 'epoch_s', -1_000_000],
  ] as const)('%j as %s', (value, format, expected) => {
    expect(parseTimeUs(value, format)).toBe(expected);
  });

  it.each([
    [1.5, 'epoch_us', /whole number/],
    ['1.5', 'epoch_us', /whole number/],
    ['abc', 'epoch_ms', /not a decimal/],
    ['1e12', 'epoch_ms', /not a decimal/],
    [' 12', 'epoch_ms', /not a decimal/],
    [true, 'epoch_ms', /expected a number/],
    [null, 'epoch_s', /expected a number/],
    [1e300, 'epoch_s', /out of range/],
  ] as const)('refuses %j as %s', (value, format, reason) => {
    expect(parseTimeUs(value, format)).toMatch(reason);
  });
});

describe('ISO-8601', () => {
  it.each([
    ['2024-11-21T11:53:20.123Z', T],
    ['2024-11-21T11:53:20.123000Z', T],
    ['2024-11-21T12:53:20.123+01:00', T],
    ['2024-11-21T12:53:20.123+0100', T],
    ['2024-11-21T06:53:20.123-05', T],
    ['2024-11-21 11:53:20.123z', T],
    ['2024-11-21t11:53:20,123Z', T],
    ['2024-11-21T11:53:20.123456789Z', T + 456], // below a µs is truncated
    ['2024-11-21T11:53Z', T - 20_123_000],
    ['1970-01-01T00:00:00Z', 0],
    ['2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29) * 1000],
    ['1969-12-31T23:59:59.5Z', -500_000],
  ])('%s', (text, expected) => {
    expect(parseIso8601(text)).toBe(expected);
    expect(parseTimeUs(text, 'iso8601')).toBe(expected);
  });

  it.each([
    ['2024-11-21T11:53:20', /no time zone/],
    ['2024-11-21T11:53:20.123', /no time zone/],
    ['2024-11-21', /without a time of day/],
    ['2023-02-29T00:00:00Z', /no such date/],
    ['2024-13-01T00:00:00Z', /no such date/],
    ['2024-11-21T24:00:00Z', /no such time/],
    ['2024-11-21T23:59:60Z', /no such time/],
    ['2024-11-21T00:00:00+25:00', /no such offset/],
    ['yesterday', /not an ISO-8601/],
  ])('refuses %s', (text, reason) => {
    expect(parseTimeUs(text, 'iso8601')).toMatch(reason);
  });

  it('refuses numbers for iso8601 and round-trips formatting', () => {
    expect(parseTimeUs(1_732_190_000_123, 'iso8601')).toMatch(/expected an ISO-8601 string, got a number/);
    expect(formatTimeUs(T + 456)).toBe('2024-11-21T11:53:20.123456Z');
  });
});
