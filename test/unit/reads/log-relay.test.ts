// Logs of the reads worker reach the daemon's logger (agent/reads/log-relay.ts): same
// level, same fields (the stable `code` among them), the level filter applied on the
// worker side, and the Authorization header still redacted by the API's child logger.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../agent/log.ts';
import { relayedLogger, relayLine } from '../../../agent/reads/log-relay.ts';

function sink(): { stream: Writable; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { stream, records };
}

describe('log relay', () => {
  it('re-logs worker lines at their level with their fields, dropping what the level filters out', () => {
    const { stream, records } = sink();
    const main = createLogger('info', stream);
    const lines: string[] = [];
    const worker = relayedLogger('info', (line) => lines.push(line));
    worker.debug({ code: 'NOISE' }, 'not relayed');
    worker.error({ code: 'QUERY_FAILED', err: 'boom', dataset: 'readings' }, 'query views not refreshed');
    worker.child({ component: 'api' }, { redact: { paths: ['headers.authorization'], censor: '[redacted]' } }).warn({ headers: { authorization: 'Bearer secret' } }, 'odd request');
    expect(lines).toHaveLength(2);
    for (const line of lines) relayLine(main, line, { component: 'reads-worker' });
    expect(records).toEqual([
      expect.objectContaining({ level: 50, code: 'QUERY_FAILED', err: 'boom', dataset: 'readings', component: 'reads-worker', msg: 'query views not refreshed', service: 'lakeside' }),
      expect.objectContaining({ level: 40, component: 'api', headers: { authorization: '[redacted]' }, msg: 'odd request' }),
    ]);
    expect(JSON.stringify(records)).not.toContain('secret');
  });

  it('logs a line that does not parse as it is, at warn', () => {
    const { stream, records } = sink();
    relayLine(createLogger('info', stream), 'not json', {});
    expect(records).toEqual([expect.objectContaining({ level: 40, line: 'not json' })]);
  });
});
