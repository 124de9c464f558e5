/**
 * The hot-tier component: runs seal and compaction on a worker thread (its own
 * SQLite connection), one operation at a time, on two timers.
 *
 * Lifecycle (agent/lifecycle.ts): the constructor does no I/O; `start()` spawns the
 * worker and resolves once start-up recovery has run; `stop()` stops the timers,
 * waits for the running step, seals once more (so a drained landing log leaves
 * nothing behind), closes the worker's connection and ends it; safe to call twice.
 * A worker that dies is replaced on the next operation, recovery first.
 *
 * Emits `files-changed` after every step that added or removed registered files, so
 * the query engine can refresh its views, and `step-done` after every step (metrics).
 * The compaction step also merges closed hours and days into fewer files (merge.ts).
 *
 * `applyDatasetSettings` changes a dataset's compaction window and L1 target size
 * live (a central policy, dataset-settings.ts): validated whole first (a refusal
 * changes nothing), kept here (a respawned worker starts with them) and sent to the
 * worker in step order, so a seal or compaction step runs wholly on the old values or
 * wholly on the new ones.
 */
import { Worker } from 'node:worker_threads';
import type { DatasetConfig, LakesideConfig } from '../../config/schema.ts';
import type { HotFileRecord } from '../landing/schema.ts';
import { onceStop, type Component } from '../lifecycle.ts';
import { hotSettingsProblem, type DatasetHotSettings } from './dataset-settings.ts';
import type { RecoveryReport } from './recovery.ts';
import type { CompactAllResult, SealAllResult, SealRequest, SealResponse, SealWorkerData } from './seal-protocol.ts';

export interface HotLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SealerOptions {
  dbPath: string;
  stateDir: string;
  datasets: DatasetConfig[];
  /** The `hot` config section: seal_interval_ms, compaction_interval_ms, compaction_window_minutes, compaction_grace_seconds, row_group_rows, seal_max_rows. */
  hot: LakesideConfig['hot'];
  /** Rows per L1 file at most (default 4M). */
  l1_max_rows?: number;
  /**
   * How long the inputs of a merge stay on disk once unregistered (default 60 s), so a
   * query that bound the old file list before the view refresh can finish reading them.
   */
  retired_unlink_delay_ms?: number;
  logger: HotLogger;
}

export interface FilesChanged {
  added: HotFileRecord[];
  /** Paths relative to the state directory. */
  removed: string[];
}

/** One seal or compaction step, for metrics: its wall time and what it did per dataset. */
export interface StepDone {
  op: 'seal' | 'compact';
  ms: number;
  /** False when the whole step threw (the worker failed); per-dataset failures are in `failed`. */
  ok: boolean;
  /** Rows sealed or compacted, per dataset that did any. */
  rows: { dataset: string; rows: number }[];
  /** Datasets whose step failed. */
  failed: string[];
}

export interface SealerEvents {
  'files-changed': FilesChanged;
  'step-done': StepDone;
}

type Listener<T> = (payload: T) => void;

/** A minimal typed emitter: listeners run synchronously; one that throws is logged, not propagated. */
class TypedEmitter<Events> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();
  protected onListenerError: (error: unknown) => void = () => {};

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}

const WORKER_URL = new URL('./seal-worker.ts', import.meta.url);

export class Sealer extends TypedEmitter<SealerEvents> implements Component {
  readonly name = 'sealer';
  private readonly options: SealerOptions;
  private worker: Promise<Worker> | null = null;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private tail: Promise<unknown> = Promise.resolve();
  private sealTimer: NodeJS.Timeout | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private started = false;
  /** The last start-up (or respawn) recovery report. */
  lastRecovery: RecoveryReport | null = null;
  /** Per-dataset settings in force (datasets not named use the config's). */
  private datasetSettings: Record<string, DatasetHotSettings> = {};

  constructor(options: SealerOptions) {
    super();
    this.options = options;
    this.onListenerError = (error) => options.logger.error({ err: error }, 'files-changed listener failed');
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.run(() => this.ensureWorker());
    this.scheduleSeal();
    this.scheduleCompaction();
  }

  readonly stop = onceStop(async () => {
    this.stopping = true;
    if (this.sealTimer) clearTimeout(this.sealTimer);
    if (this.compactTimer) clearTimeout(this.compactTimer);
    await this.tail;
    if (this.worker) {
      try {
        await this.sealInternal();
      } catch (error) {
        this.options.logger.error({ err: error, code: 'SEAL_FAILED' }, 'final seal failed; rows stay landed');
      }
      const worker = await this.worker.catch(() => null);
      if (worker) {
        await this.post(worker, { id: 0, op: 'close' }).catch(() => undefined);
        await worker.terminate();
      }
      this.worker = null;
    }
  });

  /**
   * Replaces the per-dataset settings: a dataset not named (or named with the config's
   * values) goes back to the config's window and row cap; names that are not datasets
   * of this sealer (the `blobs` policy) are ignored. Throws, changing nothing, on a
   * window that does not divide a day. Returns what is now in force.
   */
  applyDatasetSettings(settings: Record<string, DatasetHotSettings>): Record<string, DatasetHotSettings> {
    const known = new Set(this.options.datasets.map((d) => d.name));
    const next = Object.fromEntries(Object.entries(settings).filter(([name]) => known.has(name)).map(([name, s]) => [name, { ...s }]));
    const problem = hotSettingsProblem(next);
    if (problem) throw new Error(problem);
    this.datasetSettings = next;
    if (this.started && !this.stopping) {
      // In step order; with no live worker, the next one starts with `datasetSettings`.
      void this.run(async () => {
        const worker = this.worker ? await this.worker.catch(() => null) : null;
        if (worker) await this.post(worker, { id: 0, op: 'settings', datasets: next });
      }).catch((error) => this.options.logger.error({ err: error, code: 'SEAL_FAILED' }, 'sending dataset settings to the seal worker failed'));
    }
    return this.currentDatasetSettings();
  }

  /** Every dataset's window and target size in force (the config's where no setting names it). */
  currentDatasetSettings(): Record<string, DatasetHotSettings> {
    return Object.fromEntries(
      this.options.datasets.map((d) => [d.name, this.datasetSettings[d.name] ?? { compactionWindowMinutes: this.options.hot.compaction_window_minutes, targetFileBytes: null }]),
    );
  }

  /** The largest compaction window in force over all datasets (the tiering waits that long for an hour's merge). */
  maxCompactionWindowMinutes(): number {
    return Math.max(this.options.hot.compaction_window_minutes, ...Object.values(this.currentDatasetSettings()).map((s) => s.compactionWindowMinutes));
  }

  /** Seals every dataset now (after any running step). */
  sealNow(): Promise<SealAllResult> {
    if (this.stopping) return Promise.reject(new Error('sealer is stopped'));
    return this.sealInternal();
  }

  /** Compacts every closed window now, as if the clock read `nowUs`. */
  compactNow(nowUs: number = Date.now() * 1000): Promise<CompactAllResult> {
    if (this.stopping) return Promise.reject(new Error('sealer is stopped'));
    return this.run(async () => {
      const started = performance.now();
      const result = (await this.timed('compact', started, () => this.request({ id: 0, op: 'compact', nowUs }))) as CompactAllResult;
      const steps = [...result.results, ...result.merges];
      const added = steps.flatMap((r) => r.added);
      const removed = steps.flatMap((r) => r.removed);
      for (const r of result.results) {
        for (const e of r.errors) this.options.logger.error({ code: 'COMPACTION_FAILED', dataset: r.dataset, window_start_us: e.windowStartUs, err: e.message }, 'compaction of a window failed');
      }
      for (const r of result.merges) {
        for (const e of r.errors) this.options.logger.error({ code: 'MERGE_FAILED', dataset: r.dataset, span_start_us: e.spanStartUs, err: e.message }, 'merge of a closed hour or day failed');
      }
      for (const f of result.failures) this.options.logger.error({ code: 'COMPACTION_FAILED', dataset: f.dataset, err: f.message }, 'compaction failed');
      if (added.length || removed.length) this.emit('files-changed', { added, removed });
      this.emitStep('compact', started, result.results, [...result.failures.map((f) => f.dataset), ...result.results.filter((r) => r.errors.length).map((r) => r.dataset)]);
      return result;
    });
  }

  private sealInternal(): Promise<SealAllResult> {
    return this.run(async () => {
      const started = performance.now();
      const result = (await this.timed('seal', started, () => this.request({ id: 0, op: 'seal' }))) as SealAllResult;
      for (const f of result.failures) this.options.logger.error({ code: 'SEAL_FAILED', dataset: f.dataset, err: f.message }, 'seal failed; rows stay landed');
      const added = result.results.flatMap((r) => r.files);
      if (added.length) this.emit('files-changed', { added, removed: [] });
      this.emitStep('seal', started, result.results, result.failures.map((f) => f.dataset));
      return result;
    });
  }

  /** Runs a step's request; a step that throws is reported as failed before rethrowing. */
  private async timed(op: StepDone['op'], started: number, step: () => Promise<unknown>): Promise<unknown> {
    try {
      return await step();
    } catch (error) {
      this.emit('step-done', { op, ms: performance.now() - started, ok: false, rows: [], failed: [] });
      throw error;
    }
  }

  private emitStep(op: StepDone['op'], started: number, results: { dataset: string; rows: number }[], failed: string[]): void {
    const rows = results.filter((r) => r.rows > 0).map((r) => ({ dataset: r.dataset, rows: r.rows }));
    this.emit('step-done', { op, ms: performance.now() - started, ok: true, rows, failed });
  }

  /** Serialises operations: one at a time, in call order, a failure does not block the next. */
  private run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task);
    this.tail = next.catch(() => undefined);
    return next;
  }

  private scheduleSeal(): void {
    if (this.stopping) return;
    this.sealTimer = setTimeout(() => {
      this.sealInternal()
        .catch((error) => this.options.logger.error({ err: error, code: 'SEAL_FAILED' }, 'seal failed'))
        .finally(() => this.scheduleSeal());
    }, this.options.hot.seal_interval_ms);
  }

  private scheduleCompaction(): void {
    if (this.stopping) return;
    this.compactTimer = setTimeout(() => {
      this.compactNow()
        .catch((error) => this.options.logger.error({ err: error, code: 'COMPACTION_FAILED' }, 'compaction failed'))
        .finally(() => this.scheduleCompaction());
    }, this.options.hot.compaction_interval_ms);
  }

  private spawn(): Worker {
    const o = this.options;
    const data: SealWorkerData = {
      dbPath: o.dbPath,
      stateDir: o.stateDir,
      datasets: o.datasets,
      compactionWindowMinutes: o.hot.compaction_window_minutes,
      compactionGraceSeconds: o.hot.compaction_grace_seconds,
      rowGroupRows: o.hot.row_group_rows,
      sealMaxRows: o.hot.seal_max_rows,
      l1MaxRows: o.l1_max_rows ?? 4_000_000,
      datasetSettings: this.datasetSettings,
      retiredUnlinkDelayMs: o.retired_unlink_delay_ms ?? 60_000,
    };
    const worker = new Worker(WORKER_URL, { workerData: data });
    worker.on('message', (response: SealResponse) => {
      const waiter = this.waiting.get(response.id);
      if (!waiter) return;
      this.waiting.delete(response.id);
      if (response.ok) waiter.resolve(response.result);
      else waiter.reject(Object.assign(new Error(response.message), { workerStack: response.stack }));
    });
    const fail = (error: Error): void => {
      this.worker = null;
      for (const waiter of this.waiting.values()) waiter.reject(error);
      this.waiting.clear();
    };
    worker.on('error', (error) => {
      o.logger.error({ err: error, code: 'SEAL_FAILED' }, 'seal worker failed; it is restarted on the next step');
      fail(error);
    });
    worker.on('exit', (code) => {
      if (this.waiting.size > 0) fail(new Error(`seal worker exited with code ${code}`));
      else this.worker = null;
    });
    return worker;
  }

  /** A live worker, spawned and recovered if there is none. Only called inside `run`. */
  private ensureWorker(): Promise<Worker> {
    if (this.worker) return this.worker;
    const worker = this.spawn();
    const ready = (async () => {
      const report = (await this.post(worker, { id: 0, op: 'recover' })) as RecoveryReport;
      this.lastRecovery = report;
      const { tempFilesDeleted, orphansDeleted, missing } = report;
      if (tempFilesDeleted.length || orphansDeleted.length) {
        this.options.logger.info({ temp_files: tempFilesDeleted.length, orphans: orphansDeleted.length }, 'hot tier recovered: removed unregistered files');
      }
      if (missing.length) {
        this.options.logger.error({ code: 'HOT_FILES_MISSING', paths: missing.map((m) => m.path) }, 'registered hot-tier files are missing on disk');
      }
      return worker;
    })();
    this.worker = ready;
    ready.catch(() => {
      if (this.worker === ready) this.worker = null;
      void worker.terminate();
    });
    return ready;
  }

  private async request(request: SealRequest): Promise<unknown> {
    const worker = await this.ensureWorker();
    return this.post(worker, request);
  }

  private post(worker: Worker, request: SealRequest): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ ...request, id });
    });
  }
}
