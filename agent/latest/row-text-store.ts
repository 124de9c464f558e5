/**
 * The JSON text of a stream window's printed rows, kept off the JS heap (agent/latest).
 *
 * Why: a window keeps each row's text once printed (stream-window.ts), so 1,200
 * streams asked for their last minute hold over a million row texts. As one JS string
 * each they made the reads worker's heap a million small objects, and its garbage
 * collections (scavenges of a few ms, mark-compacts past 100 ms under load) were the
 * tail of /v1/window. Here the texts are bytes in one arena per window.
 *
 * Format and invariants:
 * - Slot i's text is `arena[offset[i], offset[i] + length[i])`, UTF-8, the row's JSON
 *   array followed by a comma (`[t,v1,v2],`); length −1 = nothing printed for the slot.
 * - The arena is append-only between compactions: `set` writes at `used`. Bytes of
 *   dropped or overwritten slots stay until the arena is full, then the live texts are
 *   copied in slot order into an arena twice their size (so memory is at most about
 *   twice the live text, and `payloadBytes` is the arena's real size).
 * - Rows printed together in slot order are contiguous, so a window is usually one
 *   byte range (`rowsJson` copies it once); otherwise it is gathered slot by slot.
 * - Like any ColumnStore, the owner moves slots (copyWithin/resize) and clears or
 *   releases the ones it drops; a stale duplicate left by a move only costs a copy at
 *   the next compaction.
 */
import type { RowValue } from '../../config/dataset.ts';
import type { ColumnStore } from './column-store.ts';

const MIN_ARENA_BYTES = 256;
/** Most bytes one UTF-16 code unit can take in UTF-8. */
const MAX_UTF8_PER_UNIT = 3;
const COMMA = 0x2c;
const OPEN = 0x5b;
const CLOSE = 0x5d;

export class RowTextStore implements ColumnStore {
  readonly slotBytes = 8;
  private offset: Int32Array;
  private length: Int32Array;
  private arena: Buffer;
  private used = 0;

  constructor(capacity: number) {
    this.offset = new Int32Array(capacity);
    this.length = new Int32Array(capacity).fill(-1);
    this.arena = Buffer.allocUnsafe(MIN_ARENA_BYTES);
  }

  get payloadBytes(): number {
    return this.arena.byteLength;
  }

  has(i: number): boolean {
    return this.length[i]! >= 0;
  }

  /** The text `set` stored for the slot (no brackets, no comma), or null. */
  get(i: number): RowValue {
    const length = this.length[i]!;
    if (length < 0) return null;
    return this.arena.toString('utf8', this.offset[i]! + 1, this.offset[i]! + length - 2);
  }

  json(i: number): string {
    const text = this.get(i);
    return text === null ? 'null' : JSON.stringify(text);
  }

  /** Stores a row's text (`t,v1,v2`, no brackets) for slot `i`. */
  set(i: number, value: RowValue): void {
    if (value === null) {
      this.length[i] = -1;
      return;
    }
    const text = String(value);
    const worst = text.length * MAX_UTF8_PER_UNIT + 3;
    if (this.used + worst > this.arena.byteLength) this.compact(worst);
    const at = this.used;
    this.arena[at] = OPEN;
    const written = this.arena.write(text, at + 1, 'utf8');
    this.arena[at + 1 + written] = CLOSE;
    this.arena[at + 2 + written] = COMMA;
    this.offset[i] = at;
    this.length[i] = written + 3;
    this.used = at + written + 3;
  }

  release(i: number): void {
    this.length[i] = -1;
  }

  clearRange(from: number, to: number): void {
    this.length.fill(-1, from, to);
  }

  copyWithin(target: number, start: number, end: number): void {
    this.offset.copyWithin(target, start, end);
    this.length.copyWithin(target, start, end);
  }

  resize(capacity: number, start: number, end: number): void {
    const offset = new Int32Array(capacity);
    const length = new Int32Array(capacity).fill(-1);
    offset.set(this.offset.subarray(start, end));
    length.set(this.length.subarray(start, end));
    this.offset = offset;
    this.length = length;
    if (this.arena.byteLength > MIN_ARENA_BYTES && this.liveBytes() < this.arena.byteLength / 4) this.compact(0);
  }

  /**
   * The JSON array of the rows in slots [from, to), every one of them printed:
   * `[[t,v],[t,v]]` as bytes of a new buffer (the arena moves on; the caller keeps it).
   */
  rowsJson(from: number, to: number): Buffer {
    if (from >= to) return Buffer.from('[]');
    let bytes = 0;
    let contiguous = true;
    for (let i = from; i < to; i++) {
      bytes += this.length[i]!;
      if (i > from && this.offset[i] !== this.offset[i - 1]! + this.length[i - 1]!) contiguous = false;
    }
    // `[` + the texts with their commas, the last comma replaced by `]`.
    const out = Buffer.allocUnsafe(bytes + 1);
    out[0] = OPEN;
    if (contiguous) this.arena.copy(out, 1, this.offset[from]!, this.offset[from]! + bytes);
    else {
      let at = 1;
      for (let i = from; i < to; i++) at += this.arena.copy(out, at, this.offset[i]!, this.offset[i]! + this.length[i]!);
    }
    out[bytes] = CLOSE;
    return out;
  }

  private liveBytes(): number {
    let live = 0;
    for (let i = 0; i < this.length.length; i++) if (this.length[i]! > 0) live += this.length[i]!;
    return live;
  }

  /** Copies the live texts, in slot order, into a fresh arena with room for `need` more bytes. */
  private compact(need: number): void {
    const live = this.liveBytes();
    const next = Buffer.allocUnsafe(Math.max(MIN_ARENA_BYTES, 2 * (live + need)));
    let at = 0;
    for (let i = 0; i < this.length.length; i++) {
      const length = this.length[i]!;
      if (length < 0) continue;
      this.arena.copy(next, at, this.offset[i]!, this.offset[i]! + length);
      this.offset[i] = at;
      at += length;
    }
    this.arena = next;
    this.used = at;
  }
}
