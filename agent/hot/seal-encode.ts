/**
 * The CPU half of a seal step: one batch of landed rows → one encoded L0 Parquet
 * file per event-time window. Pure (no I/O, no database), so it runs unchanged on
 * the seal thread or on the encoder thread (seal-encoder.ts); publishing the bytes
 * and registering them stay with the seal (seal.ts).
 */
import type { Dataset } from '../../config/dataset.ts';
import { takeRows, timeValues, type ColumnBatch } from './columns.ts';
import { encodeParquet, type FileStats } from './parquet-writer.ts';
import { windowStartOf } from './paths.ts';

export interface WindowPart {
  windowStartUs: number;
  batch: ColumnBatch;
}

/** One encoded file of a step: the rows of `batch` in one window. */
export interface EncodedPart {
  windowStartUs: number;
  bytes: Uint8Array;
  stats: FileStats;
  minTsUs: number;
  maxTsUs: number;
}

export interface EncodeStepOptions {
  windowUs: number;
  rowGroupRows: number;
}

/** Splits a batch by event-time window; the common case (one window) copies nothing. */
export function splitByWindow(batch: ColumnBatch, windowUs: number): WindowPart[] {
  const times = timeValues(batch);
  const windowOf = new Float64Array(batch.length);
  const counts = new Map<number, number>();
  for (let i = 0; i < batch.length; i++) {
    const w = windowStartOf(times[i] as number, windowUs);
    windowOf[i] = w;
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  if (counts.size === 1) return [{ windowStartUs: windowOf[0] as number, batch }];
  const indices = new Map<number, { at: number; list: Uint32Array }>();
  for (const [w, count] of counts) indices.set(w, { at: 0, list: new Uint32Array(count) });
  for (let i = 0; i < batch.length; i++) {
    const slot = indices.get(windowOf[i] as number)!;
    slot.list[slot.at++] = i;
  }
  return [...indices.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([windowStartUs, slot]) => ({ windowStartUs, batch: takeRows(batch, slot.list) }));
}

function timeRange(batch: ColumnBatch): [number, number] {
  const times = timeValues(batch);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < times.length; i++) {
    const t = times[i] as number;
    if (t < min) min = t;
    if (t > max) max = t;
  }
  return [min, max];
}

/** Encodes a step's rows, one part per window, in window order. */
export function encodeStep(dataset: Dataset, batch: ColumnBatch, options: EncodeStepOptions): EncodedPart[] {
  return splitByWindow(batch, options.windowUs).map((part) => {
    const { bytes, stats } = encodeParquet(dataset, part.batch, { rowGroupRows: options.rowGroupRows });
    const [minTsUs, maxTsUs] = timeRange(part.batch);
    return { windowStartUs: part.windowStartUs, bytes, stats, minTsUs, maxTsUs };
  });
}
