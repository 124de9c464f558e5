/**
 * Compact per-stream column buffers for the recent window (agent/latest).
 *
 * Invariants:
 * - A store holds `capacity` slots; the owner (StreamWindow) decides which are live and
 *   moves them with `copyWithin`/`resize`, and calls `release(i)` on a live slot it drops,
 *   so `payloadBytes` is the estimate for exactly the live values (plus dictionaries).
 * - Numbers (int, long, double, timestamp) are a Float64Array with null stored as NaN (a
 *   JSON row cannot carry NaN, so NaN reads back as null). Booleans are an Int8Array
 *   (-1 null). Strings start dictionary-encoded (Int32Array codes, -1 null) and switch
 *   for good to a plain array once the stream's column has more than DICT_LIMIT distinct
 *   values (blob hashes, free text), whose strings are then counted per live slot.
 * - Byte figures are estimates of V8's layout (8 bytes per pointer, ~16 bytes per string
 *   header, one byte per Latin-1 character, ~64 bytes per dictionary entry).
 * - `json(i)` is exactly `JSON.stringify(jsonValue(get(i)))` (agent/api/formats.ts), made
 *   cheaper for the window endpoint: a dictionary string is quoted once, and integers
 *   beyond int32 (µs timestamps) are printed as two int32 halves (json-number.ts).
 */
import type { RowValue, StoredType } from '../../config/dataset.ts';
import { jsonNumber } from './json-number.ts';

export const DICT_LIMIT = 256;
const STRING_HEADER_BYTES = 16;
const DICT_ENTRY_BYTES = 64;

export interface ColumnStore {
  /** Bytes per allocated slot. */
  readonly slotBytes: number;
  /** Bytes held beside the slots (dictionary, string payloads). */
  readonly payloadBytes: number;
  get(i: number): RowValue;
  /** The value at `i` as JSON text. */
  json(i: number): string;
  /** Writes a slot that holds no live value (fresh or already moved away). */
  set(i: number, value: RowValue): void;
  /** Drops the live value at `i` (accounting; frees references). */
  release(i: number): void;
  copyWithin(target: number, start: number, end: number): void;
  /** Marks slots [from, to) as holding nothing (stale copies left behind by a move). */
  clearRange(from: number, to: number): void;
  /** New buffer of `capacity` slots holding old slots [start, end) at [0, end − start). */
  resize(capacity: number, start: number, end: number): void;
}

export function stringBytes(value: string): number {
  return STRING_HEADER_BYTES + value.length;
}

class NumberStore implements ColumnStore {
  readonly slotBytes = 8;
  readonly payloadBytes = 0;
  private data: Float64Array;
  constructor(capacity: number) {
    this.data = new Float64Array(capacity);
  }
  get(i: number): RowValue {
    const v = this.data[i]!;
    return Number.isNaN(v) ? null : v;
  }
  json(i: number): string {
    const v = this.data[i]!;
    return Number.isNaN(v) ? 'null' : jsonNumber(v);
  }
  set(i: number, value: RowValue): void {
    this.data[i] = typeof value === 'number' ? value : NaN;
  }
  release(): void {}
  clearRange(): void {}
  copyWithin(target: number, start: number, end: number): void {
    this.data.copyWithin(target, start, end);
  }
  resize(capacity: number, start: number, end: number): void {
    const next = new Float64Array(capacity);
    next.set(this.data.subarray(start, end));
    this.data = next;
  }
}

class BooleanStore implements ColumnStore {
  readonly slotBytes = 1;
  readonly payloadBytes = 0;
  private data: Int8Array;
  constructor(capacity: number) {
    this.data = new Int8Array(capacity);
  }
  get(i: number): RowValue {
    const v = this.data[i]!;
    return v < 0 ? null : v === 1;
  }
  json(i: number): string {
    const v = this.data[i]!;
    return v < 0 ? 'null' : v === 1 ? 'true' : 'false';
  }
  set(i: number, value: RowValue): void {
    this.data[i] = value === null ? -1 : value ? 1 : 0;
  }
  release(): void {}
  clearRange(): void {}
  copyWithin(target: number, start: number, end: number): void {
    this.data.copyWithin(target, start, end);
  }
  resize(capacity: number, start: number, end: number): void {
    const next = new Int8Array(capacity);
    next.set(this.data.subarray(start, end));
    this.data = next;
  }
}

class StringStore implements ColumnStore {
  slotBytes = 4;
  payloadBytes = 0;
  private codes: Int32Array | null;
  private dict: string[] = [];
  /** JSON text of each dictionary entry, quoted when first asked for. */
  private dictJson: (string | undefined)[] = [];
  private dictIndex: Map<string, number> | null = new Map();
  private plain: (string | null | undefined)[] | null = null;
  /** The last value set and its code: a column often repeats itself (units, states). */
  private lastText: string | null = null;
  private lastCode = -1;

  constructor(capacity: number, plain: boolean) {
    this.codes = new Int32Array(capacity).fill(-1);
    if (plain) this.toPlain(capacity);
  }

  get(i: number): RowValue {
    if (this.plain) return this.plain[i] ?? null;
    const code = this.codes![i]!;
    return code < 0 ? null : this.dict[code]!;
  }

  json(i: number): string {
    if (this.plain) {
      const text = this.plain[i];
      return typeof text === 'string' ? JSON.stringify(text) : 'null';
    }
    const code = this.codes![i]!;
    return code < 0 ? 'null' : (this.dictJson[code] ??= JSON.stringify(this.dict[code]!));
  }

  set(i: number, value: RowValue): void {
    const text = value === null ? null : String(value);
    if (this.plain) {
      this.plain[i] = text;
      if (text !== null) this.payloadBytes += stringBytes(text);
      return;
    }
    if (text === null) {
      this.codes![i] = -1;
      return;
    }
    if (text === this.lastText) {
      this.codes![i] = this.lastCode;
      return;
    }
    let code = this.dictIndex!.get(text);
    if (code === undefined) {
      if (this.dict.length >= DICT_LIMIT) {
        this.codes![i] = -1; // may be a stale copy of its neighbour: not a live value
        this.toPlain(this.codes!.length);
        this.set(i, text);
        return;
      }
      code = this.dict.length;
      this.dict.push(text);
      this.dictIndex!.set(text, code);
      this.payloadBytes += DICT_ENTRY_BYTES + stringBytes(text) + stringBytes(text) + 2; // + its JSON text, once asked for
    }
    this.codes![i] = code;
    this.lastText = text;
    this.lastCode = code;
  }

  release(i: number): void {
    if (!this.plain) {
      this.codes![i] = -1;
      return;
    }
    const text = this.plain[i];
    if (typeof text === 'string') this.payloadBytes -= stringBytes(text);
    this.plain[i] = undefined;
  }

  clearRange(from: number, to: number): void {
    if (this.plain) this.plain.fill(undefined, from, to);
    else this.codes!.fill(-1, from, to);
  }

  copyWithin(target: number, start: number, end: number): void {
    if (this.plain) this.plain.copyWithin(target, start, end);
    else this.codes!.copyWithin(target, start, end);
  }

  resize(capacity: number, start: number, end: number): void {
    if (this.plain) {
      const next = new Array<string | null | undefined>(capacity);
      for (let i = start; i < end; i++) next[i - start] = this.plain[i];
      this.plain = next;
      return;
    }
    const next = new Int32Array(capacity).fill(-1, end - start);
    next.set(this.codes!.subarray(start, end));
    this.codes = next;
  }

  /**
   * Leaves dictionary mode for good, decoding every slot. Dead slots hold -1 (the owner
   * releases or clears every slot it drops), so only live strings are decoded and counted.
   */
  private toPlain(capacity: number): void {
    const plain = new Array<string | null | undefined>(capacity);
    let bytes = 0;
    for (let i = 0; i < (this.codes?.length ?? 0); i++) {
      const code = this.codes![i]!;
      if (code >= 0) {
        const text = this.dict[code]!;
        plain[i] = text;
        bytes += stringBytes(text);
      }
    }
    this.plain = plain;
    this.codes = null;
    this.dict = [];
    this.dictJson = [];
    this.dictIndex = null;
    this.slotBytes = 8;
    this.payloadBytes = bytes;
  }
}

export function createColumnStore(type: StoredType, capacity: number): ColumnStore {
  switch (type) {
    case 'string':
      return new StringStore(capacity, false);
    case 'blob':
      return new StringStore(capacity, true);
    case 'boolean':
      return new BooleanStore(capacity);
    default:
      return new NumberStore(capacity);
  }
}
