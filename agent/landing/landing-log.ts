/**
 * The landing log, as the sources see it: `append(item)` resolves only once the
 * transaction holding the item is durable (WAL, synchronous=FULL). Sources
 * acknowledge after that and never before.
 *
 * Group commit: items wait in memory until the writer is free; then everything
 * waiting (up to `maxRows` rows) goes in one transaction. When the writer is idle a
 * batch waits at most `maxDelayMs` for company.
 *
 * Failures: a retriable failure (disk full, I/O error) retries the same batch with
 * backoff, forever, until it commits or the log stops; nothing is acknowledged
 * meanwhile, so sources stall instead of losing data, and resume by themselves once
 * space returns. Memory stays bounded because sources wait for their acks.
 *
 * Events: 'committed' (items, IngestTally: rows per source/dataset and quarantine per
 * reason, summed on the writer thread, commit ms), 'blocked' / 'unblocked', 'fatal'.
 * `activity()` drains the streams that got rows (ingest-tally.ts).
 *
 * Committed rows reach the on-site reads (latest values) without passing through this
 * thread: the writer posts them to the reads worker's port (`attachLandedPort`).
 *
 * Items cross to the writer encoded (commit-wire.ts: columnar, buffers transferred),
 * once per attempt, and the per-item results come back packed.
 */
import { EventEmitter } from 'node:events';
import { Worker, type MessagePort, type Transferable } from 'node:worker_threads';
import { resolveDataset, type Dataset } from '../../config/dataset.ts';
import type { DatasetConfig } from '../../config/schema.ts';
import { ErrorCode, type Logger } from '../log.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import { backoffDelay, sleep } from '../retry.ts';
import { decodeResults, encodeCommit } from './commit-wire.ts';
import type { ActivityReport, IngestTally } from './ingest-tally.ts';
import type { HeldBatch, HoldSpan, SettleOutcome } from './source-holds.ts';
import type { LandingItem, LandingItemResult } from './types.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

export interface LandingLogOptions {
  dbPath: string;
  datasets: DatasetConfig[];
  maxRows: number;
  maxDelayMs: number;
  retryInitialMs: number;
  /** How long dedupe and source keys are remembered. */
  dedupeRetentionHours: number;
  /** Streams watched for freshness at most (default 20 000). */
  maxStreams?: number;
  logger: Logger;
}

/** Items that go into one transaction together (one append, or one appendAll). */
interface Pending {
  items: LandingItem[];
  /** Lands held (source-holds.ts) under this id and tenure. */
  hold: { id: string; tenure: string } | undefined;
  rows: number;
  resolve: (results: LandingItemResult[]) => void;
  reject: (error: Error) => void;
}

export interface LandingStats {
  commits: number;
  rowsInserted: number;
  duplicates: number;
  quarantined: number;
  failedCommits: number;
  /** Time spent inside landing transactions (fsync included), for metrics. */
  commitMs: number;
  /** Commits whose rows could not be handed to the reads worker (the commit itself stands). */
  landedHandOffFailures: number;
}

/** The commit's held item ranges, in item order (undefined: none). */
function holdSpans(batch: readonly Pending[]): HoldSpan[] | undefined {
  let spans: HoldSpan[] | undefined;
  let at = 0;
  for (const pending of batch) {
    if (pending.hold) (spans ??= []).push({ id: pending.hold.id, tenure: pending.hold.tenure, from: at, to: at + pending.items.length });
    at += pending.items.length;
  }
  return spans;
}

export class LandingStoppedError extends Error {
  constructor() {
    super('the landing log is stopping; the item was not committed (its source will redeliver it)');
  }
}

export class LandingLog extends EventEmitter implements Component {
  readonly name = 'landing-log';
  readonly stats: LandingStats = { commits: 0, rowsInserted: 0, duplicates: 0, quarantined: 0, failedCommits: 0, commitMs: 0, landedHandOffFailures: 0 };
  private worker: Worker | null = null;
  private queue: Pending[] = [];
  private queuedRows = 0;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private nextId = 1;
  private lastBatchRows = 0;
  private replies = new Map<number, { resolve: (reply: WriterReply) => void; sentAt: number }>();
  private blockedSince: number | null = null;
  private stopping = false;
  private readonly abort = new AbortController();
  private pruneTimer: NodeJS.Timeout | null = null;
  private readonly options: LandingLogOptions;
  /** For encoding commits (commit-wire.ts). */
  private readonly datasets: Map<string, Dataset>;

  constructor(options: LandingLogOptions) {
    super();
    this.options = options;
    this.datasets = new Map(options.datasets.map((config) => [config.name, resolveDataset(config)]));
  }

  /** True while commits fail (disk full, I/O error): sources should stop picking up new work. */
  get blocked(): boolean {
    return this.blockedSince !== null;
  }

  async start(): Promise<void> {
    const worker = new Worker(new URL('./writer-worker.ts', import.meta.url), {
      workerData: { dbPath: this.options.dbPath, datasets: this.options.datasets, maxStreams: this.options.maxStreams ?? 20_000 },
    });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(new Error(`the landing log could not open ${this.options.dbPath}: ${error.message}`));
      worker.once('error', onError);
      worker.on('message', (reply: WriterReply) => {
        if (reply.type === 'ready') {
          worker.off('error', onError);
          worker.on('error', (error) => this.onWorkerCrash(error));
          resolve();
          return;
        }
        const waiter = this.replies.get(reply.id);
        this.replies.delete(reply.id);
        waiter?.resolve(reply);
      });
    });
    const retentionUs = this.options.dedupeRetentionHours * 3_600_000_000;
    this.pruneTimer = setInterval(() => void this.request({ type: 'prune', id: 0, retentionUs }).catch(() => {}), 600_000);
    this.pruneTimer.unref();
  }

  /**
   * How long the oldest unanswered request to the writer has been waiting (0 when none):
   * the health loop's sign of a writer stuck in a commit that never returns.
   */
  stalledMs(now = Date.now()): number {
    let oldest = now;
    for (const { sentAt } of this.replies.values()) oldest = Math.min(oldest, sentAt);
    return now - oldest;
  }

  /** Resolves when the item is durable; rejects only if the log stops before it could commit. */
  append(item: LandingItem): Promise<LandingItemResult> {
    return this.appendAll([item]).then((results) => results[0]!);
  }

  /**
   * Lands the items in one transaction (more may share it), e.g. a Kafka batch: one
   * fsync for the whole batch even past `maxRows`. Resolves with one result per item
   * once durable; rejects only if the log stops before it could commit.
   * With `hold`, the items land held (source-holds.ts): the seal leaves them alone
   * until `releaseHolds` or `settleHolds` says what became of their batch.
   */
  appendAll(items: LandingItem[], hold?: { id: string; tenure: string }): Promise<LandingItemResult[]> {
    if (this.stopping) return Promise.reject(new LandingStoppedError());
    if (items.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      let rows = 0;
      for (const item of items) rows += Math.max(1, item.rows.length + item.quarantine.length);
      this.queue.push({ items, hold, rows, resolve, reject });
      this.queuedRows += rows;
      this.schedule();
    });
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    // Drain: whatever is queued commits now (if the disk allows it; a stop that cannot
    // commit gives up after the abort below and the sources redeliver).
    const drainDeadline = setTimeout(() => this.abort.abort(), 10_000);
    while (this.queue.length > 0 || this.inFlight) {
      if (!this.inFlight) this.flush();
      await this.inFlight;
      if (this.abort.signal.aborted) break;
    }
    clearTimeout(drainDeadline);
    for (const pending of this.queue.splice(0)) pending.reject(new LandingStoppedError());
    if (this.worker) {
      await this.request({ type: 'close', id: 0 }).catch(() => {});
      await this.worker.terminate();
      this.worker = null;
    }
  });

  private schedule(): void {
    if (this.inFlight) return; // the batch after the current one forms by itself
    // Pipelining: an idle writer takes a batch as soon as it holds half as many rows as
    // the previous one, so the next half forms while this one commits. Without it,
    // sources that wait for their acks (one message per MQTT connection) would all
    // join one batch and then all wait for it, leaving writer and event loop idle in turn.
    if (this.queuedRows >= this.options.maxRows || this.queuedRows >= Math.max(2, this.lastBatchRows >> 1)) {
      this.flush();
      return;
    }
    if (this.timer) return;
    const run = () => {
      this.timer = null;
      if (!this.inFlight) this.flush();
    };
    this.timer = this.options.maxDelayMs > 0 ? setTimeout(run, this.options.maxDelayMs) : setImmediate(run);
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    if (this.queue.length === 0) return;
    let rows = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || rows + this.queue[count]!.rows <= this.options.maxRows)) {
      rows += this.queue[count]!.rows;
      count++;
    }
    const batch = this.queue.splice(0, count);
    this.queuedRows -= rows;
    this.lastBatchRows = rows;
    this.inFlight = this.commitUntilDone(batch)
      .catch((error: Error) => {
        for (const pending of batch) pending.reject(error);
      })
      .finally(() => {
        this.inFlight = null;
        if (this.queue.length > 0 && !this.stopping) this.flush();
      });
  }

  private async commitUntilDone(batch: Pending[]): Promise<void> {
    const items = batch.flatMap((p) => p.items);
    const holds = holdSpans(batch);
    for (let attempt = 0; ; attempt++) {
      // Encoded for each attempt: the buffers go to the writer (commit-wire.ts).
      const { wire, transfer } = encodeCommit(items, this.datasets);
      const reply = await this.request({ type: 'commit', id: 0, batch: wire, ...(holds && { holds }) }, transfer).catch(
        (error: Error): WriterReply => ({ type: 'failed', id: 0, code: 'WORKER', retriable: false, message: error.message }),
      );
      if (reply.type === 'committed') {
        this.stats.commitMs += reply.commitMs;
        if (reply.landedError !== undefined) this.onLandedError(reply.landedError);
        this.onCommitted(batch, decodeResults(reply.results, reply.lowered), reply.tally, reply.commitMs);
        return;
      }
      if (reply.type !== 'failed') throw new Error(`unexpected writer reply ${reply.type}`);
      this.stats.failedCommits++;
      if (!reply.retriable || this.abort.signal.aborted) {
        this.options.logger.error({ code: ErrorCode.landingIo, sqlite: reply.code, err: reply.message }, 'landing commit failed; items not acknowledged');
        for (const pending of batch) pending.reject(new Error(`landing commit failed: ${reply.message}`));
        return;
      }
      this.onBlocked(reply.code, reply.message, batch.length);
      await sleep(backoffDelay(attempt, { initialMs: this.options.retryInitialMs, maxMs: 30_000 }), this.abort.signal);
    }
  }

  /**
   * A held batch's commit happened at its source: the stream's holds that end at or
   * before `nextOffset` go. Never rejects (a release that fails leaves a hold that the
   * next settle finds committed); resolves with how many holds went.
   */
  async releaseHolds(source: string, stream: string, nextOffset: number): Promise<number> {
    const reply = await this.request({ type: 'holds-release', id: 0, source, stream, nextOffset }).catch((error: Error): WriterReply => ({ type: 'failed', id: 0, code: 'WORKER', retriable: false, message: error.message }));
    if (reply.type === 'holds-released') return reply.released;
    this.options.logger.warn({ source, stream, next_offset: nextOffset, err: reply.type === 'failed' ? reply.message : reply.type }, 'held batches not released; they are settled at the next rebalance');
    return 0;
  }

  /** The batches landed held and not yet released or settled (of one source, or all). */
  async heldBatches(source?: string): Promise<HeldBatch[]> {
    const reply = await this.request({ type: 'holds-list', id: 0, ...(source !== undefined && { source }) });
    if (reply.type !== 'holds') throw new Error(reply.type === 'failed' ? reply.message : `unexpected writer reply ${reply.type}`);
    return reply.holds;
  }

  /** Keeps or drops held batches (source-holds.ts `settle`), durably. */
  async settleHolds(keep: string[], drop: string[]): Promise<SettleOutcome> {
    const reply = await this.request({ type: 'holds-settle', id: 0, keep, drop });
    if (reply.type !== 'holds-settled') throw new Error(reply.type === 'failed' ? reply.message : `unexpected writer reply ${reply.type}`);
    return { rowsDropped: reply.rowsDropped, quarantineDropped: reply.quarantineDropped };
  }

  /** Streams that got rows since the last call (the writer keeps them; ingest-tally.ts). */
  async activity(): Promise<ActivityReport> {
    const reply = await this.request({ type: 'activity', id: 0 });
    if (reply.type !== 'activity') throw new Error(reply.type === 'failed' ? reply.message : `unexpected writer reply ${reply.type}`);
    return reply.report;
  }

  private onCommitted(batch: Pending[], results: LandingItemResult[], tally: IngestTally, commitMs: number): void {
    if (this.blockedSince !== null) {
      const blockedMs = Date.now() - this.blockedSince;
      this.blockedSince = null;
      this.options.logger.warn({ code: ErrorCode.landingRecovered, blocked_ms: blockedMs }, 'landing log commits again; ingestion resumed');
      this.emit('unblocked');
    }
    this.stats.commits++;
    for (const result of results) {
      this.stats.rowsInserted += result.inserted;
      this.stats.duplicates += result.duplicates;
      this.stats.quarantined += result.quarantined;
    }
    let at = 0;
    for (const pending of batch) {
      pending.resolve(results.slice(at, at + pending.items.length));
      at += pending.items.length;
    }
    this.emit('committed', results.length, tally, commitMs);
  }

  private onBlocked(sqliteCode: string, message: string, items: number): void {
    if (this.blockedSince !== null) return;
    this.blockedSince = Date.now();
    const diskFull = sqliteCode.startsWith('SQLITE_FULL');
    this.options.logger.error(
      {
        code: diskFull ? ErrorCode.landingDiskFull : ErrorCode.landingIo,
        sqlite: sqliteCode,
        err: message,
        db: this.options.dbPath,
        waiting_items: items,
      },
      diskFull
        ? `landing log disk is full (${this.options.dbPath}): nothing is acknowledged until space returns; retrying`
        : `landing log cannot commit (${sqliteCode}): nothing is acknowledged until it can; retrying`,
    );
    this.emit('blocked', { code: sqliteCode, message });
  }

  /**
   * From now on the writer posts every commit's new rows to `port` (columnar, see
   * agent/reads/landed-batch.ts), before the commit's reply reaches this thread; it
   * replaces a port attached earlier. Call after start().
   */
  async attachLandedPort(port: MessagePort): Promise<void> {
    const reply = await this.request({ type: 'attach-landed', id: 0, port }, [port]);
    if (reply.type !== 'attached') throw new Error(`the landing writer refused the landed port: ${reply.type === 'failed' ? reply.message : reply.type}`);
  }

  private onLandedError(message: string): void {
    this.stats.landedHandOffFailures++;
    if (this.stats.landedHandOffFailures === 1 || this.stats.landedHandOffFailures % 1000 === 0) {
      this.options.logger.error(
        { code: ErrorCode.readsLandedFailed, err: message, failures: this.stats.landedHandOffFailures },
        'committed rows could not be handed to the reads worker; latest values may lag until the next rows of their streams',
      );
    }
  }

  private request(request: WriterRequest, transfer: Transferable[] = []): Promise<WriterReply> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new Error('the landing writer is not running'));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.replies.set(id, { resolve, sentAt: Date.now() });
      worker.postMessage({ ...request, id }, transfer as never);
    });
  }

  private onWorkerCrash(error: Error): void {
    this.options.logger.fatal({ code: ErrorCode.landingIo, err: error.message }, 'the landing writer crashed');
    for (const [id, waiter] of this.replies) waiter.resolve({ type: 'failed', id, code: 'WORKER', retriable: false, message: error.message });
    this.replies.clear();
    this.worker = null;
    this.emit('fatal', error);
  }
}
