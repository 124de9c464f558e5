/**
 * Logs of the reads worker go through the main thread's logger, so they land where the
 * daemon's do (stdout/journald, or a test's sink) with the same redaction, and with the
 * stable `code` fields intact. The worker runs a pino logger at the main logger's level
 * whose destination posts each JSON line to the main thread; the main thread re-logs it
 * at the same level with the same fields (pino adds its own time, pid and base).
 */
import { pino, type Logger } from 'pino';

/** A pino logger for a worker thread whose lines go to `post`. */
export function relayedLogger(level: string, post: (line: string) => void): Logger {
  return pino({ level, base: undefined, timestamp: false }, { write: (line: string) => post(line) });
}

/** Writes one relayed line with `logger`; a line that does not parse is logged as it is. */
export function relayLine(logger: Logger, line: string, bindings: Record<string, unknown>): void {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    logger.warn({ ...bindings, line }, 'unparsable log line from a worker');
    return;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = record;
  const label = logger.levels.labels[Number(level)] ?? 'info';
  const write = logger[label as 'info'];
  if (typeof write === 'function') write.call(logger, { ...bindings, ...fields }, typeof msg === 'string' ? msg : '');
}
