/**
 * On-site reads as one component: the DuckDB query engine over the hot tier, the
 * latest-value cache fed at commit, and the HTTP API in front of both, all on the reads
 * worker (agent/reads/reads-worker.ts). This main-thread half starts, feeds and
 * supervises it.
 *
 * Invariants:
 * - Reads never hold up ingestion, and ingestion never delays reads: the worker has
 *   its own event loop. Committed rows go from the landing writer to the worker over a
 *   MessageChannel (columnar, transferred; agent/reads/landed-batch.ts) and never pass
 *   through this thread. What crosses from here is small: health/readiness when they
 *   change (`healthChanged()`), and a 'files-changed' signal after each seal, which
 *   refreshes the SQL views. Freshness: a row acknowledged is already queued at the
 *   worker (the writer posts it before replying), so /v1/latest shows it at once; SQL
 *   shows it after its seal and the refresh (~ seal_interval_ms + the seal).
 * - start() after the landing log and the sealer (the engine reads `hot_files`); the
 *   API listens last, once everything behind it answers, and start() resolves only
 *   then; a start failure rejects with the worker's error code (e.g.
 *   API_EXPOSED_WITHOUT_TOKENS). stop() closes the API first, then the engine; safe to
 *   call twice.
 * - A crash of the worker (an uncaught error, or the thread dying) never stops
 *   ingestion: it is logged at error with code READS_WORKER_CRASHED, and the worker is
 *   restarted after a backoff (`restartInitialMs` doubling up to 30 s, with jitter;
 *   back to the start after a minute up) on the same port, so the API's URL does not
 *   change. The restarted cache starts empty (as at any start) and fills with the next
 *   rows of each stream; READS_WORKER_RESTARTED is logged once it listens again. While
 *   it is down, the API does not answer (a probe of /readyz fails, as it should).
 * - GET /metrics and GET /v1/status are served by the worker but answered here, where
 *   the metrics registry and the status live ('port-call' / 'port-reply'); so are the
 *   fetches of evicted blobs and of evicted data files (`include_warm`), which tiering
 *   does on this thread.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { LoadedConfig } from '../config/loader.ts';
import type { HealthPort, MetricsPort, StatusPort } from './api/ports.ts';
import type { Sealer } from './hot/sealer.ts';
import type { LandingLog } from './landing/landing-log.ts';
import { onceStop, type Component } from './lifecycle.ts';
import { ErrorCode, type Logger } from './log.ts';
import { relayLine } from './reads/log-relay.ts';
import type { BridgedPort, FromReadsWorker, ReadsWorkerData, SerializedError, ToReadsWorker } from './reads/reads-protocol.ts';
import { backoffDelay } from './retry.ts';

const WORKER_URL = new URL('./reads/reads-worker.ts', import.meta.url);
const STOP_TIMEOUT_MS = 15_000;
const STABLE_AFTER_MS = 60_000;
const HEALTH_POLL_MS = 1_000;

export interface OnSiteReadsOptions {
  loaded: LoadedConfig;
  dbPath: string;
  landing: LandingLog;
  sealer: Sealer;
  /** The blob store's directory (the worker builds its own view of it). */
  blobsDir: string;
  health: HealthPort;
  /** GET /metrics and GET /v1/status (observability.ts). */
  metrics?: MetricsPort;
  status?: StatusPort;
  /** Evicted blobs fetched back from warm/cold (tiering's read cache). */
  fetchEvictedBlob?: (sha256: string) => Promise<string | null>;
  /** Evicted data files of a time range fetched into the read cache (POST /v1/query include_warm). */
  fetchWarmRange?: (range: { fromUs: number; toUs: number; dataset?: string }) => Promise<unknown>;
  logger: Logger;
  /** First restart delay after a crash (default 500 ms). */
  restartInitialMs?: number;
}

/** The worker's error, rebuilt on this side with its name and stable code. */
class ReadsStartError extends Error {
  readonly code: string | undefined;
  constructor(error: SerializedError) {
    super(error.message);
    this.name = error.name;
    this.code = error.code;
  }
}

export class OnSiteReads implements Component {
  readonly name = 'on-site-reads';
  /** The API's address once listening, e.g. http://127.0.0.1:7070. */
  url: string | null = null;
  /** Times the worker crashed and was (or is being) restarted. */
  crashes = 0;
  private worker: Worker | null = null;
  private listenPort: number;
  private stopping = false;
  private lastHealth = '';
  private restartAttempt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private unsubscribe: (() => void) | null = null;
  /** A restart under way (stop() waits for it, then stops what it started). */
  private spawning: Promise<void> | null = null;
  private readonly options: OnSiteReadsOptions;
  private readonly refreshes = new Map<number, (error: string | undefined) => void>();
  private nextRefresh = 1;

  constructor(options: OnSiteReadsOptions) {
    this.options = options;
    this.listenPort = options.loaded.config.api.listen_port;
  }

  async start(): Promise<void> {
    await this.spawn();
    this.options.logger.info({ url: this.url }, 'API listening');
    this.unsubscribe = this.options.sealer.on('files-changed', (change) =>
      this.send({ type: 'files-changed', added: change.added.length, removed: change.removed.length }),
    );
    this.healthTimer = setInterval(() => this.healthChanged(), HEALTH_POLL_MS);
    this.healthTimer.unref();
  }

  /** Sends health and readiness to the worker if they changed (the daemon calls it on every change; a timer as well). */
  healthChanged(): void {
    const health = this.options.health.health();
    const ready = this.options.health.ready();
    const text = JSON.stringify([health, ready]);
    if (text === this.lastHealth || !this.worker) return;
    this.lastHealth = text;
    this.send({ type: 'health', health, ready });
  }

  /**
   * Resolves once the SQL views list only what the registry lists now: tiering calls it
   * after unregistering evicted files and before unlinking them. Without a running
   * worker there are no views to update (a worker started later reads the registry).
   */
  async refreshViews(): Promise<void> {
    await this.spawning?.catch(() => {});
    const worker = this.worker;
    if (!worker) return;
    const id = this.nextRefresh++;
    await new Promise<void>((resolve, reject) => {
      this.refreshes.set(id, (error) => (error === undefined ? resolve() : reject(new Error(`query views not refreshed: ${error}`))));
      worker.postMessage({ type: 'refresh', id } satisfies ToReadsWorker);
    });
  }

  private settleRefresh(id: number, error: string | undefined): void {
    this.refreshes.get(id)?.(error);
    this.refreshes.delete(id);
  }

  /** A worker gone (crash or stop) answers no refresh; its successor reads the registry afresh. */
  private settleAllRefreshes(): void {
    for (const settle of this.refreshes.values()) settle(undefined);
    this.refreshes.clear();
  }

  /** Crash tests only: with the `reads.crash` failpoint armed, the worker throws an uncaught error. */
  crashForTest(): void {
    this.send({ type: 'crash' });
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    this.unsubscribe?.();
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.spawning?.catch(() => {});
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      worker.on('message', (message: FromReadsWorker) => message.type === 'stopped' && resolve());
      worker.once('exit', () => resolve());
      timer = setTimeout(resolve, STOP_TIMEOUT_MS);
      worker.postMessage({ type: 'stop' } satisfies ToReadsWorker);
    });
    clearTimeout(timer);
    await worker.terminate();
    this.settleAllRefreshes();
  });

  /** Starts a worker, resolves once its API listens; rejects (worker ended) if it cannot start. */
  private async spawn(): Promise<void> {
    const { config } = this.options.loaded;
    const channel = new MessageChannel();
    await this.options.landing.attachLandedPort(channel.port2);
    const workerData: ReadsWorkerData = {
      config,
      dbPath: this.options.dbPath,
      blobsDir: this.options.blobsDir,
      logLevel: this.options.logger.level,
      listenPort: this.listenPort,
      landed: channel.port1,
      bridged: {
        metrics: this.options.metrics !== undefined,
        status: this.options.status !== undefined,
        blob: this.options.fetchEvictedBlob !== undefined,
        warm: this.options.fetchWarmRange !== undefined,
      },
    };
    const worker = new Worker(WORKER_URL, { workerData, transferList: [channel.port1] });
    const logger = this.options.logger;
    worker.on('message', (message: FromReadsWorker) => {
      if (message.type === 'log') relayLine(logger, message.line, { component: 'reads-worker' });
      else if (message.type === 'port-call') void this.answerPortCall(worker, message.id, message.port, message.arg);
      else if (message.type === 'refreshed') this.settleRefresh(message.id, message.error);
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: FromReadsWorker) => {
        if (message.type === 'listening') {
          this.listenPort = message.port;
          this.url = message.url;
          settle();
          resolve();
        } else if (message.type === 'start-failed') {
          settle();
          void worker.terminate();
          reject(new ReadsStartError(message.error));
        }
      };
      const onExit = (code: number) => {
        settle();
        reject(new Error(`the reads worker exited (code ${code}) before its API listened`));
      };
      const onError = (error: Error) => {
        settle();
        reject(error);
      };
      const settle = () => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.once('error', onError);
    });
    this.worker = worker;
    this.startedAt = Date.now();
    this.lastHealth = '';
    this.healthChanged();
    worker.on('error', (error) => this.onCrash(worker, error));
    worker.once('exit', (code) => this.onCrash(worker, new Error(`the reads worker exited with code ${code}`)));
  }

  private onCrash(worker: Worker, error: Error): void {
    if (this.worker !== worker || this.stopping) return; // already handled, or a stop
    this.worker = null;
    this.settleAllRefreshes();
    this.crashes++;
    void worker.terminate();
    if (Date.now() - this.startedAt > STABLE_AFTER_MS) this.restartAttempt = 0;
    const delayMs = backoffDelay(this.restartAttempt++, { initialMs: this.options.restartInitialMs ?? 500, maxMs: 30_000 });
    this.options.logger.error(
      { code: ErrorCode.readsWorkerCrashed, err: error.message, stack: error.stack, restart_in_ms: delayMs, crashes: this.crashes },
      'the reads worker (HTTP API, latest values, SQL) crashed; ingestion continues, restarting it',
    );
    this.scheduleRestart(delayMs);
  }

  private scheduleRestart(delayMs: number): void {
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.spawning = this.spawn();
      this.spawning.then(
        () => {
          this.spawning = null;
          this.options.logger.warn({ code: ErrorCode.readsWorkerRestarted, url: this.url, crashes: this.crashes }, 'the reads worker is back; API listening');
        },
        (error: Error) => {
          this.spawning = null;
          if (this.stopping) return;
          const retryMs = backoffDelay(this.restartAttempt++, { initialMs: this.options.restartInitialMs ?? 500, maxMs: 30_000 });
          this.options.logger.error(
            { code: ErrorCode.readsWorkerCrashed, err: error.message, restart_in_ms: retryMs },
            'the reads worker could not restart; trying again',
          );
          this.scheduleRestart(retryMs);
        },
      );
    }, delayMs);
  }

  /** GET /metrics and GET /v1/status are served by the worker but computed here, where the metrics live. */
  private async answerPortCall(worker: Worker, id: number, port: BridgedPort, arg: string | undefined): Promise<void> {
    try {
      const value =
        port === 'metrics'
          ? await this.options.metrics!.metrics()
          : port === 'status'
            ? await this.options.status!.status()
            : port === 'blob'
              ? await this.options.fetchEvictedBlob!(arg ?? '')
              : await this.options.fetchWarmRange!(JSON.parse(arg ?? '{}') as { fromUs: number; toUs: number; dataset?: string });
      worker.postMessage({ type: 'port-reply', id, ok: true, value } satisfies ToReadsWorker);
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      const code = (e as { code?: unknown }).code;
      worker.postMessage({ type: 'port-reply', id, ok: false, error: { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) } } satisfies ToReadsWorker);
    }
  }

  private send(message: ToReadsWorker): void {
    this.worker?.postMessage(message);
  }
}
