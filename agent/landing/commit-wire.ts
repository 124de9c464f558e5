/**
 * A commit's items as they cross from the landing log (main thread) to its writer
 * worker: rows columnar per dataset (the reads hand-off's codec, reads/landed-batch.ts)
 * and item coordinates in typed arrays, all in transferred buffers; only what is rare
 * (quarantine entries, blobs, source keys, rows that fit no dataset) travels as objects.
 * Structured-cloning the items as objects cost more CPU than anything else on either
 * thread in the Kafka bench (≈ 3 µs a record sending, as much again receiving).
 *
 * Invariants:
 * - `decodeCommit(encodeCommit(items))` gives back the same items in order: each with
 *   its rows in order (dataset and values), quarantine entries, blobs, source key,
 *   source and stream offset (with its stream end, `logEnd`, when given); absent
 *   fields stay absent (undefined), an undefined value in a row becomes null.
 * - A row of an unknown dataset, or not as wide as its dataset, travels as it is, so
 *   the writer refuses it as before (the item is quarantined, `landing_rejected`).
 * - The buffers are transferred (detached on the sending side): encode once per attempt.
 * - The writer's results travel back packed (`encodeResults`): four counts per item
 *   in one transferred Int32Array rather than an object per item; the rare lowered
 *   watermarks (a recreated stream) travel beside them as [item, old watermark] pairs.
 * - Decoded items share frozen empty arrays for absent quarantine entries and blobs:
 *   the writer only reads them.
 */
import type { Dataset, RowValues } from '../../config/dataset.ts';
import { decodePart, encodePart, type LandedPart } from '../reads/landed-batch.ts';
import type { BlobRef, LandingItem, LandingItemResult, LandingRow, QuarantineEntry, SourceOffset } from './types.ts';

/** What an item has besides rows and coordinates (rare: folders, quarantine). */
interface ItemExtras {
  index: number;
  quarantine: QuarantineEntry[];
  blobs: BlobRef[];
  sourceKey: LandingItem['sourceKey'];
}

export interface CommitWire {
  count: number;
  /** Item sources and stream names, referenced by position (-1: absent). */
  names: string[];
  source: Int32Array;
  /** The item's `sourceOffset`: source and stream (-1: none) and offset. */
  offsetSource: Int32Array;
  offsetStream: Int32Array;
  offset: Float64Array;
  /** The offset's `logEnd` (the stream's end when read), -1: none. */
  logEnd: Float64Array;
  /** Item i's rows are entries rowStart[i] .. rowStart[i + 1] - 1 of rowPart and rowIndex. */
  rowStart: Int32Array;
  /** The row's part in `parts`, or -1: it is `oddRows[rowIndex]`. */
  rowPart: Int32Array;
  rowIndex: Int32Array;
  parts: LandedPart[];
  oddRows: LandingRow[];
  extras: ItemExtras[];
}

const NO_QUARANTINE: QuarantineEntry[] = Object.freeze([]) as unknown as QuarantineEntry[];
const NO_BLOBS: BlobRef[] = Object.freeze([]) as unknown as BlobRef[];

export function encodeCommit(items: readonly LandingItem[], datasets: ReadonlyMap<string, Dataset>): { wire: CommitWire; transfer: ArrayBuffer[] } {
  const count = items.length;
  let totalRows = 0;
  for (const item of items) totalRows += item.rows.length;
  const names: string[] = [];
  const nameCodes = new Map<string, number>();
  const code = (name: string | undefined): number => {
    if (name === undefined) return -1;
    let at = nameCodes.get(name);
    if (at === undefined) {
      at = names.push(name) - 1;
      nameCodes.set(name, at);
    }
    return at;
  };
  const source = new Int32Array(count);
  const offsetSource = new Int32Array(count);
  const offsetStream = new Int32Array(count);
  const offset = new Float64Array(count);
  const logEnd = new Float64Array(count);
  const rowStart = new Int32Array(count + 1);
  const rowPart = new Int32Array(totalRows);
  const rowIndex = new Int32Array(totalRows);
  const groups = new Map<string, { dataset: Dataset; part: number; values: RowValues[] }>();
  const oddRows: LandingRow[] = [];
  const extras: ItemExtras[] = [];
  let r = 0;
  for (let i = 0; i < count; i++) {
    const item = items[i]!;
    rowStart[i] = r;
    source[i] = code(item.source);
    const so = item.sourceOffset;
    offsetSource[i] = so ? code(so.source) : -1;
    offsetStream[i] = so ? code(so.stream) : -1;
    offset[i] = so ? so.offset : 0;
    logEnd[i] = so?.logEnd ?? -1;
    for (const row of item.rows) {
      let group = groups.get(row.dataset);
      if (group === undefined) {
        const dataset = datasets.get(row.dataset);
        if (dataset) groups.set(row.dataset, (group = { dataset, part: groups.size, values: [] }));
      }
      if (group === undefined || row.values.length !== group.dataset.columns.length) {
        rowPart[r] = -1;
        rowIndex[r] = oddRows.push(row) - 1;
      } else {
        rowPart[r] = group.part;
        rowIndex[r] = group.values.push(row.values) - 1;
      }
      r++;
    }
    if (item.quarantine.length > 0 || item.blobs.length > 0 || item.sourceKey !== undefined) {
      extras.push({ index: i, quarantine: item.quarantine, blobs: item.blobs, sourceKey: item.sourceKey });
    }
  }
  rowStart[count] = r;
  const transfer: ArrayBuffer[] = [];
  for (const buffer of [source, offsetSource, offsetStream, offset, logEnd, rowStart, rowPart, rowIndex]) transfer.push(buffer.buffer as ArrayBuffer);
  const parts = [...groups.values()].map((group) => encodePart(group.dataset, group.values, transfer));
  return { wire: { count, names, source, offsetSource, offsetStream, offset, logEnd, rowStart, rowPart, rowIndex, parts, oddRows, extras }, transfer };
}

export function decodeCommit(wire: CommitWire): LandingItem[] {
  const partRows = wire.parts.map(decodePart);
  const { names, rowStart, rowPart, rowIndex } = wire;
  const items: LandingItem[] = new Array(wire.count);
  let extra = 0;
  for (let i = 0; i < wire.count; i++) {
    const start = rowStart[i]!;
    const rows: LandingRow[] = new Array(rowStart[i + 1]! - start);
    for (let r = start; r < rowStart[i + 1]!; r++) {
      const part = rowPart[r]!;
      rows[r - start] = part < 0 ? wire.oddRows[rowIndex[r]!]! : { dataset: wire.parts[part]!.dataset, values: partRows[part]![rowIndex[r]!]! };
    }
    const sourceCode = wire.source[i]!;
    const streamCode = wire.offsetStream[i]!;
    const extras = wire.extras[extra]?.index === i ? wire.extras[extra++] : undefined;
    let sourceOffset: SourceOffset | undefined;
    if (streamCode >= 0) {
      sourceOffset = { source: names[wire.offsetSource[i]!]!, stream: names[streamCode]!, offset: wire.offset[i]! };
      if (wire.logEnd[i]! >= 0) sourceOffset.logEnd = wire.logEnd[i]!;
    }
    items[i] = {
      rows,
      quarantine: extras?.quarantine ?? NO_QUARANTINE,
      blobs: extras?.blobs ?? NO_BLOBS,
      sourceKey: extras?.sourceKey,
      source: sourceCode < 0 ? undefined : names[sourceCode],
      sourceOffset,
    };
  }
  return items;
}

/** [inserted, duplicates, quarantined, sourceDuplicate (0/1)] per item. */
const RESULT_FIELDS = 4;

export function encodeResults(results: readonly LandingItemResult[]): Int32Array {
  const packed = new Int32Array(results.length * RESULT_FIELDS);
  results.forEach((result, i) => {
    const at = i * RESULT_FIELDS;
    packed[at] = result.inserted;
    packed[at + 1] = result.duplicates;
    packed[at + 2] = result.quarantined;
    packed[at + 3] = result.sourceDuplicate ? 1 : 0;
  });
  return packed;
}

/** [item index, watermark it lowered] of the items that lowered one (rare: a recreated stream). */
export type LoweredOffsets = [number, number][];

export function loweredOffsets(results: readonly LandingItemResult[]): LoweredOffsets | undefined {
  let lowered: LoweredOffsets | undefined;
  results.forEach((result, i) => {
    if (result.offsetLoweredFrom !== undefined) (lowered ??= []).push([i, result.offsetLoweredFrom]);
  });
  return lowered;
}

export function decodeResults(packed: Int32Array, lowered?: LoweredOffsets): LandingItemResult[] {
  const results: LandingItemResult[] = new Array(packed.length / RESULT_FIELDS);
  for (let i = 0; i < results.length; i++) {
    const at = i * RESULT_FIELDS;
    results[i] = { inserted: packed[at]!, duplicates: packed[at + 1]!, sourceDuplicate: packed[at + 3] === 1, quarantined: packed[at + 2]! };
  }
  for (const [i, from] of lowered ?? []) results[i]!.offsetLoweredFrom = from;
  return results;
}
