/**
 * Failpoints: named spots where a crash test can freeze the daemon and SIGKILL it at
 * exactly that instant ("after the L0 files are published, before the commit that
 * registers them").
 *
 * `LAKESIDE_FAILPOINTS=seal.after-publish,compact.after-commit` arms the named points.
 * When the running thread reaches an armed point it writes one JSON line to stderr,
 * `{"msg":"failpoint <name>","failpoint":"<name>",...}`, with a synchronous write
 * (works from worker threads, which have no pino logger and whose process.stderr is
 * asynchronous), and then blocks that thread for good (Atomics.wait), so whatever
 * the point guards stays exactly half done until the test kills the process.
 *
 * Unarmed (the env var unset, always in production) `failpoint` is an empty function:
 * one call, no lookup, no allocation.
 *
 * Points (see the call sites):
 * - `seal.after-publish`: L0 files renamed into place, not yet registered (seal.ts).
 * - `compact.after-publish`: L1 files renamed into place, not yet registered (compact.ts).
 * - `compact.after-commit`: L1 registered and L0 unregistered, L0 files not yet unlinked.
 * - `landing.before-commit`: the landing writer took a batch and never commits it (a
 *   hung disk): the health loop must withhold the watchdog (writer-worker.ts).
 * - `reads.crash`: not a freeze: lets a test crash the reads worker with an uncaught
 *   error (OnSiteReads.crashForTest), to prove the main thread restarts it.
 * - `tiering.after-put`: an object stored in warm, not yet marked uploaded (tiering/uploader.ts).
 * - `tiering.after-cold-put`: an object copied to cold and verified, still in warm, not
 *   yet handed to the catalog (tiering/archiver.ts).
 * - `tiering.after-warm-delete`: the object deleted from warm, not yet marked archived.
 * - `kafka.after-landing`: a Kafka batch is durable in the landing log, its offsets not
 *   yet committed to Kafka (kafka-source.ts): the restarted agent gets it redelivered.
 * - `merge.after-publish`: merged L1/rollup files renamed into place, not yet registered (merge.ts).
 * - `merge.after-commit`: merged files registered, inputs unregistered, not yet unlinked.
 */
import { writeSync } from 'node:fs';
import { threadId } from 'node:worker_threads';

const armed = new Set(
  (process.env.LAKESIDE_FAILPOINTS ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0),
);

function hit(name: string, files?: readonly { path: string }[]): void {
  if (!armed.has(name)) return;
  const line = { level: 40, time: Date.now(), pid: process.pid, thread: threadId, msg: `failpoint ${name}`, failpoint: name, files: files?.map((f) => f.path) ?? [] };
  writeSync(2, `${JSON.stringify(line)}\n`);
  // Blocks this thread until the process dies; a timed-out wait just waits again.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0);
}

/** True when `name` is armed (for points that do something else than freeze). */
export function failpointArmed(name: string): boolean {
  return armed.has(name);
}

/**
 * Freezes the calling thread here when `name` is armed; a no-op otherwise. `files`
 * (the hot-tier files the step has in hand) are named in the line, for the test.
 */
export const failpoint: (name: string, files?: readonly { path: string }[]) => void = armed.size > 0 ? hit : () => {};
