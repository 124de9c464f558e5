/**
 * Purge: the physical delete of sealed rows (id ≤ the dataset's `sealed_through`
 * watermark, see landing/schema.ts), deferred out of the seal's registering
 * transaction, where it cost as much as reading the rows.
 *
 * Invariants:
 * - Correctness never depends on a purge: rows at or below the watermark are not
 *   landed for any reader, whether or not still in the table. A purge lost to a crash
 *   is redone by the next purge or by start-up recovery.
 * - Chunked (short write transactions), so the ingest writer and the seal's commits
 *   wait at most one chunk for the write lock; synchronous=NORMAL, because a purge
 *   that is lost on power failure changes nothing readers can see.
 * - Background purges run on one shared worker thread (the seal runs on one core, the
 *   purge on the other); `awaitPurges` blocks until every requested purge is done.
 */
import type Database from 'better-sqlite3';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { landedTable, sealedThrough } from '../landing/schema.ts';

/** ~10 ms of deleting: short enough not to stall the other writers, long enough to amortize a commit. */
const PURGE_CHUNK_ROWS = 32_768;

/** Deletes the dataset's sealed rows in chunked transactions; returns how many. */
export function purgeSealed(db: Database.Database, dataset: string): number {
  const table = landedTable(dataset);
  const lowest = db.prepare(`SELECT min(id) FROM "${table}"`).pluck();
  const remove = db.prepare(`DELETE FROM "${table}" WHERE id <= ?`);
  let purged = 0;
  for (;;) {
    // Read inside the transaction: the watermark only goes up, so a stale one is merely conservative.
    const removed = db.transaction(() => {
      const low = lowest.get() as number | null;
      const through = sealedThrough(db, dataset);
      if (low === null || low > through) return 0;
      return remove.run(Math.min(through, low + PURGE_CHUNK_ROWS - 1)).changes;
    }).immediate();
    if (removed === 0) return purged;
    purged += removed;
  }
}

export interface PurgeRequest {
  dbPath: string;
  dataset: string;
}

interface PurgeThread {
  worker: Worker;
  /** [0]: purges finished (ok or not), counted by the worker. */
  finished: Int32Array;
  requested: number;
  /** Errors, read synchronously: the seal thread may never return to its event loop. */
  errors: MessagePort;
}

let thread: PurgeThread | null = null;

function startThread(): PurgeThread {
  const finished = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./purge-worker.ts', import.meta.url), { workerData: { finished, errors: port2 }, transferList: [port2] });
  const started: PurgeThread = { worker, finished, requested: 0, errors: port1 };
  worker.on('exit', () => {
    if (thread === started) thread = null;
  });
  worker.unref(); // never keeps a process alive: an unfinished purge is redone later
  port1.unref();
  return started;
}

/** Queues a purge of `dataset` on the background thread; returns at once. */
export function requestPurge(request: PurgeRequest): void {
  thread ??= startThread();
  thread.requested++;
  thread.worker.postMessage(request);
}

/**
 * Blocks this thread until every requested purge has finished, or `timeoutMs` passed.
 * Returns whether they all did and the purge errors seen (purges are retried, never lost).
 */
export function awaitPurges(timeoutMs = 60_000): { done: boolean; errors: string[] } {
  const current = thread;
  if (current === null) return { done: true, errors: [] };
  const deadline = performance.now() + timeoutMs;
  let done = false;
  for (;;) {
    const seen = Atomics.load(current.finished, 0);
    if (seen >= current.requested) {
      done = true;
      break;
    }
    const left = deadline - performance.now();
    if (left <= 0 || thread !== current) break;
    Atomics.wait(current.finished, 0, seen, Math.min(left, 100));
  }
  const errors: string[] = [];
  for (let m = receiveMessageOnPort(current.errors); m; m = receiveMessageOnPort(current.errors)) errors.push(String(m.message));
  return { done, errors };
}
