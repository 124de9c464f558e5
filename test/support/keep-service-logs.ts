// Integration-suite setup file (vitest.config.ts): tells the test services whether the
// test that is stopping them failed, so stop() keeps their logs in test-logs without any
// test file passing a flag. Inside a test or its afterEach, that test's state counts (a
// failed test is marked failed before its afterEach hooks run); in an afterAll, any
// failed test or hook of this file does. A service stopped inside a test body before the
// test fails is not covered: stop({ keepLogs: true }) there if it matters.
import { beforeAll, type RunnerTask } from 'vitest';
import { getCurrentTest } from 'vitest/suite';
import { setFailureProbe } from '../services/service-logs.ts';

const failed = (t: RunnerTask): boolean => t.result?.state === 'fail' || (t.type === 'suite' && t.tasks.some(failed));

beforeAll((_context, file) => {
  setFailureProbe(() => {
    const test = getCurrentTest();
    return test ? test.result?.state === 'fail' : failed(file);
  });
});
