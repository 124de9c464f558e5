#!/usr/bin/env node
// Entry point of the `lakeside` command. The sources are TypeScript that Node ≥ 22.18
// runs directly (type stripping); this shim checks the runtime and, for the daemon
// commands, re-executes Node with the V8 flags of agent/runtime-flags.ts (signals and
// the exit code pass through).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`lakeside needs Node.js 22.18 or newer (this is ${process.versions.node})\n`);
  process.exit(1);
}

const { DAEMON_NODE_FLAGS, LONG_RUNNING_COMMANDS } = await import('../agent/runtime-flags.ts');
const command = process.argv[2];
const flagged = DAEMON_NODE_FLAGS.every((flag) => process.execArgv.includes(flag) || (process.env.NODE_OPTIONS ?? '').includes(flag));

if (LONG_RUNNING_COMMANDS.has(command) && !flagged) {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    // The IPC channel tells the daemon when this wrapper dies (kill -9 included): it then stops.
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  await import('../agent/cli/main.ts');
}
