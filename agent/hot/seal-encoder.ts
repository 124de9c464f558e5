/**
 * The encoder thread: runs `encodeStep` (seal-encode.ts) for the seal thread, so a
 * seal encodes step k while it reads step k+1 from SQLite (seal.ts). At most one per
 * seal thread, started when a seal will take more than one step (its start-up then
 * overlaps the first read) and ended when that seal returns: WASM memory never
 * shrinks, and a daemon in steady state seals one step at a time, on its own thread.
 *
 * Invariants:
 * - Pure computation: the thread never touches the database or the state directory;
 *   publishing and registering the files stay on the seal thread, so the seal's
 *   crash-safety argument is unchanged by where the bytes were computed.
 * - Nothing is copied that can be moved: a job's column buffers are transferred
 *   (the batch is unusable by the sender afterwards) and so are the encoded bytes.
 *   Only string dictionaries (the distinct values) are structured-cloned.
 * - `awaitEncode` blocks synchronously (the seal thread may never return to its
 *   event loop): results come on a MessagePort read with `receiveMessageOnPort`,
 *   woken by a shared counter. An answer to any other job (one whose seal step
 *   failed before collecting it) is dropped. A dead thread is noticed and replaced
 *   on the next submit; the waiting step fails and its rows stay landed.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort, type Transferable } from 'node:worker_threads';
import type { Dataset } from '../../config/dataset.ts';
import type { ColumnBatch } from './columns.ts';
import type { EncodedPart, EncodeStepOptions } from './seal-encode.ts';

export interface EncodeJob {
  id: number;
  dataset: Dataset;
  batch: ColumnBatch;
  options: EncodeStepOptions;
}

export type EncodeAnswer = { id: number; ok: true; parts: EncodedPart[]; encodeMs: number } | { id: number; ok: false; message: string };

interface EncoderThread {
  worker: Worker;
  /** [0]: answers posted, counted by the worker after each post. */
  answered: Int32Array;
  answers: MessagePort;
}

let thread: EncoderThread | null = null;
let nextJob = 1;

function startThread(): EncoderThread {
  const answered = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./seal-encoder-worker.ts', import.meta.url), { workerData: { answered, answers: port2 }, transferList: [port2] });
  const started: EncoderThread = { worker, answered, answers: port1 };
  worker.on('exit', () => {
    if (thread === started) thread = null;
  });
  worker.unref(); // never keeps a process alive: it only ever works for a blocked seal
  port1.unref();
  return started;
}

/** The distinct buffers under a batch's typed arrays (a buffer listed twice is a DataCloneError). */
export function batchBuffers(batch: ColumnBatch): Transferable[] {
  const buffers = new Set<ArrayBuffer>();
  for (const column of batch.columns) {
    buffers.add((column.kind === 'dict' ? column.codes : column.values).buffer as ArrayBuffer);
    if (column.valid) buffers.add(column.valid.buffer as ArrayBuffer);
  }
  return [...buffers];
}

/** Starts the encoder thread if it is not running, so it boots while the caller reads its first step. */
export function startEncoder(): EncoderThread {
  if (thread !== null && thread.worker.threadId === -1) thread = null; // died; 'exit' not delivered yet
  thread ??= startThread();
  return thread;
}

/** Ends the encoder thread (asynchronously); answers not yet collected are lost with it. */
export function stopEncoder(): void {
  if (thread === null) return;
  void thread.worker.terminate();
  thread = null;
}

/** Queues the encoding of `batch` (whose buffers move to the encoder thread); returns the job id. */
export function submitEncode(dataset: Dataset, batch: ColumnBatch, options: EncodeStepOptions): number {
  const thread = startEncoder();
  const job: EncodeJob = { id: nextJob++, dataset, batch, options };
  thread.worker.postMessage(job, batchBuffers(batch));
  return job.id;
}

/** Blocks until job `id` is encoded; throws its error, or if the encoder thread died. */
export function awaitEncode(id: number): { parts: EncodedPart[]; encodeMs: number } {
  const current = thread;
  if (current === null) throw new Error('seal encoder: no encoder thread (it died)');
  for (;;) {
    const seen = Atomics.load(current.answered, 0);
    for (let m = receiveMessageOnPort(current.answers); m; m = receiveMessageOnPort(current.answers)) {
      const answer = m.message as EncodeAnswer;
      if (answer.id !== id) continue;
      if (!answer.ok) throw new Error(`seal encoder: ${answer.message}`);
      return { parts: answer.parts, encodeMs: answer.encodeMs };
    }
    if (current.worker.threadId === -1) {
      if (thread === current) thread = null;
      throw new Error('seal encoder: the encoder thread died');
    }
    // The timeout only paces the liveness check above; answers wake us at once.
    Atomics.wait(current.answered, 0, seen, 200);
  }
}
