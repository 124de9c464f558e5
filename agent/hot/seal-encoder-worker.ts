/**
 * The encoder thread (see seal-encoder.ts): encodes one job at a time, answers on
 * the port it was given, then bumps the shared counter the seal thread waits on.
 */
import { parentPort, workerData, type MessagePort, type Transferable } from 'node:worker_threads';
import { encodeStep } from './seal-encode.ts';
import type { EncodeAnswer, EncodeJob } from './seal-encoder.ts';

const { answered, answers } = workerData as { answered: Int32Array; answers: MessagePort };

parentPort!.on('message', (job: EncodeJob) => {
  let answer: EncodeAnswer;
  const transfer: Transferable[] = [];
  try {
    const started = performance.now();
    const parts = encodeStep(job.dataset, job.batch, job.options);
    for (const part of parts) {
      // parquet-wasm hands out a fresh copy of its output; anything else (a view into
      // a larger buffer, e.g. WASM memory) must be cloned, not detached.
      const { bytes } = part;
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) transfer.push(bytes.buffer as ArrayBuffer);
    }
    answer = { id: job.id, ok: true, parts, encodeMs: performance.now() - started };
  } catch (error) {
    answer = { id: job.id, ok: false, message: (error as Error).message };
  }
  answers.postMessage(answer, transfer);
  Atomics.add(answered, 0, 1);
  Atomics.notify(answered, 0);
});
