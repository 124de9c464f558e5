/**
 * The order of rows in merged hot-tier files: by stream (the stream key's values,
 * ascending: nulls first, strings in UTF-8 byte order as Parquet statistics compare
 * them, numbers numerically), then by time, stable. Files written in this order let
 * a query on one stream (one line, one sensor) skip row groups by their min/max
 * statistics. Also gives the row ranges of equal (stream, time) keys, which the
 * rollup merge folds into one row (merge.ts).
 */
import type { Dataset } from '../../config/dataset.ts';
import { cellValue, timeValues, type ColumnBatch } from './columns.ts';
import { sortByTime } from './compact.ts';
import { compareUtf8 } from './parquet-writer.ts';
import { streamIds } from './rollup.ts';

function compareCells(a: string | number | boolean | null, b: string | number | boolean | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === 'string' && typeof b === 'string') return compareUtf8(a, b);
  return Number(a) < Number(b) ? -1 : Number(a) > Number(b) ? 1 : 0;
}

export interface StreamOrder {
  /** Row indices, by stream then time (stable). */
  order: Uint32Array;
  /** Per row of `order`: the stream's rank (0 = first stream). */
  ranks: Int32Array;
}

/**
 * `dataset` describes `batch` (column 0 = time); its `streamKey` names the stream
 * columns. `timeStepUs`: every time is a multiple of it (a minute for rollups), which
 * keeps a day of minutes within the radix sort's range.
 */
export function sortByStreamThenTime(dataset: Dataset, batch: ColumnBatch, timeStepUs = 1): StreamOrder {
  const n = batch.length;
  const times = timeValues(batch);
  const byTime = sortByTime(timeStepUs === 1 ? times : times.map((t) => Math.floor(t / timeStepUs)));
  const { ids, count } = streamIds(dataset, batch);
  const firstRow = new Int32Array(count).fill(-1);
  for (let i = 0; i < n; i++) if (firstRow[ids[i]!]! < 0) firstRow[ids[i]!] = i;
  const streams = Array.from({ length: count }, (_, s) => s);
  const key = (s: number): (string | number | boolean | null)[] => dataset.streamKey.map((c) => cellValue(dataset, batch, c, firstRow[s]!));
  const keys = streams.map(key);
  streams.sort((a, b) => {
    const ka = keys[a]!;
    const kb = keys[b]!;
    for (let k = 0; k < ka.length; k++) {
      const c = compareCells(ka[k]!, kb[k]!);
      if (c !== 0) return c;
    }
    return 0;
  });
  const rankOf = new Int32Array(count);
  streams.forEach((s, rank) => (rankOf[s] = rank));
  // Stable counting sort of the time order by stream rank.
  const starts = new Uint32Array(count + 1);
  for (let i = 0; i < n; i++) starts[rankOf[ids[i]!]! + 1]!++;
  for (let r = 0; r < count; r++) starts[r + 1]! += starts[r]!;
  const order = new Uint32Array(n);
  const ranks = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = byTime[i]!;
    const rank = rankOf[ids[row]!]!;
    const at = starts[rank]!++;
    order[at] = row;
    ranks[at] = rank;
  }
  return { order, ranks };
}
