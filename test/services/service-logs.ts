// Where the logs of a test service go when something fails: a service that does not come
// up, or a test that used it and failed, would otherwise take its log with it when its
// temp dir is removed. The logs are copied to `test-logs/<service>-<timestamp>-<pid>/`
// under the repository (git-ignored; .ci/run prints what a failed run left there).
//
// Invariants:
// - A start failure always keeps the logs, and its error names the folder (the log tail
//   stays in the message too).
// - stop({ keepLogs }) keeps them when asked; without the option it asks the failure
//   probe, which the integration suites' setup file (test/support/keep-service-logs.ts)
//   points at vitest's task state. Outside vitest (benchmarks) the probe says no.
// - Nothing here imports vitest: the benchmarks load these services under plain node.
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunnerTask } from 'vitest';

/** `<repo>/test-logs`: one folder per kept set of logs. */
export const TEST_LOGS_DIR = fileURLToPath(new URL('../../test-logs', import.meta.url));

/** A file (or folder) to copy as is, or text the service held only in memory (e.g. stderr). */
export type LogSource = string | { name: string; text: string };

export interface StopOptions {
  /** Copy the service's logs to test-logs before its temp dir is removed (default: whether a test failed). */
  keepLogs?: boolean;
}

let failureProbe: () => boolean = () => false;

/** Installs the answer to "has the test (or suite) that is stopping this service failed?". */
export function setFailureProbe(probe: () => boolean): void {
  failureProbe = probe;
}

/** Whether a test, a suite or a suite hook under `task` has failed so far (vitest marks a failed test before its afterEach hooks run). */
export function anyTaskFailed(task: RunnerTask): boolean {
  return task.result?.state === 'fail' || (task.type === 'suite' && task.tasks.some(anyTaskFailed));
}

/** Copies the sources that exist into a new test-logs folder; returns its path. */
export function keepLogs(service: string, sources: LogSource[]): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let folder = join(TEST_LOGS_DIR, `${service}-${stamp}-${process.pid}`);
  for (let n = 2; existsSync(folder); n++) folder = join(TEST_LOGS_DIR, `${service}-${stamp}-${process.pid}-${n}`);
  mkdirSync(folder, { recursive: true });
  for (const s of sources) {
    if (typeof s !== 'string') {
      if (s.text) writeFileSync(join(folder, s.name), s.text);
    } else if (existsSync(s)) {
      cpSync(s, join(folder, basename(s)), { recursive: true });
    }
  }
  return folder;
}

/**
 * `keepLogs`, except that a copy which fails (disk full, permissions) never fails the
 * stop or hides a start error: it is reported on stderr and nothing is kept.
 */
function tryKeepLogs(service: string, sources: LogSource[]): { folder?: string; failure?: string } {
  try {
    return { folder: keepLogs(service, sources) };
  } catch (error) {
    const failure = `${service}: could not keep its logs (${(error as Error).message})`;
    process.stderr.write(`${failure}\n`);
    return { failure };
  }
}

/** Keeps the logs when `opts.keepLogs` says so, or (unset) when the failure probe does; returns the folder. */
export function keepLogsOnStop(service: string, opts: StopOptions, sources: LogSource[]): string | undefined {
  return (opts.keepLogs ?? failureProbe()) ? tryKeepLogs(service, sources).folder : undefined;
}

/**
 * A service failed to start: keeps its logs, then removes its working dir (`remove`), and
 * returns the error to throw, naming the kept folder after the original message.
 */
export async function startFailure(service: string, error: unknown, sources: LogSource[], remove: () => Promise<void>): Promise<Error> {
  const message = error instanceof Error ? error.message : String(error);
  const kept = tryKeepLogs(service, [...sources, { name: 'start-error.txt', text: `${message}\n` }]);
  await remove();
  return new Error(`${message}\n${kept.folder ? `${service}: logs kept in ${kept.folder}` : kept.failure}`, { cause: error });
}
