/**
 * Where to cut the windows when the cache is over its memory bound (agent/latest).
 *
 * Invariant: the floor is one event time for all streams ("oldest first, across
 * streams"): the smallest time t such that dropping every window row older than t frees
 * at least `needBytes` by the windows' own per-row estimates, found by bisection over
 * [oldest row, newest row + 1] — O(streams × log rows) per step, about 50 steps.
 */
import type { Stream } from './stream-index.ts';

/** The floor event time (µs), or null when no window holds a row. */
export function planMemoryFloor(streams: readonly Stream[], needBytes: number): number | null {
  const held: { stream: Stream; rowBytes: number }[] = [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const stream of streams) {
    const window = stream.window;
    if (window.length === 0) continue;
    held.push({ stream, rowBytes: window.rowBytes() });
    lo = Math.min(lo, window.oldestUs);
    hi = Math.max(hi, window.newestUs + 1);
  }
  if (held.length === 0) return null;
  const freed = (t: number): number => {
    let bytes = 0;
    for (const { stream, rowBytes } of held) bytes += stream.window.countBefore(t) * rowBytes;
    return bytes;
  };
  if (freed(hi) <= needBytes) return hi; // everything goes
  // Invariant: freed(lo) < needBytes ≤ freed(hi) (freed(oldest) is 0).
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (freed(mid) >= needBytes) hi = mid;
    else lo = mid;
  }
  return hi;
}
