/** What the latest-value cache answers (agent/latest); times are event times, µs since the epoch (UTC). */
import type { Dataset } from '../../config/dataset.ts';

export interface LatestCacheOptions {
  datasets: readonly Dataset[];
  /** Rows kept per stream for `window()`: event time ≥ now − window_minutes. */
  windowMinutes: number;
  /** Memory bound of the latest values and windows together (an estimate of V8's layout). */
  maxBytes: number;
  /** Beyond this many streams (all datasets) the least recently updated one is dropped. Default 100,000. */
  maxStreams?: number;
  /** Wall clock in milliseconds (Date.now by default); tests pass their own. */
  now?: () => number;
}

export interface LatestValue {
  /** Stream-key column → value (empty for a dataset without a stream key). */
  stream: Readonly<Record<string, string>>;
  /** Event time, ISO 8601 with microseconds. */
  time: string;
  timeUs: number;
  /** Every column but the time and the stream-key columns. */
  values: Record<string, unknown>;
}

/**
 * A stream's recent rows, columnar: `columns[0]` is the dataset's time column and each
 * `rows[i][0]` its event time in µs (a number); the other entries follow `columns`
 * (every column but time and the stream key). Rows are oldest first.
 */
export interface WindowResult {
  dataset: string;
  stream: Readonly<Record<string, string>>;
  columns: string[];
  rows: unknown[][];
  /** Rows have event time ≥ fromUs (now − minutes, or the window held, if shorter). */
  fromUs: number;
  /**
   * False when the cache may lack rows of the span asked for: more minutes than
   * window_minutes, or older rows dropped to stay within max_bytes.
   */
  complete: boolean;
}

/** A window with its rows as the JSON text of `WindowResult.rows` (what the HTTP API sends). */
/** `rowsJson`: the UTF-8 bytes of the rows' JSON array. */
export type WindowJsonResult = Omit<WindowResult, 'rows'> & { rowsJson: Uint8Array };

export interface StreamFreshness {
  stream: Readonly<Record<string, string>>;
  newestUs: number;
  newest: string;
  /** Rows held in the stream's window. */
  rows: number;
}

export interface DatasetSummary {
  dataset: string;
  streamKey: string[];
  streams: number;
  rowsHeld: number;
  /** Newest event time over all streams (null before the first row). */
  newestUs: number | null;
  newest: string | null;
  perStream: StreamFreshness[];
}

export interface LatestCacheStats {
  /** Estimated bytes held (latest values, windows, index); kept ≤ maxBytes unless `overBudget`. */
  bytes: number;
  maxBytes: number;
  /** True when even empty windows do not fit: the latest value per stream alone exceeds maxBytes. */
  overBudget: boolean;
  streams: number;
  rowsHeld: number;
  windowMinutes: number;
  /** Rows older than this event time are no longer held anywhere (memory bound), or null. */
  memoryFloorUs: number | null;
  /** Rows dropped from windows for being older than window_minutes (incl. arriving too old). */
  rowsEvictedByAge: number;
  /** Rows dropped from windows (or not admitted) to stay within max_bytes. */
  rowsEvictedByMemory: number;
  /** Times the memory bound forced an eviction pass. */
  memoryEvictionPasses: number;
  /** Streams dropped (least recently updated) beyond maxStreams, with their windows. */
  streamsEvicted: number;
  /** Rows of a dataset the cache was not built with (ignored). */
  rowsUnknownDataset: number;
  rowsReceived: number;
}
