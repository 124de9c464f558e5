/**
 * Commits uploaded files to the central Iceberg catalog, exactly once (DESIGN flow
 * step 7). The catalog hand-off of tiering (tiering/catalog-handoff.ts).
 *
 * How a file travels:
 * 1. Tiering offers an uploaded file: it enters the outbox (outbox.ts) with its manifest
 *    entry's inputs, taken while the file is local. Ingestion never waits for any of this.
 * 2. Per table, at most one commit per `commit_interval_seconds`: waiting files get the
 *    next commit seq (persisted before anything is sent), a deterministic manifest and
 *    a snapshot on the current head whose summary carries the markers (markers.ts).
 * 3. Outcomes (sync/catalog.ts): committed → the files are committed in the outbox and
 *    the tier map in one transaction. Conflict (409) → reload, check the marker, rebuild
 *    the manifest list on the new head (the manifest is reused), retry with backoff.
 *    Unknown (5xx, timeout, reset) → reload and look for our marker BEFORE anything
 *    else: found = committed; absent = the same seq is retried. Retry-later → wait.
 *    The catalog unreachable → the commit stays pending and is resolved the same way
 *    on the next pass (also after a restart: a pending seq is always resolved first).
 * 4. Fence: before each attempt, the newest snapshot of this agent id in the table must
 *    be ours (markers.ts); otherwise this instance stops committing to that table and
 *    says why (CATALOG_FENCED).
 * Replace (warm → cold) and delete (expiry) commits take the same path with their
 * own seq; manifest upkeep folds this agent's manifests into one when they pass
 * `manifest_merge_threshold`.
 */
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import type { CatalogConfig } from '../config/catalog-schema.ts';
import type { Dataset } from '../config/dataset.ts';
import { ErrorCode, type Logger } from '../agent/log.ts';
import { backoffDelay, sleep } from '../agent/retry.ts';
import { failpoint } from '../agent/failpoint.ts';
import type { CatalogHandoff } from '../tiering/catalog-handoff.ts';
import type { TierRecord } from '../tiering/tier-map.ts';
import { Periodic } from '../tiering/periodic.ts';
import { CatalogError, type Catalog, type CommitOutcome, type TableIdent } from './catalog.ts';
import type { LoadedTable } from './iceberg/metadata.ts';
import { fencedBy, isApplied, newestMarker, type AgentIdentity } from './markers.ts';
import { Outbox, type SyncCommit, type SyncFile } from './outbox.ts';
import { SnapshotWriter, type BuiltCommit } from './snapshot-writer.ts';
import { tableIdent, TableSetup } from './table-setup.ts';
import type { TableFileIO } from './table-io.ts';
import { entryInputFor, toDataFile } from './file-entry.ts';

export interface CommitterOptions {
  dbPath: string;
  stateDir: string;
  catalog: Catalog;
  io: TableFileIO;
  config: CatalogConfig;
  datasets: Dataset[];
  plant: string;
  agentId: string;
  /** Absolute location of a warm / cold object key (what the table points at). */
  warmLocation: (key: string) => string;
  coldLocation: (key: string) => string;
  logger: Logger;
  /** A catalog error, for the metric: conflict, unknown, unavailable, rejected, fenced. */
  onError?: (kind: string) => void;
  nowMs?: () => number;
}

export interface CommitterStats {
  commits: number;
  filesCommitted: number;
  conflicts: number;
  unknownOutcomes: number;
  resolvedByMarker: number;
  errors: number;
}

type Work = { kind: 'append' } | { kind: 'merge' } | { kind: 'replace' | 'delete'; tierId: number };

const PASS_INTERVAL_MS = 1000;

export class Committer implements CatalogHandoff {
  readonly name = 'iceberg';
  readonly stats: CommitterStats = { commits: 0, filesCommitted: 0, conflicts: 0, unknownOutcomes: 0, resolvedByMarker: 0, errors: 0 };
  private readonly options: CommitterOptions;
  private readonly log: Logger;
  private readonly nowMs: () => number;
  private db: Database.Database | null = null;
  private outbox: Outbox | null = null;
  private identity: AgentIdentity | null = null;
  private writer: SnapshotWriter | null = null;
  private setup: TableSetup;
  private readonly tables = new Map<string, LoadedTable>();
  private readonly lastCommitMs = new Map<string, number>();
  private readonly fenced = new Map<string, string>();
  private readonly datasets: Map<string, Dataset>;
  private loop: Periodic | null = null;
  /** One commit at a time: appends of the loop and archive/expiry commits share the tables. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Cuts short the waits between attempts when the daemon stops (the commit stays pending). */
  private readonly stopping = new AbortController();

  constructor(options: CommitterOptions) {
    this.options = options;
    this.log = options.logger;
    this.nowMs = options.nowMs ?? Date.now;
    this.datasets = new Map(options.datasets.map((d) => [d.name, d]));
    this.setup = new TableSetup({ catalog: options.catalog, namespace: options.config.namespace, properties: options.config.table_properties, logger: options.logger });
  }

  async start(): Promise<void> {
    const db = new Database(this.options.dbPath);
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = FULL');
    this.db = db;
    this.outbox = new Outbox(db);
    this.identity = { agentId: this.options.agentId, plant: this.options.plant, instanceId: this.outbox.instanceId() };
    this.writer = new SnapshotWriter(this.options.io, this.identity);
    this.loop = new Periodic(() => this.pass(), PASS_INTERVAL_MS, (error) => this.log.error({ code: ErrorCode.catalog, err: error.message }, 'commit pass failed'));
    this.loop.start(0);
    this.log.info({ catalog: this.options.catalog.description, instance: this.identity.instanceId }, 'catalog committer started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    await this.loop?.stop();
    await this.queue.catch(() => {});
    this.db?.close();
    this.db = null;
  }

  /** Tiering hand-off: blobs need no commit; data files enter the outbox. Returns those committed. */
  async commit(files: TierRecord[]): Promise<number[]> {
    const outbox = this.requireOutbox();
    const blobs = files.filter((f) => f.kind !== 'data').map((f) => f.id);
    const data = files.filter((f) => f.kind === 'data');
    const known = outbox.knownTierIds(data.map((f) => f.id));
    const fresh: { tierId: number; dataset: string; location: string; entryJson: string }[] = [];
    for (const file of data) {
      if (known.has(file.id)) continue;
      const dataset = file.dataset ? this.datasets.get(file.dataset) : undefined;
      if (!dataset) {
        this.log.error({ code: ErrorCode.catalog, file: file.local_path, dataset: file.dataset }, 'uploaded file of an unknown dataset; not committed');
        continue;
      }
      const input = entryInputFor(this.requireDb(), this.options.stateDir, file);
      if (input === null) {
        this.log.error({ code: ErrorCode.catalog, file: file.local_path }, 'uploaded file has no hot-tier record to build its manifest entry from; not committed');
        continue;
      }
      fresh.push({ tierId: file.id, dataset: dataset.name, location: this.options.warmLocation(file.object_key), entryJson: JSON.stringify(input) });
    }
    if (fresh.length > 0) outbox.enqueue(fresh, this.nowMs() * 1000);
    return [...blobs, ...outbox.committedAmong(data.map((f) => f.id))];
  }

  /** The file is in cold at the same key: re-point its table entry (a replace commit) before warm is deleted. */
  async archived(file: TierRecord): Promise<void> {
    if (file.kind !== 'data') return;
    await this.serial(() => this.runRewrite(file, 'replace'));
  }

  /** The file leaves cold for good: remove it from its table (a delete commit) first. */
  async expired(file: TierRecord): Promise<void> {
    if (file.kind !== 'data') return;
    await this.serial(() => this.runRewrite(file, 'delete'));
  }

  /** One pass: every table with waiting files (or a pending commit) whose interval is up. */
  async pass(): Promise<void> {
    await this.serial(async () => {
      const outbox = this.requireOutbox();
      for (const name of outbox.datasetsWithWork()) {
        if (this.stopped) return;
        const pending = outbox.pendingCommit(name);
        const last = this.lastCommitMs.get(name) ?? 0;
        if (!pending && this.nowMs() - last < this.options.config.commit_interval_seconds * 1000) continue;
        if (this.fenced.has(name)) continue;
        try {
          await this.commitDataset(name);
        } catch (error) {
          this.noteError(name, error as Error);
        }
      }
    });
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => {});
    return run;
  }

  private noteError(dataset: string, error: Error): void {
    this.stats.errors++;
    const retriable = error instanceof CatalogError ? error.retriable : true;
    this.options.onError?.(retriable ? 'unavailable' : 'rejected');
    this.log.warn({ code: ErrorCode.catalog, dataset, err: error.message, retriable }, 'catalog commit did not go through; files stay in the outbox');
  }

  private async table(dataset: Dataset, reload = false): Promise<LoadedTable> {
    const cached = this.tables.get(dataset.name);
    if (cached && !reload) return cached;
    const loaded = await this.setup.ensure(dataset);
    this.tables.set(dataset.name, loaded);
    return loaded;
  }

  private ident(dataset: string): TableIdent {
    return tableIdent(this.options.config.namespace, dataset);
  }

  /** Resolves the pending commit (if any), then commits waiting files in batches. */
  private async commitDataset(name: string): Promise<void> {
    const outbox = this.requireOutbox();
    const dataset = this.datasets.get(name);
    if (!dataset) return;
    let pending = outbox.pendingCommit(name);
    if (pending && pending.kind !== 'append') {
      // A replace/delete left pending by a crash: its caller (the archiver) asks again; resolve it now if it landed.
      const table = await this.table(dataset, true);
      if (isApplied(table.metadata, this.options.agentId, pending.seq)) this.resolved(pending, table, 'marker');
      else outbox.abandon(pending.seq, 'not in the catalog after a restart; the archiver retries it', this.nowMs() * 1000);
      pending = outbox.pendingCommit(name);
    }
    // Another commit right away only for a backlog (a full batch, or what waited behind
    // a pending commit); files that arrived during this commit wait for the next interval.
    let backlog = pending !== undefined;
    for (;;) {
      if (!pending) {
        const max = this.options.config.max_files_per_commit;
        const files = outbox.waitingFiles(name, max);
        if (files.length === 0) return;
        backlog = files.length >= max;
        const table = await this.table(dataset);
        const floor = newestMarker(table.metadata, this.options.agentId)?.seq ?? 0;
        pending = outbox.allocate(name, 'append', floor, files.map((f) => f.tier_id), {}, this.nowMs() * 1000);
      }
      const committed = await this.drive(dataset, pending, { kind: 'append' });
      if (!committed) return;
      this.lastCommitMs.set(name, this.nowMs());
      pending = undefined;
      if (!backlog || outbox.waitingFiles(name, 1).length === 0) break;
    }
    await this.mergeManifestsIfNeeded(dataset);
  }

  /** Manifest upkeep: past the threshold, this agent's manifests in the table become one (a replace commit). */
  private async mergeManifestsIfNeeded(dataset: Dataset): Promise<void> {
    const table = await this.table(dataset);
    const own = await this.requireWriter().ownManifestCount(table);
    if (own <= this.options.config.manifest_merge_threshold) return;
    const outbox = this.requireOutbox();
    if (outbox.pendingCommit(dataset.name)) return;
    const floor = newestMarker(table.metadata, this.options.agentId)?.seq ?? 0;
    const commit = outbox.allocate(dataset.name, 'rewrite', floor, [], { merge: true }, this.nowMs() * 1000);
    if (await this.drive(dataset, commit, { kind: 'merge' })) this.log.info({ dataset: dataset.name, manifests: own }, 'manifests of this agent merged into one');
  }

  /**
   * Drives one allocated commit to a known outcome: true when it is in the catalog, false
   * when it must wait (catalog unavailable, retries exhausted, fenced).
   */
  private async drive(dataset: Dataset, commit: SyncCommit, work: Work): Promise<boolean> {
    const { catalog, config } = this.options;
    const outbox = this.requireOutbox();
    let table = await this.table(dataset, commit.attempts > 0);
    let conflicts = 0;
    for (let attempt = 0; !this.stopped; attempt++) {
      // A previous attempt (before a crash, or an unknown outcome) may have landed.
      if (isApplied(table.metadata, this.options.agentId, commit.seq)) {
        this.resolved(commit, table, 'marker');
        return true;
      }
      const holder = fencedBy(table.metadata, this.requireIdentity(), config.take_over_from ?? null);
      if (holder !== null) {
        this.fenced.set(dataset.name, holder);
        this.options.onError?.('fenced');
        this.log.error(
          { code: ErrorCode.catalogFenced, dataset: dataset.name, agent_id: this.options.agentId, holder, instance: this.requireIdentity().instanceId },
          `another lakeside instance (${holder}) commits to this table as agent ${this.options.agentId}; this one stops committing to it. ` +
            `If this machine replaces that one, set catalog.take_over_from: ${holder}`,
        );
        return false;
      }
      const built = await this.build(dataset, table, commit, work);
      if (built === null) {
        outbox.abandon(commit.seq, 'nothing to commit', this.nowMs() * 1000);
        return true;
      }
      outbox.noteAttempt(commit.seq, null, built.snapshotId);
      failpoint('catalog.before-commit', [{ path: dataset.name }]);
      let outcome: CommitOutcome;
      try {
        // A fresh key per built request: a rebuilt commit is another request (sent only where the server advertises keys).
        outcome = await catalog.commit(this.ident(dataset.name), built.requirements, built.updates, { idempotencyKey: uuidv7() });
      } catch (error) {
        outbox.noteAttempt(commit.seq, (error as Error).message, null);
        throw error;
      }
      failpoint('catalog.after-commit', [{ path: dataset.name }]);
      if (outcome.kind === 'committed') {
        this.tables.set(dataset.name, outcome.table);
        this.resolved(commit, outcome.table, 'response', built.snapshotId);
        return true;
      }
      outbox.noteAttempt(commit.seq, `${outcome.kind}: ${outcome.detail}`, null);
      if (outcome.kind === 'conflict') {
        this.stats.conflicts++;
        this.options.onError?.('conflict');
        if (++conflicts > config.max_conflict_retries) {
          this.log.warn({ code: ErrorCode.catalog, dataset: dataset.name, seq: commit.seq, conflicts }, 'commit kept conflicting; it waits for the next pass');
          return false;
        }
        await sleep(backoffDelay(conflicts - 1, { initialMs: 100, maxMs: 5_000 }), this.stopping.signal).catch(() => {});
      } else if (outcome.kind === 'unknown') {
        this.stats.unknownOutcomes++;
        this.options.onError?.('unknown');
        this.log.warn({ code: ErrorCode.catalog, dataset: dataset.name, seq: commit.seq, detail: outcome.detail }, 'commit outcome unknown; reloading to look for our marker');
      } else {
        this.options.onError?.('unavailable');
        await sleep(Math.min(outcome.afterMs, 60_000), this.stopping.signal).catch(() => {});
      }
      table = await this.table(dataset, true);
    }
    return false;
  }

  private async build(dataset: Dataset, table: LoadedTable, commit: SyncCommit, work: Work): Promise<BuiltCommit | null> {
    const writer = this.requireWriter();
    const outbox = this.requireOutbox();
    if (work.kind === 'append') {
      const files = outbox.filesOf(commit.seq).filter((f) => f.state === 'batched');
      if (files.length === 0) return null;
      return writer.append(table, commit.seq, files.map((f) => this.dataFile(dataset, table, f, f.location)));
    }
    if (work.kind === 'merge') {
      const merged = await writer.rewrite(table, commit.seq, { remove: new Set(), replacements: new Map(), mergeOwnManifests: true, operation: 'replace' });
      return merged.mergedManifests >= 2 ? merged : null;
    }
    const file = outbox.fileByTierId(work.tierId);
    if (!file) return null;
    const plan = JSON.parse(commit.plan_json) as { from: string; to?: string };
    const result = await writer.rewrite(table, commit.seq, {
      remove: new Set([plan.from]),
      replacements: plan.to ? new Map([[plan.from, plan.to]]) : new Map(),
      mergeOwnManifests: false,
      operation: work.kind === 'replace' ? 'replace' : 'delete',
    });
    if (result.removed.size === 0) {
      this.log.warn({ code: ErrorCode.catalog, dataset: dataset.name, file: plan.from }, 'file to re-point is no longer in the table (rewritten at the centre?); nothing to commit');
      return null;
    }
    return result;
  }

  private dataFile(dataset: Dataset, table: LoadedTable, file: SyncFile, location: string) {
    return toDataFile(dataset, table, this.options.plant, location, file.entry_json);
  }

  private resolved(commit: SyncCommit, table: LoadedTable, how: 'response' | 'marker', snapshotId: bigint | null = null): void {
    const outbox = this.requireOutbox();
    const newest = newestMarker(table.metadata, this.options.agentId);
    const id = snapshotId ?? (newest && newest.seq === commit.seq ? newest.snapshot['snapshot-id'] : null);
    const plan = JSON.parse(commit.plan_json) as { tierId?: number; to?: string };
    const ids = outbox.markCommitted(commit.seq, id, this.nowMs() * 1000, () => {
      if (commit.kind === 'replace' && plan.tierId !== undefined && plan.to) outbox.setLocation(plan.tierId, plan.to, 'replaced');
      if (commit.kind === 'delete' && plan.tierId !== undefined) outbox.setLocation(plan.tierId, '', 'deleted');
    });
    this.stats.commits++;
    this.stats.filesCommitted += ids.length;
    if (how === 'marker') this.stats.resolvedByMarker++;
    this.log.info({ dataset: commit.dataset, seq: commit.seq, kind: commit.kind, files: ids.length, snapshot: id?.toString() ?? null, how }, 'iceberg commit');
  }

  /** A replace (warm → cold) or delete (expiry) of one file, to a known outcome; throws if it cannot be made now. */
  private async runRewrite(file: TierRecord, kind: 'replace' | 'delete'): Promise<void> {
    const outbox = this.requireOutbox();
    const synced = outbox.fileByTierId(file.id);
    if (!synced || synced.state === 'deleted' || (kind === 'replace' && synced.state === 'replaced')) return;
    if (synced.state !== 'committed' && synced.state !== 'replaced') throw new CatalogError('CATALOG_NOT_COMMITTED', `${file.object_key} is not committed yet`, true);
    const dataset = this.datasets.get(synced.dataset);
    if (!dataset) return;
    if (this.fenced.has(dataset.name)) throw new CatalogError(ErrorCode.catalogFenced, `table ${dataset.name}: this instance is fenced`, false);
    let pending = outbox.pendingCommit(dataset.name);
    if (pending && pending.kind === 'append') {
      if (!(await this.drive(dataset, pending, { kind: 'append' }))) throw new CatalogError('CATALOG_BUSY', `table ${dataset.name}: an earlier commit is still pending`, true);
      pending = undefined;
    }
    if (pending) {
      const plan = JSON.parse(pending.plan_json) as { tierId?: number };
      if (plan.tierId !== file.id) outbox.abandon(pending.seq, 'superseded', this.nowMs() * 1000);
    }
    pending = outbox.pendingCommit(dataset.name);
    if (!pending) {
      const table = await this.table(dataset);
      const floor = newestMarker(table.metadata, this.options.agentId)?.seq ?? 0;
      const plan = { tierId: file.id, from: synced.location, ...(kind === 'replace' ? { to: this.options.coldLocation(file.object_key) } : {}) };
      pending = outbox.allocate(dataset.name, kind, floor, [], plan, this.nowMs() * 1000);
    }
    if (!(await this.drive(dataset, pending, { kind, tierId: file.id }))) {
      throw new CatalogError('CATALOG_PENDING', `table ${dataset.name}: the ${kind} of ${file.object_key} is not committed yet`, true);
    }
    if (outbox.pendingCommit(dataset.name)?.seq === pending.seq) outbox.abandon(pending.seq, 'nothing to commit', this.nowMs() * 1000);
  }

  private requireDb(): Database.Database {
    if (!this.db) throw new Error('committer not started');
    return this.db;
  }
  private requireOutbox(): Outbox {
    if (!this.outbox) throw new Error('committer not started');
    return this.outbox;
  }
  private requireIdentity(): AgentIdentity {
    if (!this.identity) throw new Error('committer not started');
    return this.identity;
  }
  private requireWriter(): SnapshotWriter {
    if (!this.writer) throw new Error('committer not started');
    return this.writer;
  }

  /** For status and metrics. */
  outboxCounts(): ReturnType<Outbox['counts']> | null {
    return this.outbox?.counts() ?? null;
  }

  fencedTables(): Map<string, string> {
    return new Map(this.fenced);
  }
}
