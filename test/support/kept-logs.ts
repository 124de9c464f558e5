// Tests of the services' kept logs: the folders they make under test-logs are checked to
// be there and removed after the test, so a passing run leaves test-logs empty.
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { expect } from 'vitest';
import { TEST_LOGS_DIR } from '../services/service-logs.ts';

/** Asserts `folder` (a service's keptLogs) is a test-logs folder; `cleanups` removes it after the test. */
export function keptFolder(folder: string | undefined, cleanups: Array<() => Promise<unknown>>): string {
  if (folder !== undefined) cleanups.push(() => rm(folder, { recursive: true, force: true }));
  expect(folder).toBeDefined();
  expect(dirname(folder!)).toBe(TEST_LOGS_DIR);
  return folder!;
}

/** The test-logs folder a start error names (`<service>: logs kept in <folder>`), as keptFolder() checks it. */
export function folderNamedBy(error: Error, service: string, cleanups: Array<() => Promise<unknown>>): string {
  const named = new RegExp(`${service}: logs kept in (\\S+)`).exec(error.message)?.[1];
  expect(named, error.message).toBeDefined();
  return keptFolder(named, cleanups);
}
