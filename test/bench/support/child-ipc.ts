/**
 * A benchmark's daemon as a child process, spoken to over IPC: `ask(type, reply)` sends
 * `{type}` and resolves with the next message of type `reply`. Replies come back in
 * request order, so one FIFO of resolvers per reply type is enough. The child runs with
 * the daemon's V8 flags (agent/runtime-flags.ts), plus `--cpu-prof` into BENCH_PROFILE
 * and any BENCH_NODE_FLAGS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { DAEMON_NODE_FLAGS } from '../../../agent/runtime-flags.ts';

export interface BenchChild {
  proc: ChildProcess;
  ask<T>(type: string, reply: string): Promise<T>;
  /** The child's 'ready' message (bench-daemon.ts puts the API's URL in it). */
  ready: { type: 'ready'; apiUrl?: string };
}

export async function forkBenchChild(entry: URL, args: string[]): Promise<BenchChild> {
  const execArgv = [
    ...DAEMON_NODE_FLAGS,
    ...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []),
    ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
  ];
  const proc = fork(entry.pathname, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const waiting = new Map<string, ((value: unknown) => void)[]>();
  const expect = (reply: string, resolve: (value: unknown) => void) => {
    const queue = waiting.get(reply) ?? [];
    queue.push(resolve);
    waiting.set(reply, queue);
  };
  proc.on('message', (message: { type: string }) => waiting.get(message.type)?.shift()?.(message));
  const ask = <T>(type: string, reply: string) =>
    new Promise<T>((resolve) => {
      expect(reply, resolve as (value: unknown) => void);
      proc.send({ type });
    });
  const ready = (await new Promise<unknown>((resolve) => expect('ready', resolve))) as BenchChild['ready'];
  return { proc, ask, ready };
}
