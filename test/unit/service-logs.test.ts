// Test services keep their logs when something fails: a service whose readiness never
// comes leaves its log (and the error) in test-logs/<service>-<timestamp>-<pid>/ and the
// error names that folder; stop({ keepLogs: true }) copies the log before the temp dir
// goes; without the option, the failure probe decides.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it, type RunnerTask } from 'vitest';
import { managedProcess, serviceControl, type ManagedProcess } from '../services/managed-process.ts';
import { TEST_LOGS_DIR, anyTaskFailed, keepLogsOnStop, setFailureProbe, startFailure } from '../services/service-logs.ts';
import { folderNamedBy, keptFolder } from '../support/kept-logs.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  setFailureProbe(() => false);
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lakeside-service-logs-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// Logs a line, never becomes ready, idles until a signal.
const neverReady = `console.log('warming up: cannot reach the metadata store'); setInterval(() => {}, 1000);`;

function fake(dir: string, script: string): ManagedProcess {
  const proc = managedProcess({
    name: 'fake',
    command: process.execPath,
    args: ['-e', script],
    logFile: join(dir, 'fake.log'),
    ready: async () => false,
    startTimeoutMs: 1_500,
    stopTimeoutMs: 2_000,
  });
  cleanups.push(() => proc.stop('SIGKILL'));
  return proc;
}

describe('service logs', () => {
  it('keeps the log of a service whose readiness never comes, and the error names the folder', async () => {
    const dir = await tempDir();
    const proc = fake(dir, neverReady);
    const failure = await proc.start().then(
      () => new Error('started'),
      (e: unknown) => startFailure('fake', e, [join(dir, 'fake.log'), join(dir, 'absent.log')], () => rm(dir, { recursive: true, force: true })),
    );
    expect(proc.running).toBe(false);
    const folder = folderNamedBy(failure, 'fake', cleanups);
    expect(basename(folder)).toMatch(new RegExp(`^fake-\\d{4}-\\d\\d-\\d\\dT[\\d-]+Z-${process.pid}$`));
    // The message still carries the tail, and the folder holds the log and the error.
    expect(failure.message).toMatch(/fake not ready within 1500 ms[\s\S]*warming up: cannot reach the metadata store/);
    expect(readdirSync(folder).sort()).toEqual(['fake.log', 'start-error.txt']);
    expect(readFileSync(join(folder, 'fake.log'), 'utf8')).toContain('warming up: cannot reach the metadata store');
    expect(readFileSync(join(folder, 'start-error.txt'), 'utf8')).toContain('fake not ready within 1500 ms');
    expect(existsSync(dir)).toBe(false);
  });

  it('a copy that fails neither hides the start error nor keeps the working dir', async () => {
    const before = new Set(existsSync(TEST_LOGS_DIR) ? readdirSync(TEST_LOGS_DIR) : []);
    cleanups.push(async () => {
      for (const name of readdirSync(TEST_LOGS_DIR)) if (!before.has(name)) await rm(join(TEST_LOGS_DIR, name), { recursive: true, force: true });
    });
    const dir = await tempDir();
    const error = await startFailure('unkeepable', new Error('readiness never came'), [{ name: 'no/such/dir/out.txt', text: 'x' }], () => rm(dir, { recursive: true, force: true }));
    expect(error.message).toMatch(/^readiness never came\nunkeepable: could not keep its logs \(ENOENT/);
    expect(existsSync(dir)).toBe(false);
    expect(keepLogsOnStop('unkeepable', { keepLogs: true }, [{ name: 'no/such/dir/out.txt', text: 'x' }])).toBeUndefined();
  });

  it('stop({ keepLogs: true }) copies the log to test-logs before the working dir is removed', async () => {
    const dir = await tempDir();
    const proc = managedProcess({
      name: 'fake',
      command: process.execPath,
      args: ['-e', `console.log('serving'); setInterval(() => {}, 1000);`],
      logFile: join(dir, 'fake.log'),
      ready: async () => true,
      readyLogPattern: /serving/,
      stopTimeoutMs: 2_000,
    });
    cleanups.push(() => proc.stop('SIGKILL'));
    await proc.start();
    const control = serviceControl('fake', {
      current: () => proc,
      relaunch: () => proc.start(),
      remove: () => rm(dir, { recursive: true, force: true }),
      logs: [join(dir, 'fake.log')],
    });
    await control.stop({ keepLogs: true });
    expect(proc.running).toBe(false);
    expect(existsSync(dir)).toBe(false);
    const folder = keptFolder(control.keptLogs, cleanups);
    expect(readFileSync(join(folder, 'fake.log'), 'utf8')).toContain('serving');
  });

  it('without keepLogs, keeps logs only when the failure probe says the test failed', async () => {
    const dir = await tempDir();
    const sources = [{ name: 'stderr.txt', text: 'broker said no\n' }];
    expect(keepLogsOnStop('fake', {}, sources)).toBeUndefined();
    setFailureProbe(() => true);
    const folder = keptFolder(keepLogsOnStop('fake', {}, sources), cleanups);
    expect(readFileSync(join(folder, 'stderr.txt'), 'utf8')).toBe('broker said no\n');
    expect(keepLogsOnStop('fake', { keepLogs: false }, sources)).toBeUndefined();
    // Two folders in the same millisecond do not collide.
    const a = keptFolder(keepLogsOnStop('fake', { keepLogs: true }, [dir]), cleanups);
    const b = keptFolder(keepLogsOnStop('fake', { keepLogs: true }, [dir]), cleanups);
    expect(a).not.toBe(b);
  });

  it('an afterAll sees a failure anywhere in the file: a failed test, or a failed suite hook', () => {
    const test = (state: 'pass' | 'fail' | 'run'): RunnerTask => ({ type: 'test', result: { state } }) as RunnerTask;
    const suite = (tasks: RunnerTask[], state: 'run' | 'fail' = 'run'): RunnerTask => ({ type: 'suite', tasks, result: { state } }) as RunnerTask;
    expect(anyTaskFailed(suite([test('pass'), suite([test('pass'), test('run')])]))).toBe(false);
    expect(anyTaskFailed(suite([test('pass'), suite([test('pass'), test('fail')])]))).toBe(true);
    // A beforeAll that threw marks its suite failed and skips its tests.
    expect(anyTaskFailed(suite([test('pass'), suite([], 'fail')]))).toBe(true);
  });
});
