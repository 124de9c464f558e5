import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 300_000,
          // A beforeAll may provision a test service on a cold cache (build versitygw,
          // download the Iceberg REST jar, create the PyIceberg venv): minutes, once.
          // CI provisions first (npm run services:provision), so there it is seconds.
          hookTimeout: 900_000,
          fileParallelism: false,
          // stop() of a test service keeps its logs in test-logs/ when the test failed.
          setupFiles: ['test/support/keep-service-logs.ts'],
        },
      },
    ],
  },
});
