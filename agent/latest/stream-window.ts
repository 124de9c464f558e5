/**
 * One stream's recent rows in memory, as columns (agent/latest).
 *
 * Invariants:
 * - Live rows are the slots [start, end) of every buffer, ordered by event time
 *   (ascending; rows with equal times keep their arrival order).
 * - An out-of-order row is put in place: before `start` when it is the oldest and there
 *   is room, otherwise the newer rows shift right by one (late rows are usually near the
 *   end, so the shift is short).
 * - Buffers grow by 1.5× and shrink when a quarter full; `bytes()` counts the allocated
 *   capacity, not only the live rows, so the cache's memory bound is about real memory.
 * - Only the value columns are stored: the time column separately, the stream-key
 *   columns not at all (they are the same for every row of the stream).
 * - The JSON text of a row, once `jsonRowsSince` printed it, is kept beside the row (a
 *   byte arena off the JS heap, row-text-store.ts, that moves with the slots and is
 *   cleared when its slot is rewritten or released), so a window asked for again only
 *   prints its new rows: the printing of numbers was ~80 % of a 1,000-row window's
 *   cost. `bytes()` counts the arena.
 */
import type { Dataset, RowValue, RowValues } from '../../config/dataset.ts';
import { createColumnStore, type ColumnStore } from './column-store.ts';
import { jsonNumber } from './json-number.ts';
import { RowTextStore } from './row-text-store.ts';

const MIN_CAPACITY = 8;
const TIME_SLOT_BYTES = 8;
/** Fixed cost of a window (objects, typed-array headers), per value column and once. */
const WINDOW_FIXED_BYTES = 400;
const COLUMN_FIXED_BYTES = 160;

export class StreamWindow {
  /** Indexes (into the dataset's row) of the stored value columns, in order. */
  readonly columnIndexes: readonly number[];
  private time: Float64Array;
  /** The value columns. */
  private readonly stores: ColumnStore[];
  /** Everything that moves with the slots: the value columns and, once created, `rowJson`. */
  private readonly held: ColumnStore[];
  /** JSON text of each row printed so far (null: not printed). */
  private rowJson: RowTextStore | null = null;
  private start = 0;
  private end = 0;

  constructor(dataset: Dataset, columnIndexes: readonly number[]) {
    this.columnIndexes = columnIndexes;
    this.time = new Float64Array(0);
    this.stores = columnIndexes.map((index) => createColumnStore(dataset.columns[index]!.type, 0));
    this.held = [...this.stores];
  }

  get length(): number {
    return this.end - this.start;
  }

  /** Event time of the oldest live row, or +∞ when empty. */
  get oldestUs(): number {
    return this.end > this.start ? this.time[this.start]! : Number.POSITIVE_INFINITY;
  }

  get newestUs(): number {
    return this.end > this.start ? this.time[this.end - 1]! : Number.NEGATIVE_INFINITY;
  }

  bytes(): number {
    let perSlot = TIME_SLOT_BYTES;
    let payload = WINDOW_FIXED_BYTES;
    for (const store of this.held) {
      perSlot += store.slotBytes;
      payload += store.payloadBytes + COLUMN_FIXED_BYTES;
    }
    return this.time.length * perSlot + payload;
  }

  /** Average bytes a live row accounts for (slots plus string payloads), for eviction planning. */
  rowBytes(): number {
    let perRow = TIME_SLOT_BYTES;
    let payload = 0;
    for (const store of this.held) {
      perRow += store.slotBytes;
      payload += store.payloadBytes;
    }
    return perRow + (this.length > 0 ? payload / this.length : 0);
  }

  insert(timeUs: number, row: RowValues): void {
    if (this.end > this.start && timeUs < this.time[this.end - 1]!) {
      const at = this.upperBound(timeUs);
      if (at === this.start && this.start > 0) {
        this.start--;
        this.write(this.start, timeUs, row);
        return;
      }
      this.ensureRoom();
      const p = this.upperBound(timeUs); // the buffers may have moved
      this.time.copyWithin(p + 1, p, this.end);
      for (const store of this.held) store.copyWithin(p + 1, p, this.end);
      this.end++;
      this.write(p, timeUs, row);
      return;
    }
    this.ensureRoom();
    this.write(this.end, timeUs, row);
    this.end++;
  }

  /** Drops live rows older than `cutoffUs`; returns how many. */
  evictBefore(cutoffUs: number): number {
    if (this.end === this.start || this.time[this.start]! >= cutoffUs) return 0;
    const to = this.lowerBound(cutoffUs);
    for (const store of this.held) for (let i = this.start; i < to; i++) store.release(i);
    const evicted = to - this.start;
    this.start = to;
    if (this.start === this.end) this.start = this.end = 0;
    const capacity = this.time.length;
    if (capacity > MIN_CAPACITY && this.length < capacity / 4) this.resize(Math.max(MIN_CAPACITY, Math.ceil(this.length * 1.5)));
    return evicted;
  }

  /** Live rows older than `cutoffUs`. */
  countBefore(cutoffUs: number): number {
    return this.lowerBound(cutoffUs) - this.start;
  }

  /** Releases spare capacity beyond a small margin (after a memory-bound eviction). */
  shrinkToFit(): void {
    const fit = Math.max(MIN_CAPACITY, Math.ceil(this.length * 1.125));
    if (this.time.length > fit) this.resize(fit);
  }

  /**
   * Rows with event time ≥ `fromUs`, oldest first, as arrays [timeUs, ...values]; with a
   * `limit`, only the newest `limit` of them (still oldest first).
   */
  rowsSince(fromUs: number, limit?: number): unknown[][] {
    let from = this.lowerBound(fromUs);
    if (limit !== undefined && this.end - from > limit) from = this.end - Math.max(0, limit);
    const rows: unknown[][] = new Array(this.end - from);
    const stores = this.stores;
    for (let i = from; i < this.end; i++) {
      const row: unknown[] = new Array(stores.length + 1);
      row[0] = this.time[i]!;
      for (let c = 0; c < stores.length; c++) row[c + 1] = stores[c]!.get(i);
      rows[i - from] = row;
    }
    return rows;
  }

  /**
   * The same rows as `rowsSince`, as the bytes of that array's JSON text, built from
   * the buffers (no row arrays), each row printed once and then kept off the heap
   * (row-text-store.ts; see the header).
   */
  jsonRowsSince(fromUs: number, limit?: number): Buffer {
    let from = this.lowerBound(fromUs);
    if (limit !== undefined && this.end - from > limit) from = this.end - Math.max(0, limit);
    if (!this.rowJson) {
      this.rowJson = new RowTextStore(this.time.length);
      this.held.push(this.rowJson);
    }
    const memo = this.rowJson;
    for (let i = from; i < this.end; i++) if (!memo.has(i)) memo.set(i, this.printRow(i));
    return memo.rowsJson(from, this.end);
  }

  /**
   * A row's values as JSON, without the brackets: "t,v1,v2". Made by a join so the text
   * is one flat string (a chain of concatenations would be a rope, twice as slow to join).
   */
  private printRow(i: number): string {
    const stores = this.stores;
    const cells: string[] = new Array(stores.length + 1);
    cells[0] = jsonNumber(this.time[i]!);
    for (let c = 0; c < stores.length; c++) cells[c + 1] = stores[c]!.json(i);
    return cells.join(',');
  }

  private write(slot: number, timeUs: number, row: RowValues): void {
    this.time[slot] = timeUs;
    const indexes = this.columnIndexes;
    for (let c = 0; c < indexes.length; c++) this.stores[c]!.set(slot, (row[indexes[c]!] ?? null) as RowValue);
    this.rowJson?.clearRange(slot, slot + 1); // a stale copy left by a move, or nothing
  }

  /** Makes `end < capacity`: compacts to the front when a quarter is free there, else grows. */
  private ensureRoom(): void {
    const capacity = this.time.length;
    if (this.end < capacity) return;
    if (this.start > 0 && this.start >= capacity / 4) {
      const length = this.length;
      this.time.copyWithin(0, this.start, this.end);
      for (const store of this.held) {
        store.copyWithin(0, this.start, this.end);
        store.clearRange(length, this.end);
      }
      this.start = 0;
      this.end = length;
      return;
    }
    this.resize(Math.max(MIN_CAPACITY, Math.ceil(capacity * 1.5)));
  }

  private resize(capacity: number): void {
    const next = new Float64Array(capacity);
    next.set(this.time.subarray(this.start, this.end));
    this.time = next;
    for (const store of this.held) store.resize(capacity, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }

  /** First live slot with time ≥ t. */
  private lowerBound(t: number): number {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.time[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First live slot with time > t. */
  private upperBound(t: number): number {
    let lo = this.start;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.time[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
