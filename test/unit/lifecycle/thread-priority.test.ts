// The ingest threads lower only their own priority: the thread that calls
// deprioritizeThisThread runs at INGEST_NICE, the others (the reads worker) keep theirs.
import { readlinkSync } from 'node:fs';
import { getPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { INGEST_NICE } from '../../../agent/thread-priority.ts';

const ownTid = (): number => Number(readlinkSync('/proc/thread-self').split('/').pop());

describe('thread priority', () => {
  it('lowers the calling thread only', async () => {
    const before = getPriority(ownTid());
    const moduleUrl = new URL('../../../agent/thread-priority.ts', import.meta.url).href;
    const worker = new Worker(
      `import { parentPort } from 'node:worker_threads';
       import { readlinkSync } from 'node:fs';
       import { getPriority } from 'node:os';
       const { deprioritizeThisThread } = await import(${JSON.stringify(moduleUrl)});
       const set = deprioritizeThisThread();
       const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
       parentPort.postMessage({ set, tid, now: getPriority(tid) });`,
      { eval: true, type: 'module' } as never,
    );
    const answer = await new Promise<{ set: number | null; tid: number; now: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(answer.set).toBe(Math.max(INGEST_NICE, before));
    expect(answer.now).toBe(Math.max(INGEST_NICE, before));
    expect(answer.tid).not.toBe(ownTid());
    expect(getPriority(ownTid())).toBe(before); // this thread (like the reads worker) is untouched
  });
});
