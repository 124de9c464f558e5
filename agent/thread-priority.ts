/**
 * Thread priorities: on-site reads before ingestion when the CPU is saturated.
 *
 * Linux keeps a nice value per thread, and `setpriority(PRIO_PROCESS, tid)` changes just
 * that thread (os.setPriority with the thread's id from /proc/thread-self). Raising a
 * thread's nice value needs no privilege (lowering it would, which the systemd unit's
 * empty capability set forbids), so the ingest threads (main, landing writer, seal and
 * compaction workers) lower their own priority by INGEST_NICE and the reads worker
 * keeps the default: a latest-value request is served at once even when ingestion uses
 * every core, while ingestion loses only the few percent of CPU the reads take (it
 * buffers: sources wait on their acknowledgements, nothing is dropped).
 *
 * The main thread lowers itself once the daemon has started, after the reads worker was
 * spawned (a new thread inherits its creator's nice value): a reads worker restarted
 * after a crash runs at the ingest priority.
 *
 * Best effort: on other systems, or if the call fails, nothing changes.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** How much lower the ingest threads run than the reads worker (nice units). */
export const INGEST_NICE = 5;

/** This thread's kernel id (Linux), or null elsewhere. */
function threadId(): number | null {
  try {
    const link = readlinkSync('/proc/thread-self'); // "<pid>/task/<tid>"
    const tid = Number(link.split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Lowers the calling thread's priority to at least INGEST_NICE; returns the nice value set, or null. */
export function deprioritizeThisThread(nice = INGEST_NICE): number | null {
  const tid = threadId();
  if (tid === null) return null;
  try {
    const current = getPriority(tid);
    if (current >= nice) return current;
    setPriority(tid, nice);
    return getPriority(tid);
  } catch {
    return null;
  }
}
