/**
 * The landing log's single writer, on a worker thread so fsyncs never stall the main
 * event loop. It owns the only ingest connection to the landing database.
 *
 * Invariants:
 * - One `commit` message = one SQLite transaction (synchronous=FULL): when the reply
 *   says ok, every row, quarantine entry, blob reference, source key and stream
 *   watermark (source_offsets) of the batch
 *   is on disk; when it says failed, none of them is.
 * - A stream offset below its stream's landed watermark is skipped (a redelivery), with
 *   one exception: an item whose stream end (`sourceOffset.logEnd`, the Kafka
 *   partition's high watermark when read) is below the watermark comes from a recreated
 *   stream (a stream's end never goes down), so before its watermark check the
 *   watermark is lowered to the item's offset, in the item's transaction (rolled back
 *   with it, memory included), and the item reports the old watermark
 *   (`offsetLoweredFrom`) for its source to warn about.
 * - A retriable failure (disk full, I/O error, busy) is reported as such; the caller
 *   retries the same batch. Any other failure is isolated to the items that cause it:
 *   each item is retried alone and one that still fails is quarantined with the error,
 *   so a single bad row never blocks its source.
 * - With a landed port attached (the reads worker's), each commit's new rows are posted
 *   there, columnar (agent/reads/landed-batch.ts), BEFORE the commit's reply to the main
 *   thread: by the time a source acknowledges, the rows already wait at the reads
 *   worker. Rows dropped as duplicates are left out; an item is either all new or
 *   reported by count only (its rows are then left out too).
 * - Items arrive encoded (commit-wire.ts); a dataset's rows are inserted several per
 *   statement (row-inserter.ts), all before the transaction commits.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import type { DatasetConfig } from '../../config/schema.ts';
import { StreamActivity, tallyCommit } from './ingest-tally.ts';
import { failpoint } from '../failpoint.ts';
import { deprioritizeThisThread } from '../thread-priority.ts';
import { encodeLanded, transferOf, type LandedBatch, type LandedPart } from '../reads/landed-batch.ts';
import { decodeCommit, encodeResults, loweredOffsets, type CommitWire } from './commit-wire.ts';
import { RowInserter } from './row-inserter.ts';
import { applyPragmas, ensureSchema } from './schema.ts';
import { SourceHolds, type HoldSpan } from './source-holds.ts';
import { dedupeKeyOf } from './dedupe-key.ts';
import type { LandingItem, LandingItemResult, LandingRow, QuarantineEntry } from './types.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

interface WriterData {
  dbPath: string;
  datasets: DatasetConfig[];
  /** Streams watched for freshness at most (ingest-tally.ts). */
  maxStreams: number;
}

const RETRIABLE_CODES = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|CANTOPEN|PROTOCOL|NOMEM)/;

deprioritizeThisThread(); // reads first when the CPU is saturated (thread-priority.ts)
const { dbPath, datasets: datasetConfigs, maxStreams } = workerData as WriterData;
const datasets = new Map<string, Dataset>(datasetConfigs.map((c) => [c.name, resolveDataset(c)]));
const db = new Database(dbPath);
applyPragmas(db);
ensureSchema(db, [...datasets.values()]);
const activity = new StreamActivity(datasets, maxStreams);

const inserters = new Map([...datasets.values()].map((dataset) => [dataset.name, new RowInserter(db, dataset)]));
function flushRows(): void {
  for (const inserter of inserters.values()) inserter.flush();
}
const insertDedupeKey = db.prepare('INSERT OR IGNORE INTO dedupe_keys (dataset, key, ts_us) VALUES (?, ?, ?)');
const insertSourceKey = db.prepare('INSERT OR IGNORE INTO source_keys (source, key, at_us) VALUES (?, ?, ?)');
const selectSourceOffset = db.prepare('SELECT next_offset FROM source_offsets WHERE source = ? AND stream = ?').pluck();
const lowerSourceOffset = db.prepare('UPDATE source_offsets SET next_offset = ? WHERE source = ? AND stream = ?');
const upsertSourceOffset = db.prepare(
  `INSERT INTO source_offsets (source, stream, next_offset) VALUES (?, ?, ?)
   ON CONFLICT (source, stream) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)`,
);
/**
 * Stream watermarks: `committed` mirrors source_offsets as of the last commit; `pending`
 * holds what the open transaction raised, merged on commit and dropped on rollback.
 */
const committedOffsets = new Map<string, number>();
const pendingOffsets = new Map<string, { source: string; stream: string; next: number }>();

// Consecutive items nearly always share a stream (a Kafka batch): keep its id at hand.
let lastSource = '';
let lastStream = '';
let lastId = '';
function streamId(source: string, stream: string): string {
  if (source !== lastSource || stream !== lastStream) {
    lastSource = source;
    lastStream = stream;
    lastId = `${source}\u0000${stream}`;
  }
  return lastId;
}

/** Raises the open transaction's watermark of the stream to `offset + 1`. */
function raiseOffset(source: string, stream: string, offset: number): void {
  const id = streamId(source, stream);
  const pending = pendingOffsets.get(id);
  if (pending) pending.next = Math.max(pending.next, offset + 1);
  else pendingOffsets.set(id, { source, stream, next: offset + 1 });
}

function nextOffsetOf(source: string, stream: string): number {
  const id = streamId(source, stream);
  const pending = pendingOffsets.get(id);
  if (pending) return pending.next;
  let next = committedOffsets.get(id);
  if (next === undefined) {
    next = (selectSourceOffset.get(source, stream) as number | undefined) ?? 0;
    committedOffsets.set(id, next);
  }
  return next;
}

/**
 * A recreated stream (see the header): when the watermark is above the stream's end
 * the item was read at, lowers it to the item's offset inside the open transaction
 * (the database row now, so the upsert's max() starts from there; the committed map
 * only on commit) and returns the old watermark.
 */
function lowerIfRecreated(source: string, stream: string, offset: number, logEnd: number | undefined): number | undefined {
  if (logEnd === undefined) return undefined;
  const next = nextOffsetOf(source, stream); // loads the committed watermark before the row changes
  if (next <= logEnd || offset >= next) return undefined;
  pendingOffsets.set(streamId(source, stream), { source, stream, next: offset });
  lowerSourceOffset.run(offset, source, stream);
  return next;
}

/** Writes the open transaction's raised watermarks (inside it). */
function writePendingOffsets(): void {
  for (const p of pendingOffsets.values()) upsertSourceOffset.run(p.source, p.stream, p.next);
}

/** After a commit: the raised watermarks are durable. After a rollback: forget them. */
function settleOffsets(committed: boolean): void {
  if (committed) for (const [id, p] of pendingOffsets) committedOffsets.set(id, p.next);
  pendingOffsets.clear();
}

const insertBlob = db.prepare('INSERT OR IGNORE INTO blobs (sha256, size_bytes, content_type, first_seen_us) VALUES (?, ?, ?, ?)');
const insertQuarantine = db.prepare(
  `INSERT INTO quarantine (received_at_us, source, coordinates, dataset, reason_code, reason, payload, payload_bytes)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
);

function nowUs(): number {
  return Date.now() * 1000;
}

function writeQuarantine(entry: QuarantineEntry): void {
  insertQuarantine.run(
    entry.receivedAtUs,
    entry.source,
    entry.coordinates,
    entry.dataset,
    entry.reasonCode,
    entry.reason,
    Buffer.from(entry.payload.buffer, entry.payload.byteOffset, entry.payload.byteLength),
    entry.payloadBytes,
  );
}


function writeItem(item: LandingItem, at: number): LandingItemResult {
  const result: LandingItemResult = { inserted: 0, duplicates: 0, sourceDuplicate: false, quarantined: 0 };
  if (item.sourceKey && insertSourceKey.run(item.sourceKey.source, item.sourceKey.key, at).changes === 0) {
    result.sourceDuplicate = true;
    return result;
  }
  const so = item.sourceOffset;
  if (so) {
    const loweredFrom = lowerIfRecreated(so.source, so.stream, so.offset, so.logEnd);
    if (loweredFrom !== undefined) result.offsetLoweredFrom = loweredFrom;
    if (so.offset < nextOffsetOf(so.source, so.stream)) {
      result.sourceDuplicate = true;
      return result;
    }
    raiseOffset(so.source, so.stream, so.offset);
  }
  for (const blob of item.blobs) insertBlob.run(blob.sha256, blob.sizeBytes, blob.contentType, at);
  for (const row of item.rows) {
    const dataset = datasets.get(row.dataset);
    const inserter = inserters.get(row.dataset);
    if (!dataset || !inserter) throw new Error(`unknown dataset "${row.dataset}"`);
    if (dataset.dedupeKey && insertDedupeKey.run(dataset.name, dedupeKeyOf(dataset, row.values), row.values[0] as number).changes === 0) {
      result.duplicates++;
      continue;
    }
    inserter.add(row.values);
    result.inserted++;
  }
  for (const entry of item.quarantine) {
    writeQuarantine(entry);
    result.quarantined++;
  }
  return result;
}

const holds = new SourceHolds(db, datasets, (source, stream) => committedOffsets.delete(streamId(source, stream)));

/** Flushes the row buffers so the AUTOINCREMENT sequences count every row written so far. */
function sequencesNow(): Map<string, number> {
  flushRows();
  return holds.sequenceSnapshot();
}

/**
 * Writes the items; those inside a hold span are held (source-holds.ts): their rows'
 * ids and landed offsets are measured around them and recorded in the same transaction.
 */
function writeItems(items: LandingItem[], at: number, spans: readonly HoldSpan[] | undefined): LandingItemResult[] {
  const results: LandingItemResult[] = new Array(items.length);
  let next = 0; // the next span to open (spans are in item order and do not overlap)
  let open: { span: HoldSpan; before: Map<string, number>; first: number; last: number; source: string; stream: string } | null = null;
  for (let i = 0; i < items.length; i++) {
    const span = spans?.[next];
    if (open === null && span !== undefined && span.from === i) open = { span, before: sequencesNow(), first: Infinity, last: -1, source: '', stream: '' };
    const item = items[i]!;
    const result = writeItem(item, at);
    results[i] = result;
    if (open !== null) {
      const so = item.sourceOffset;
      if (so && !result.sourceDuplicate) {
        open.first = Math.min(open.first, so.offset);
        open.last = Math.max(open.last, so.offset);
        open.source = so.source;
        open.stream = so.stream;
      }
      if (i === open.span.to - 1) {
        const offsets = open.last >= 0 ? { first: open.first, next: open.last + 1 } : null;
        holds.record(open.span, open.source, open.stream, offsets, open.before, sequencesNow());
        open = null;
        next++;
      }
    }
  }
  return results;
}

/** The span covering item `index` of a commit, narrowed to that one item (for the isolated retries). */
function spanOf(spans: readonly HoldSpan[] | undefined, index: number): HoldSpan[] | undefined {
  const span = spans?.find((s) => s.from <= index && index < s.to);
  return span ? [{ ...span, from: 0, to: 1 }] : undefined;
}

const commitBatchTx = db.transaction((items: LandingItem[], at: number, spans: readonly HoldSpan[] | undefined) => {
  const results = writeItems(items, at, spans);
  flushRows();
  writePendingOffsets();
  return results;
});
const commitOneTx = db.transaction((item: LandingItem, at: number, spans: readonly HoldSpan[] | undefined) => {
  const result = writeItems([item], at, spans)[0]!;
  flushRows();
  writePendingOffsets();
  return result;
});

/** Runs a transaction and keeps the in-memory watermarks and row buffers in step with its outcome. */
function settled<A extends unknown[], R>(tx: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    try {
      const result = tx(...args);
      settleOffsets(true);
      return result;
    } catch (error) {
      settleOffsets(false);
      for (const inserter of inserters.values()) inserter.discard();
      throw error;
    }
  };
}
const commitBatch = settled(commitBatchTx);
const commitOne = settled(commitOneTx);
// A refused item still covers its stream offset: a redelivery must not quarantine it twice.
// Held like any other item of its batch (its entries and offset can still be taken back).
const quarantineOne = settled(
  db.transaction((entries: QuarantineEntry[], item: LandingItem, spans: readonly HoldSpan[] | undefined) => {
    const before = spans ? sequencesNow() : null;
    entries.forEach(writeQuarantine);
    const so = item.sourceOffset;
    const loweredFrom = so ? lowerIfRecreated(so.source, so.stream, so.offset, so.logEnd) : undefined;
    const fresh = so !== undefined && so.offset >= nextOffsetOf(so.source, so.stream);
    if (fresh) raiseOffset(so.source, so.stream, so.offset);
    if (spans && before && so) holds.record(spans[0]!, so.source, so.stream, fresh ? { first: so.offset, next: so.offset + 1 } : null, before, sequencesNow());
    writePendingOffsets();
    return loweredFrom;
  }),
);

function isRetriable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && RETRIABLE_CODES.test(code);
}

/** Retries items alone after a non-retriable batch failure; an item that fails alone is quarantined. */
function commitIsolated(items: LandingItem[], at: number, spans: readonly HoldSpan[] | undefined): LandingItemResult[] {
  return items.map((item, index) => {
    const span = spanOf(spans, index);
    try {
      return commitOne(item, at, span);
    } catch (error) {
      if (isRetriable(error)) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      const entries: QuarantineEntry[] = item.rows.map((row) => ({
        source: item.sourceKey?.source ?? 'unknown',
        coordinates: JSON.stringify({ sourceKey: item.sourceKey?.key ?? null }),
        dataset: row.dataset,
        reasonCode: 'landing_rejected',
        reason: `the landing log refused the row: ${reason}`,
        payload: Buffer.from(JSON.stringify(row.values)),
        payloadBytes: 0,
        receivedAtUs: at,
      }));
      const loweredFrom = quarantineOne([...entries, ...item.quarantine], item, span);
      const result: LandingItemResult = { inserted: 0, duplicates: 0, sourceDuplicate: false, quarantined: entries.length + item.quarantine.length };
      if (loweredFrom !== undefined) result.offsetLoweredFrom = loweredFrom;
      return result;
    }
  });
}

let landedPort: MessagePort | null = null;

/**
 * Posts the batch's new rows to the reads worker (see the header); a closed port drops
 * them. Never throws: the commit is done, and a failure here must not look like one of
 * the commit (it is returned for the landing log to report). When every row of the
 * batch was new, the parts it arrived in go on as they are (no second encoding).
 */
function publishLanded(items: LandingItem[], results: LandingItemResult[], arrived: LandedPart[], odd: boolean): string | undefined {
  if (!landedPort) return undefined;
  try {
    const isNew = (item: LandingItem, index: number): boolean => item.rows.length > 0 && results[index]!.inserted === item.rows.length;
    if (!odd && items.every((item, index) => item.rows.length === 0 || isNew(item, index))) {
      if (arrived.length > 0) landedPort.postMessage({ type: 'landed', parts: arrived } satisfies LandedBatch, transferOf(arrived));
      return undefined;
    }
    const rows: LandingRow[] = [];
    items.forEach((item, index) => {
      if (isNew(item, index)) rows.push(...item.rows);
    });
    if (rows.length === 0) return undefined;
    const { batch, transfer } = encodeLanded(rows, datasets);
    landedPort.postMessage(batch, transfer);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function commit(id: number, items: LandingItem[], wire: CommitWire, spans: readonly HoldSpan[] | undefined): WriterReply {
  failpoint('landing.before-commit'); // watchdog tests: a writer that never answers
  const at = nowUs();
  const started = performance.now();
  try {
    const results = commitBatch(items, at, spans);
    return committed(id, items, results, started, at, wire);
  } catch (error) {
    if (isRetriable(error)) return failure(id, error);
    try {
      const results = commitIsolated(items, at, spans);
      return committed(id, items, results, started, at, wire);
    } catch (inner) {
      return failure(id, inner);
    }
  }
}

function handle(request: WriterRequest): WriterReply {
  switch (request.type) {
    case 'commit': {
      return commit(request.id, decodeCommit(request.batch), request.batch, request.holds);
    }
    case 'holds-release': {
      try {
        return { type: 'holds-released', id: request.id, released: holds.release(request.source, request.stream, request.nextOffset) };
      } catch (error) {
        return failure(request.id, error);
      }
    }
    case 'holds-list': {
      try {
        return { type: 'holds', id: request.id, holds: holds.held(request.source) };
      } catch (error) {
        return failure(request.id, error);
      }
    }
    case 'holds-settle': {
      try {
        return { type: 'holds-settled', id: request.id, ...holds.settle(request.keep, request.drop) };
      } catch (error) {
        return failure(request.id, error);
      }
    }
    case 'prune': {
      try {
        const cutoff = nowUs() - request.retentionUs;
        const keys = db.prepare('DELETE FROM dedupe_keys WHERE ts_us < ?').run(cutoff).changes;
        const sources = db.prepare('DELETE FROM source_keys WHERE at_us < ?').run(cutoff).changes;
        return { type: 'pruned', id: request.id, removed: keys + sources };
      } catch (error) {
        return failure(request.id, error);
      }
    }
    case 'activity':
      return { type: 'activity', id: request.id, report: activity.drain(Date.now()) };
    case 'attach-landed': {
      landedPort?.close();
      landedPort = request.port;
      return { type: 'attached', id: request.id };
    }
    case 'close': {
      landedPort?.close();
      landedPort = null;
      db.close();
      return { type: 'closed', id: request.id };
    }
  }
}

/**
 * The reply to a durable commit, with what it landed (counted here, off the main
 * thread), once its new rows are on their way to the reads worker.
 */
function committed(id: number, items: LandingItem[], results: LandingItemResult[], started: number, atUs: number, wire: CommitWire): WriterReply {
  const commitMs = performance.now() - started;
  activity.record(items, results, Math.floor(atUs / 1000));
  const reply: WriterReply = { type: 'committed', id, results: encodeResults(results), lowered: loweredOffsets(results), commitMs, tally: tallyCommit(items, results) };
  const landedError = publishLanded(items, results, wire.parts, wire.oddRows.length > 0);
  return landedError === undefined ? reply : { ...reply, landedError };
}

function failure(id: number, error: unknown): WriterReply {
  const code = String((error as { code?: unknown }).code ?? 'UNKNOWN');
  return {
    type: 'failed',
    id,
    code,
    retriable: isRetriable(error),
    message: error instanceof Error ? error.message : String(error),
  };
}

parentPort!.on('message', (request: WriterRequest) => {
  const reply = handle(request);
  parentPort!.postMessage(reply, reply.type === 'committed' ? [reply.results.buffer as ArrayBuffer] : []);
});
parentPort!.postMessage({ type: 'ready', id: 0 } satisfies WriterReply);
