/**
 * The streams of one dataset and how they are found (agent/latest).
 *
 * Invariants:
 * - A stream is identified by its stream-key values as strings, in stream_key order
 *   (a null key value counts as the empty string). Its id is '' for a dataset without a
 *   stream key, the value itself for a one-column key, and the JSON array of the values
 *   otherwise, so ids never collide.
 * - `tree` finds a stream from a row without allocating: nested maps, one level per key
 *   column, the last level holding the stream; it always holds exactly `streams`.
 * - `byValue[k]` maps each value of key column k to the streams having it: a filter on
 *   any subset of the key walks only the smallest matching set, never all streams; a
 *   filter naming the whole key is one map lookup.
 * - Streams are also linked into the cache-wide recency list (`lruPrev`/`lruNext`),
 *   which the cache owns.
 */
import type { Dataset, RowValues } from '../../config/dataset.ts';
import { InvalidStreamFilterError } from './errors.ts';
import { StreamWindow } from './stream-window.ts';

/** Stream object, map entry, recency links, window object (rough V8 sizes). */
const STREAM_FIXED_BYTES = 480;
/** Per column of the latest row held: the slot plus a share of a string value. */
const ROW_SLOT_BYTES = 24;
/** Per key value: record and array slots, index-set and lookup-tree entries, the string header. */
const KEY_VALUE_BYTES = 128;

export interface Stream {
  readonly id: string;
  readonly index: DatasetStreams;
  /** Stream-key column name → value. */
  readonly key: Record<string, string>;
  readonly keyValues: readonly string[];
  latestUs: number;
  latestRow: RowValues;
  /** `latestUs` as ISO text, or null until asked for. */
  latestIso: string | null;
  readonly window: StreamWindow;
  /** Estimated bytes of everything but the window (objects, key, index entries, latest row). */
  readonly fixedBytes: number;
  /** Bytes last accounted to the cache's total for this stream (fixed + window). */
  bytes: number;
  lruPrev: Stream | null;
  lruNext: Stream | null;
}

export class DatasetStreams {
  readonly dataset: Dataset;
  readonly keyNames: readonly string[];
  /** Columns stored in windows and returned as values: all but time and the stream key. */
  readonly valueColumns: readonly number[];
  readonly streams = new Map<string, Stream>();
  private readonly byValue: Map<string, Set<Stream>>[];
  private readonly tree = new Map<string, unknown>();

  constructor(dataset: Dataset) {
    this.dataset = dataset;
    this.keyNames = dataset.streamKey.map((i) => dataset.columns[i]!.name);
    const key = new Set(dataset.streamKey);
    this.valueColumns = dataset.columns.map((_, i) => i).filter((i) => i !== 0 && !key.has(i));
    this.byValue = dataset.streamKey.map(() => new Map());
  }

  /** The stream a row belongs to, if known (allocates nothing for string key values). */
  find(row: RowValues): Stream | undefined {
    const key = this.dataset.streamKey;
    if (key.length === 0) return this.streams.get('');
    let node = this.tree;
    for (let k = 0; k < key.length - 1; k++) {
      const next = node.get(keyString(row[key[k]!])) as Map<string, unknown> | undefined;
      if (!next) return undefined;
      node = next;
    }
    return node.get(keyString(row[key[key.length - 1]!])) as Stream | undefined;
  }

  /** The stream named by a record; throws when it does not name exactly the key columns. */
  findByKey(stream: Record<string, string>): Stream | undefined {
    for (const name in stream) if (!this.keyNames.includes(name)) this.invalid(`"${name}" is not a stream key column`);
    let node: Map<string, unknown> | undefined = this.tree;
    if (this.keyNames.length === 0) return this.streams.get('');
    let found: unknown;
    for (const name of this.keyNames) {
      const value = stream[name];
      if (value === undefined) this.invalid(`the stream must name every stream key column; "${name}" is missing`);
      found = node?.get(value);
      node = found instanceof Map ? found : undefined;
    }
    return found as Stream | undefined;
  }

  /** A new stream for this row's key (the caller checked `find` first). */
  create(row: RowValues, window: StreamWindow): Stream {
    const keyValues = this.dataset.streamKey.map((i) => keyString(row[i]));
    const id = keyValues.length === 0 ? '' : keyValues.length === 1 ? keyValues[0]! : JSON.stringify(keyValues);
    return this.add(id, keyValues, row, window);
  }

  private add(id: string, keyValues: string[], row: RowValues, window: StreamWindow): Stream {
    const key: Record<string, string> = {};
    this.keyNames.forEach((name, k) => (key[name] = keyValues[k]!));
    Object.freeze(key); // handed out by latest(): callers must not change the index
    const fixedBytes = STREAM_FIXED_BYTES + ROW_SLOT_BYTES * row.length + 2 * id.length + keyValues.reduce((sum, v) => sum + KEY_VALUE_BYTES + v.length, 0);
    const stream: Stream = {
      id,
      index: this,
      key,
      keyValues,
      latestUs: Number.NEGATIVE_INFINITY,
      latestRow: row,
      latestIso: null,
      window,
      fixedBytes,
      bytes: 0,
      lruPrev: null,
      lruNext: null,
    };
    this.streams.set(id, stream);
    if (keyValues.length > 0) {
      let node = this.tree;
      for (let k = 0; k < keyValues.length - 1; k++) {
        let next = node.get(keyValues[k]!) as Map<string, unknown> | undefined;
        if (!next) node.set(keyValues[k]!, (next = new Map()));
        node = next;
      }
      node.set(keyValues[keyValues.length - 1]!, stream);
    }
    keyValues.forEach((value, k) => {
      const byValue = this.byValue[k]!;
      let set = byValue.get(value);
      if (!set) byValue.set(value, (set = new Set()));
      set.add(stream);
    });
    return stream;
  }

  remove(stream: Stream): void {
    this.streams.delete(stream.id);
    this.prune(this.tree, stream.keyValues, 0);
    stream.keyValues.forEach((value, k) => {
      const byValue = this.byValue[k]!;
      const set = byValue.get(value);
      if (!set) return;
      set.delete(stream);
      if (set.size === 0) byValue.delete(value);
    });
  }

  /** Streams whose key matches every (column, value) of the filter exactly. */
  match(filter: Record<string, string> | undefined): Iterable<Stream> {
    if (!filter) return this.streams.values();
    const conditions: [k: number, value: string][] = [];
    for (const name in filter) {
      const k = this.keyNames.indexOf(name);
      if (k < 0) this.invalid(`"${name}" is not a stream key column`);
      conditions.push([k, filter[name]!]);
    }
    if (conditions.length === 0) return this.streams.values();
    if (conditions.length === this.keyNames.length) {
      const stream = this.findByKey(filter);
      return stream ? [stream] : [];
    }
    let smallest: Set<Stream> | undefined;
    for (const [k, value] of conditions) {
      const set = this.byValue[k]!.get(value);
      if (!set) return [];
      if (!smallest || set.size < smallest.size) smallest = set;
    }
    if (conditions.length === 1) return smallest!;
    const out: Stream[] = [];
    for (const stream of smallest!) {
      if (conditions.every(([k, value]) => stream.keyValues[k] === value)) out.push(stream);
    }
    return out;
  }

  /** Deletes the stream's leaf and the maps it leaves empty. */
  private prune(node: Map<string, unknown>, values: readonly string[], k: number): void {
    if (values.length === 0) return;
    if (k === values.length - 1) {
      node.delete(values[k]!);
      return;
    }
    const next = node.get(values[k]!) as Map<string, unknown> | undefined;
    if (!next) return;
    this.prune(next, values, k + 1);
    if (next.size === 0) node.delete(values[k]!);
  }

  private invalid(detail: string): never {
    throw new InvalidStreamFilterError(this.dataset.name, detail, this.keyNames);
  }
}

function keyString(value: RowValues[number] | undefined): string {
  return typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
}
