/**
 * What one commit landed, summed on the writer thread so the main thread does a few
 * counter adds per batch and no per-row work (metrics), and which streams got rows
 * (freshness and feed-gap alerts), kept on the writer thread and drained on demand.
 *
 * Invariants:
 * - A tally covers one committed transaction only: it is built after the commit
 *   succeeded, from the items and their results, so a rolled-back attempt counts nothing.
 * - Rows of an item count against the item's source and the dataset of its first row
 *   (every source maps one unit to rows of one dataset).
 * - Stream activity: a stream is identified as in the latest-value cache (stream-key
 *   values as strings: '' without a key, the value for one key column, the JSON array
 *   otherwise). At most `maxStreams` streams are watched; rows of further streams only
 *   raise `untracked`. Only items whose rows were all new count as arrivals (as for
 *   the 'landed' event): a redelivery is not a sign of life.
 */
import type { Dataset, RowValues } from '../../config/dataset.ts';
import type { LandingItem, LandingItemResult } from './types.ts';

export interface IngestTally {
  /** [source, dataset, rows inserted, duplicates dropped] per pair seen in the commit. */
  rows: [string, string, number, number][];
  /** [dataset ('' when unknown), reason code, entries] */
  quarantined: [string, string, number][];
}

/** Quarantine reason of rows the landing log itself refused (writer-worker commitIsolated). */
export const LANDING_REJECTED = 'landing_rejected';

export function sourceOf(item: LandingItem): string {
  return item.source ?? item.sourceKey?.source ?? item.quarantine[0]?.source ?? 'unknown';
}

export function tallyCommit(items: readonly LandingItem[], results: readonly LandingItemResult[]): IngestTally {
  // Nested maps (source → dataset → entry): no key string built per item.
  const rows = new Map<string, Map<string, [string, string, number, number]>>();
  const out: [string, string, number, number][] = [];
  const quarantined = new Map<string, [string, string, number]>();
  const addQuarantine = (dataset: string, reason: string, count: number): void => {
    const key = `${dataset}\u0000${reason}`;
    const entry = quarantined.get(key);
    if (entry) entry[2] += count;
    else quarantined.set(key, [dataset, reason, count]);
  };
  items.forEach((item, index) => {
    const result = results[index]!;
    const dataset = item.rows[0]?.dataset;
    if (dataset !== undefined && (result.inserted > 0 || result.duplicates > 0)) {
      const source = sourceOf(item);
      let bySource = rows.get(source);
      if (!bySource) rows.set(source, (bySource = new Map()));
      const entry = bySource.get(dataset);
      if (entry) {
        entry[2] += result.inserted;
        entry[3] += result.duplicates;
      } else {
        const created: [string, string, number, number] = [source, dataset, result.inserted, result.duplicates];
        bySource.set(dataset, created);
        out.push(created);
      }
    }
    for (const entry of item.quarantine) addQuarantine(entry.dataset ?? '', entry.reasonCode, 1);
    const rejected = result.quarantined - item.quarantine.length;
    if (rejected > 0) addQuarantine(dataset ?? '', LANDING_REJECTED, rejected);
  });
  return { rows: out, quarantined: [...quarantined.values()] };
}

/** [dataset, stream id, stream key (name → value), last arrival ms, arrivals since the last drain] */
export type StreamArrival = [string, string, Record<string, string>, number, number];

export interface ActivityReport {
  nowMs: number;
  streams: StreamArrival[];
  /** Rows of streams beyond `maxStreams`, since start. */
  untrackedRows: number;
}

interface StreamState {
  dataset: string;
  id: string;
  key: Record<string, string>;
  lastMs: number;
  pending: number;
}

export function streamIdOf(dataset: Dataset, values: RowValues): string {
  const key = dataset.streamKey;
  if (key.length === 0) return '';
  if (key.length === 1) return String(values[key[0]!] ?? '');
  return JSON.stringify(key.map((i) => String(values[i] ?? '')));
}

/** Per dataset: nested maps, one level per stream-key column, the last holding the stream (no key built per row). */
type StreamTree = Map<string, StreamTree | StreamState>;

export class StreamActivity {
  private readonly streams = new Map<string, StreamTree | StreamState | null>();
  private readonly datasets: Map<string, Dataset>;
  private readonly maxStreams: number;
  private count = 0;
  private untrackedRows = 0;
  private dirty: StreamState[] = [];

  constructor(datasets: Map<string, Dataset>, maxStreams: number) {
    this.datasets = datasets;
    this.maxStreams = maxStreams;
    for (const [name, dataset] of datasets) this.streams.set(name, dataset.streamKey.length === 0 ? null : new Map());
  }

  /** Records the rows of a committed batch as arrivals at `nowMs`. */
  record(items: readonly LandingItem[], results: readonly LandingItemResult[], nowMs: number): void {
    items.forEach((item, index) => {
      if (results[index]!.inserted !== item.rows.length) return;
      for (const row of item.rows) this.touch(row.dataset, row.values, nowMs);
    });
  }

  private create(dataset: Dataset, values: RowValues, nowMs: number): StreamState {
    const keyColumns = dataset.streamKey;
    const key: Record<string, string> = {};
    for (const i of keyColumns) key[dataset.columns[i]!.name] = String(values[i] ?? '');
    const state: StreamState = { dataset: dataset.name, id: streamIdOf(dataset, values), key, lastMs: nowMs, pending: 0 };
    this.count++;
    if (keyColumns.length === 0) {
      this.streams.set(dataset.name, state);
      return state;
    }
    let tree = this.streams.get(dataset.name) as StreamTree;
    for (let level = 0; level < keyColumns.length - 1; level++) {
      const value = String(values[keyColumns[level]!] ?? '');
      let next = tree.get(value) as StreamTree | undefined;
      if (!next) tree.set(value, (next = new Map()));
      tree = next;
    }
    tree.set(String(values[keyColumns[keyColumns.length - 1]!] ?? ''), state);
    return state;
  }

  /** Streams that got rows since the last drain. */
  drain(nowMs: number): ActivityReport {
    const streams: StreamArrival[] = this.dirty.map((s) => [s.dataset, s.id, s.key, s.lastMs, s.pending]);
    for (const state of this.dirty) state.pending = 0;
    this.dirty = [];
    return { nowMs, streams, untrackedRows: this.untrackedRows };
  }

  private touch(datasetName: string, values: RowValues, nowMs: number): void {
    const dataset = this.datasets.get(datasetName);
    if (!dataset) return;
    const keyColumns = dataset.streamKey;
    const root = this.streams.get(datasetName);
    let state: StreamState | undefined;
    if (keyColumns.length === 0) state = (root as StreamState | null) ?? undefined;
    else {
      let node: StreamTree | StreamState | undefined = root as StreamTree;
      for (let level = 0; level < keyColumns.length && node; level++) node = (node as StreamTree).get(String(values[keyColumns[level]!] ?? ''));
      state = node as StreamState | undefined;
    }
    if (!state) {
      if (this.count >= this.maxStreams) {
        this.untrackedRows++;
        return;
      }
      state = this.create(dataset, values, nowMs);
    }
    if (state.pending === 0) this.dirty.push(state);
    state.pending++;
    state.lastMs = nowMs;
  }
}
