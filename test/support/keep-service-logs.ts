// Integration-suite setup file (vitest.config.ts): tells the test services whether the
// test that is stopping them failed, so stop() keeps their logs in test-logs without any
// test file passing a flag. Inside a test or its afterEach, that test's state counts (a
// failed test is marked failed before its afterEach hooks run); in an afterAll, any
// failed test or hook of this file does. A service stopped inside a test body before the
// test fails is not covered: stop({ keepLogs: true }) there if it matters.
import { beforeAll, TestRunner } from 'vitest';
import { anyTaskFailed, setFailureProbe } from '../services/service-logs.ts';

// The hook's first argument (fixtures) must be a destructuring pattern; the second is this file's suite.
beforeAll(({}, file) => {
  setFailureProbe(() => {
    const test = TestRunner.getCurrentTest();
    return test ? test.result?.state === 'fail' : anyTaskFailed(file);
  });
});
