/**
 * V8 flags the daemon runs with. At high message rates V8 grows the young generation
 * to tens of MB per semi-space, which costs RSS and buys little (measured with
 * test/bench/mqtt-ingest.ts: peak RSS 425 → 310 MB at 20k msg/s, same throughput).
 * `bin/lakeside.js` re-executes itself with these flags for long-running commands,
 * unless they are already set: the systemd unit sets them in NODE_OPTIONS so the daemon
 * is the service's main process (test/integration/systemd-unit.test.ts keeps the two equal).
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=16'];

/** Commands that run for a long time and so get the flags. */
export const LONG_RUNNING_COMMANDS = new Set(['run', 'demo']);
