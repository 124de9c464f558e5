/**
 * Latest values and recent windows per stream, in memory, fed at commit (DESIGN "Who uses
 * it": on-site ML asks for the latest values and short windows, p99 in single-digit ms).
 * It lives on the reads worker (agent/reads/reads-worker.ts), fed with the rows the
 * landing writer posts after each commit (agent/reads/landed-batch.ts).
 *
 * Invariants:
 * - Only durable rows arrive (posted by the landing writer after the commit), so nothing here is
 *   ever newer than what SQL will see; the cache starts empty at each start.
 * - A stream's latest value is its row with the greatest EVENT time; a late, older row
 *   never replaces it (an equal time does: the later arrival wins). The latest value is
 *   kept whatever the memory bound; only windows shrink.
 * - A window holds the stream's rows with event time ≥ max(now − window_minutes, memory
 *   floor), ordered by event time whatever the arrival order. Rows past the age cutoff
 *   are dropped lazily (when their stream gets a row, and by a sweep every few seconds).
 * - Memory: `bytes` estimates everything held. Past `maxBytes`, windows are cut oldest
 *   first across all streams, down to 90 % of the bound: the memory floor rises to the
 *   event time that frees enough, and rows below it are dropped and no longer admitted.
 *   Every row dropped is counted (stats). Beyond `maxStreams`, the least recently
 *   updated stream is dropped whole (counted).
 * - Reads change nothing a reader sees; `latest()` and `window()` cost O(matching
 *   streams) and O(log rows + rows returned). `windowJson()` (the HTTP API's) keeps the
 *   JSON text of the rows it printed beside them (StreamWindow), counted in `bytes`
 *   like the rows; when that crosses `maxBytes` it enforces the bound as an insert
 *   would (oldest rows first, down to 90 %).
 */
import type { Dataset, RowValues } from '../../config/dataset.ts';
import type { LandingRow } from '../landing/types.ts';
import { formatTimeUs } from '../mapping/time.ts';
import { UnknownDatasetError } from './errors.ts';
import { DatasetStreams, type Stream } from './stream-index.ts';
import { StreamWindow } from './stream-window.ts';
import type { DatasetSummary, LatestCacheOptions, LatestCacheStats, LatestValue, WindowJsonResult, WindowResult } from './types.ts';
import { planMemoryFloor } from './memory-floor.ts';

export { UnknownDatasetError, InvalidStreamFilterError, LatestErrorCode } from './errors.ts';
export type * from './types.ts';

const DEFAULT_MAX_STREAMS = 100_000;
const SWEEP_INTERVAL_MS = 5_000;
const LOW_WATER = 0.9;
const MINUTE_US = 60_000_000;
const EMPTY_ROWS_JSON = Buffer.from('[]');

export class LatestCache {
  private readonly datasets = new Map<string, DatasetStreams>();
  private readonly windowUs: number;
  private readonly maxBytes: number;
  private readonly maxStreams: number;
  private readonly now: () => number;
  private bytes = 0;
  private streamCount = 0;
  private rowsHeld = 0;
  private memoryFloorUs = Number.NEGATIVE_INFINITY;
  private lastSweepMs = Number.NEGATIVE_INFINITY;
  /** Recency list: head = least recently updated. */
  private lruHead: Stream | null = null;
  private lruTail: Stream | null = null;
  private readonly counters = {
    rowsReceived: 0,
    rowsEvictedByAge: 0,
    rowsEvictedByMemory: 0,
    memoryEvictionPasses: 0,
    streamsEvicted: 0,
    rowsUnknownDataset: 0,
  };

  constructor(options: LatestCacheOptions) {
    for (const dataset of options.datasets) this.datasets.set(dataset.name, new DatasetStreams(dataset));
    this.windowUs = options.windowMinutes * MINUTE_US;
    this.maxBytes = options.maxBytes;
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.now = options.now ?? Date.now;
  }

  /** Takes rows that just became durable (any order, any datasets). */
  onRows(rows: readonly LandingRow[]): void {
    const nowMs = this.now();
    const ageCutoffUs = nowMs * 1000 - this.windowUs;
    this.counters.rowsReceived += rows.length;
    for (const row of rows) {
      const index = this.datasets.get(row.dataset);
      if (!index) {
        this.counters.rowsUnknownDataset++;
        continue;
      }
      this.add(index, row.values, ageCutoffUs);
    }
    if (nowMs - this.lastSweepMs >= SWEEP_INTERVAL_MS) this.sweep(nowMs);
    if (this.bytes > this.maxBytes) this.enforceBound(nowMs);
  }

  latest(dataset: string, filter?: Record<string, string>): LatestValue[] {
    const index = this.indexOf(dataset);
    const out: LatestValue[] = [];
    const names = index.valueColumns.map((i) => index.dataset.columns[i]!.name);
    for (const stream of index.match(filter)) {
      const values: Record<string, unknown> = {};
      for (let c = 0; c < names.length; c++) values[names[c]!] = stream.latestRow[index.valueColumns[c]!] ?? null;
      out.push({ stream: stream.key, time: isoOf(stream), timeUs: stream.latestUs, values });
    }
    return out;
  }

  /**
   * The stream's rows of the last `minutes` (event time ≥ now − minutes), oldest first;
   * with `limit`, the newest `limit` of them. An unknown stream gives no rows.
   */
  window(dataset: string, stream: Record<string, string>, minutes: number, limit?: number): WindowResult {
    const { found, ...shape } = this.windowShape(dataset, stream, minutes);
    return { ...shape, rows: found ? found.window.rowsSince(shape.fromUs, limit) : [] };
  }

  /** `window()` with its rows as JSON (`rowsJson`, the UTF-8 text of `rows`), for the HTTP API. */
  windowJson(dataset: string, stream: Record<string, string>, minutes: number, limit?: number): WindowJsonResult {
    const { found, ...shape } = this.windowShape(dataset, stream, minutes);
    if (!found) return { ...shape, rowsJson: EMPTY_ROWS_JSON };
    const rowsJson = found.window.jsonRowsSince(shape.fromUs, limit);
    this.account(found); // the row text it kept
    if (this.bytes > this.maxBytes) this.enforceBound(this.now());
    return { ...shape, rowsJson };
  }

  private windowShape(dataset: string, stream: Record<string, string>, minutes: number): Omit<WindowResult, 'rows'> & { found: Stream | undefined } {
    const index = this.indexOf(dataset);
    const found = index.findByKey(stream);
    const nowUs = this.now() * 1000;
    const askedUs = nowUs - minutes * MINUTE_US;
    const fromUs = Math.max(askedUs, nowUs - this.windowUs, this.memoryFloorUs);
    const columns = [index.dataset.columns[0]!.name, ...index.valueColumns.map((i) => index.dataset.columns[i]!.name)];
    return { dataset, stream: found?.key ?? stream, columns, fromUs, complete: fromUs === askedUs, found };
  }

  datasetsSummary(): DatasetSummary[] {
    return [...this.datasets.values()].map((index) => {
      let newest = Number.NEGATIVE_INFINITY;
      let rowsHeld = 0;
      const perStream = [...index.streams.values()].map((s) => {
        newest = Math.max(newest, s.latestUs);
        rowsHeld += s.window.length;
        return { stream: s.key, newestUs: s.latestUs, newest: isoOf(s), rows: s.window.length };
      });
      const any = perStream.length > 0;
      return {
        dataset: index.dataset.name,
        streamKey: [...index.keyNames],
        streams: index.streams.size,
        rowsHeld,
        newestUs: any ? newest : null,
        newest: any ? formatTimeUs(newest) : null,
        perStream,
      };
    });
  }

  stats(): LatestCacheStats {
    return {
      bytes: Math.round(this.bytes),
      maxBytes: this.maxBytes,
      overBudget: this.bytes > this.maxBytes,
      streams: this.streamCount,
      rowsHeld: this.rowsHeld,
      windowMinutes: this.windowUs / MINUTE_US,
      memoryFloorUs: Number.isFinite(this.memoryFloorUs) ? this.memoryFloorUs : null,
      ...this.counters,
    };
  }

  private indexOf(dataset: string): DatasetStreams {
    const index = this.datasets.get(dataset);
    if (!index) throw new UnknownDatasetError(dataset);
    return index;
  }

  private add(index: DatasetStreams, row: RowValues, ageCutoffUs: number): void {
    const timeUs = row[0];
    if (typeof timeUs !== 'number') return; // the landing log never lands such a row
    let stream = index.find(row);
    if (!stream) stream = this.createStream(index, row);
    else this.touch(stream);
    if (timeUs >= stream.latestUs) {
      stream.latestUs = timeUs;
      stream.latestRow = row;
      stream.latestIso = null;
    }
    const window = stream.window;
    const byMemory = this.memoryFloorUs > ageCutoffUs;
    const cutoffUs = byMemory ? this.memoryFloorUs : ageCutoffUs;
    if (timeUs < cutoffUs) {
      if (timeUs >= ageCutoffUs) this.counters.rowsEvictedByMemory++;
      else this.counters.rowsEvictedByAge++;
      return;
    }
    if (window.oldestUs < cutoffUs) this.evict(stream, cutoffUs, byMemory ? 'memory' : 'age');
    window.insert(timeUs, row);
    this.rowsHeld++;
    this.account(stream);
  }

  private createStream(index: DatasetStreams, row: RowValues): Stream {
    while (this.streamCount >= this.maxStreams && this.lruHead) this.dropStream(this.lruHead);
    const stream = index.create(row, new StreamWindow(index.dataset, index.valueColumns));
    this.streamCount++;
    this.account(stream);
    stream.lruPrev = this.lruTail;
    if (this.lruTail) this.lruTail.lruNext = stream;
    else this.lruHead = stream;
    this.lruTail = stream;
    return stream;
  }

  private dropStream(stream: Stream): void {
    this.unlink(stream);
    stream.index.remove(stream);
    this.streamCount--;
    this.rowsHeld -= stream.window.length;
    this.bytes -= stream.bytes;
    this.counters.streamsEvicted++;
  }

  private touch(stream: Stream): void {
    if (this.lruTail === stream) return;
    this.unlink(stream);
    stream.lruPrev = this.lruTail;
    this.lruTail!.lruNext = stream;
    this.lruTail = stream;
  }

  private unlink(stream: Stream): void {
    if (stream.lruPrev) stream.lruPrev.lruNext = stream.lruNext;
    else this.lruHead = stream.lruNext;
    if (stream.lruNext) stream.lruNext.lruPrev = stream.lruPrev;
    else this.lruTail = stream.lruPrev;
    stream.lruPrev = stream.lruNext = null;
  }

  private evict(stream: Stream, cutoffUs: number, reason: 'age' | 'memory'): void {
    const evicted = stream.window.evictBefore(cutoffUs);
    if (evicted === 0) return;
    this.rowsHeld -= evicted;
    if (reason === 'age') this.counters.rowsEvictedByAge += evicted;
    else this.counters.rowsEvictedByMemory += evicted;
    this.account(stream);
  }

  private account(stream: Stream): void {
    const bytes = stream.fixedBytes + stream.window.bytes();
    this.bytes += bytes - stream.bytes;
    stream.bytes = bytes;
  }

  /** Drops rows past the age cutoff in every stream (streams that stopped getting rows too). */
  private sweep(nowMs: number): void {
    this.lastSweepMs = nowMs;
    const ageCutoffUs = nowMs * 1000 - this.windowUs;
    for (const index of this.datasets.values()) {
      for (const stream of index.streams.values()) this.evict(stream, ageCutoffUs, 'age');
    }
    if (this.memoryFloorUs < ageCutoffUs) this.memoryFloorUs = Number.NEGATIVE_INFINITY; // the age cutoff is the stricter now
  }

  /** Back under the bound: spare capacity first, then the oldest rows across all streams. */
  private enforceBound(nowMs: number): void {
    this.counters.memoryEvictionPasses++;
    this.sweep(nowMs);
    if (this.bytes <= this.maxBytes) return;
    const target = this.maxBytes * LOW_WATER;
    for (const stream of this.allStreams()) {
      stream.window.shrinkToFit();
      this.account(stream);
    }
    for (let attempt = 0; attempt < 4 && this.bytes > target; attempt++) {
      const floorUs = planMemoryFloor([...this.allStreams()], this.bytes - target);
      if (floorUs === null) break; // windows are empty: the latest values alone exceed the bound
      this.memoryFloorUs = Math.max(this.memoryFloorUs, floorUs);
      for (const stream of this.allStreams()) {
        if (stream.window.oldestUs >= floorUs) continue;
        this.evict(stream, floorUs, 'memory');
        stream.window.shrinkToFit();
        this.account(stream);
      }
    }
  }

  private *allStreams(): Generator<Stream> {
    for (const index of this.datasets.values()) yield* index.streams.values();
  }
}

/** The latest event time as ISO text, formatted once per new latest value (reads outnumber updates). */
function isoOf(stream: Stream): string {
  return (stream.latestIso ??= formatTimeUs(stream.latestUs));
}
