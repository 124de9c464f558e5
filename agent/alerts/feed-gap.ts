/**
 * Feed-gap detection: per stream, learn how often rows normally arrive and raise an
 * alert when a stream stays silent much longer than that.
 *
 * Invariants:
 * - Cadence = the median of the last `WINDOW` inter-arrival samples (robust: one long
 *   outage or a burst does not move it). Arrivals come in batches (the landing writer
 *   is drained every check, ingest-tally.ts): n arrivals whose last one came `span` ms
 *   after the previous batch's last one make one sample of span / n.
 * - A stream may alert only once it has `min_samples` samples. It alerts when
 *   now − last arrival > threshold = clamp(k × cadence, floor, ceiling), and clears on
 *   its next arrival. The gap itself is never a sample (an outage must not teach the
 *   detector that outages are normal).
 * - check() is O(streams) comparisons: each stream's threshold is recomputed when it
 *   gets a sample, not at every check.
 * - Time comes from the injected clock (`now`), so tests control it; nothing here
 *   does I/O or holds timers.
 * - Learned cadences can be carried over a restart (`cadences()` / `restore()`,
 *   cadence-file.ts). A restored stream counts its silence from the restore, not from
 *   its last arrival before it: the agent's own downtime is not the feed's gap, but a
 *   feed that stays silent after the restart alerts k × cadence later.
 */

export interface FeedGapSettings {
  k: number;
  floorSeconds: number;
  ceilingSeconds: number;
  minSamples: number;
}

export interface FeedGapAlert {
  /** `feed_gap:<dataset>:<stream id>`, stable for the life of the gap. */
  id: string;
  kind: 'feed_gap';
  dataset: string;
  /** Stream id ('' when the dataset is one stream) and key columns. */
  stream: string;
  streamKey: Record<string, string>;
  lastArrivalMs: number;
  openedAtMs: number;
  thresholdSeconds: number;
  cadenceSeconds: number;
  /** Set when the alert clears: how long the stream was silent. */
  clearedAtMs?: number;
  silentSeconds?: number;
}

/** What a restart carries over of a stream (cadence-file.ts). */
export interface CadenceRecord {
  dataset: string;
  id: string;
  key: Record<string, string>;
  lastArrivalMs: number;
  /** Recent inter-arrival samples (ms), a ring of WINDOW. */
  samples: number[];
  sampleCount: number;
}

export interface StreamState extends CadenceRecord {
  /** clamp(k × median, floor, ceiling) in ms, recomputed on each new sample; null before min_samples. */
  limitMs: number | null;
  alert: FeedGapAlert | null;
}

const WINDOW = 32;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export class FeedGapDetector {
  private readonly streams = new Map<string, StreamState>();
  private readonly settings: FeedGapSettings;
  private readonly now: () => number;

  constructor(settings: FeedGapSettings, now: () => number = Date.now) {
    this.settings = settings;
    this.now = now;
  }

  /**
   * `count` rows of a stream arrived, the last at `lastMs`. Returns the stream's alert
   * if this arrival cleared one.
   */
  arrived(dataset: string, id: string, key: Record<string, string>, lastMs: number, count = 1): FeedGapAlert | null {
    const streamId = `${dataset}:${id}`;
    let state = this.streams.get(streamId);
    if (!state) {
      state = { dataset, id, key, lastArrivalMs: lastMs, samples: [], sampleCount: 0, limitMs: null, alert: null };
      this.streams.set(streamId, state);
      // Several rows in the first batch: their spacing is unknown, so no sample yet.
      return null;
    }
    const span = lastMs - state.lastArrivalMs;
    state.lastArrivalMs = Math.max(state.lastArrivalMs, lastMs);
    const cleared = state.alert;
    if (cleared) {
      state.alert = null;
      cleared.clearedAtMs = this.now();
      cleared.silentSeconds = span / 1000;
      return cleared;
    }
    if (span >= 0 && count > 0) {
      state.samples[state.sampleCount % WINDOW] = span / count;
      state.sampleCount++;
      state.limitMs = this.thresholdMs(state);
    }
    return null;
  }

  /** Opens alerts for streams silent past their threshold; returns the ones opened now. */
  check(): FeedGapAlert[] {
    const now = this.now();
    const opened: FeedGapAlert[] = [];
    for (const state of this.streams.values()) {
      const threshold = state.limitMs;
      if (state.alert || threshold === null || now - state.lastArrivalMs <= threshold) continue;
      const alert: FeedGapAlert = {
        id: `feed_gap:${state.dataset}:${state.id}`,
        kind: 'feed_gap',
        dataset: state.dataset,
        stream: state.id,
        streamKey: state.key,
        lastArrivalMs: state.lastArrivalMs,
        openedAtMs: now,
        thresholdSeconds: threshold / 1000,
        cadenceSeconds: median(state.samples) / 1000,
      };
      state.alert = alert;
      opened.push(alert);
    }
    return opened;
  }

  /** clamp(k × median cadence, floor, ceiling) in ms, or null while the stream has too few samples. */
  thresholdMs(state: StreamState): number | null {
    const { k, floorSeconds, ceilingSeconds, minSamples } = this.settings;
    if (state.sampleCount < minSamples) return null;
    return Math.min(ceilingSeconds * 1000, Math.max(floorSeconds * 1000, k * median(state.samples)));
  }

  /** Every stream's learned cadence, for the next start. */
  cadences(): CadenceRecord[] {
    return [...this.streams.values()].map((s) => ({ dataset: s.dataset, id: s.id, key: s.key, lastArrivalMs: s.lastArrivalMs, samples: [...s.samples], sampleCount: s.sampleCount }));
  }

  /**
   * Takes cadences saved before a restart, for streams not seen yet; each counts its
   * silence from now (see the header). Returns how many were taken.
   */
  restore(records: readonly CadenceRecord[]): number {
    const now = this.now();
    let taken = 0;
    for (const record of records) {
      const streamId = `${record.dataset}:${record.id}`;
      if (this.streams.has(streamId)) continue;
      const samples = record.samples.slice(0, WINDOW);
      const state: StreamState = {
        dataset: record.dataset,
        id: record.id,
        key: record.key,
        lastArrivalMs: Math.max(record.lastArrivalMs, now),
        samples,
        sampleCount: Math.min(record.sampleCount, samples.length === WINDOW ? record.sampleCount : samples.length),
        limitMs: null,
        alert: null,
      };
      state.limitMs = samples.length > 0 ? this.thresholdMs(state) : null;
      this.streams.set(streamId, state);
      taken++;
    }
    return taken;
  }

  openAlerts(): FeedGapAlert[] {
    return [...this.streams.values()].flatMap((s) => (s.alert ? [s.alert] : []));
  }

  /** Every watched stream, in the order first seen (stable: the freshness series take the first N). */
  watched(): IterableIterator<StreamState> {
    return this.streams.values();
  }

  get size(): number {
    return this.streams.size;
  }
}
