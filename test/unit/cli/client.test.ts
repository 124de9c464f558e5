import { describe, expect, it } from 'vitest';
import { streamQuery } from '../../../agent/cli/client-commands.ts';
import { formatTable } from '../../../agent/cli/table.ts';
import { ApiClient, ApiError } from '../../../agent/cli/api-client.ts';

describe('CLI client', () => {
  it('parses stream specs into /v1/latest parameters and names a bad pair', () => {
    expect(streamQuery('sensor_readings:line=coating_1,sensor=humidity').toString()).toBe('dataset=sensor_readings&line=coating_1&sensor=humidity');
    expect(streamQuery('inspections').toString()).toBe('dataset=inspections');
    expect(() => streamQuery('sensor_readings:line')).toThrow(/key=value in "line"/);
  });

  it('formats aligned tables and cuts long cells', () => {
    const text = formatTable(['line', 'avg'], [['coating_1', 41.5], ['c', null], ['x'.repeat(100), 1]]);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^line\s+avg$/);
    expect(lines[2]).toMatch(/^coating_1\s+41\.5$/);
    expect(lines[4]!.length).toBeLessThan(70);
  });

  it('formats a table of 300,000 rows (no argument spread over the rows)', () => {
    const rows = Array.from({ length: 300_000 }, (_, i) => [`line_${i % 7}`, i]);
    const lines = formatTable(['line', 'n'], rows).trimEnd().split('\n');
    expect(lines).toHaveLength(300_002);
    expect(lines[1]).toBe('------  ------');
    expect(lines.at(-1)).toBe('line_0  299999');
  });

  it('says clearly when no daemon answers', async () => {
    const client = new ApiClient('http://127.0.0.1:9', undefined);
    const error = await client.json('/healthz').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('UNREACHABLE');
    expect((error as ApiError).message).toMatch(/no lakeside API at http:\/\/127\.0\.0\.1:9/);
  });
});
