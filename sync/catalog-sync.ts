/**
 * The daemon's catalog component: opens the warm and cold stores (shared with
 * tiering), the configured catalog (REST or the file-system catalog in the warm
 * store), the file IO for manifests, and the committer; reconciles at start and on a
 * schedule. With `catalog.type: none` or no warm store, there is no committer and
 * tiering counts uploaded files as committed.
 *
 * Order: started before tiering (tiering hands files to the committer), stopped after
 * it; the stores close last, after the committer's last commit attempt.
 */
import type { LakesideConfig } from '../config/schema.ts';
import type { Dataset } from '../config/dataset.ts';
import type { Logger } from '../agent/log.ts';
import { ErrorCode } from '../agent/log.ts';
import type { Component } from '../agent/lifecycle.ts';
import { openStore } from '../tiering/stores/open-store.ts';
import type { ObjectStore } from '../tiering/stores/object-store.ts';
import { Periodic } from '../tiering/periodic.ts';
import Database from 'better-sqlite3';
import type { Catalog } from './catalog.ts';
import type { CatalogHandoff } from '../tiering/catalog-handoff.ts';
import { Committer } from './committer.ts';
import { FileSystemCatalog } from './fs-catalog.ts';
import { RestCatalog } from './rest-catalog.ts';
import { reconcile, type TableReconciliation } from './reconcile.ts';
import { locationOf, storeLocation, StoreTableFileIO, type StoreMount } from './table-io-stores.ts';
import type { TableFileIO } from './table-io.ts';

export interface CatalogSyncOptions {
  config: LakesideConfig;
  datasets: Dataset[];
  dbPath: string;
  logger: Logger;
  onError?: (kind: string) => void;
  /** Tests: stores in place of the configured ones. */
  warmStore?: ObjectStore;
  coldStore?: ObjectStore;
}

export interface OpenedCatalog {
  catalog: Catalog;
  io: TableFileIO;
  warmLocation: (key: string) => string;
  coldLocation: (key: string) => string;
  /** The cold location, or null with no cold store (what reconciliation asks for). */
  coldLocationIfAny: (key: string) => string | null;
}

/** The catalog and file IO a config names (null: no catalog). The caller closes them. */
export function openCatalog(config: LakesideConfig, warm: ObjectStore | null, cold: ObjectStore | null): OpenedCatalog | null {
  if (config.catalog.type === 'none' || !warm) return null;
  const mounts: StoreMount[] = [{ base: storeLocation(warm), store: warm }];
  if (cold) mounts.push({ base: storeLocation(cold), store: cold });
  const io = new StoreTableFileIO({ mounts, ...(config.tiering.warm?.url.startsWith('s3:') ? { s3Template: config.tiering.warm } : {}) });
  const catalog: Catalog =
    config.catalog.type === 'rest'
      ? new RestCatalog({ config: config.catalog.rest! })
      : new FileSystemCatalog({
          store: warm,
          rootPrefix: config.catalog.root_prefix,
          expiry: { maxAgeMs: config.catalog.snapshot_retention_hours * 3_600_000, minToKeep: config.catalog.min_snapshots_kept },
        });
  const warmBase = storeLocation(warm);
  const coldBase = cold ? storeLocation(cold) : null;
  return {
    catalog,
    io,
    warmLocation: (key) => locationOf(warmBase, key),
    coldLocation: (key) => {
      if (!coldBase) throw new Error('no cold store configured');
      return locationOf(coldBase, key);
    },
    coldLocationIfAny: (key) => (coldBase ? locationOf(coldBase, key) : null),
  };
}

export class CatalogSync implements Component {
  readonly name = 'catalog';
  /** Tiering's hand-off: the committer once started (tiering starts after this component). */
  readonly handoff: CatalogHandoff = {
    name: 'iceberg',
    commit: (files) => this.requireCommitter().commit(files),
    archived: (file) => this.requireCommitter().archived(file),
    expired: (file) => this.requireCommitter().expired(file),
  };
  warm: ObjectStore | null = null;
  cold: ObjectStore | null = null;
  committer: Committer | null = null;
  private opened: OpenedCatalog | null = null;
  private reconcileLoop: Periodic | null = null;
  private readonly options: CatalogSyncOptions;
  private ownsStores = true;

  constructor(options: CatalogSyncOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    this.ownsStores = !this.options.warmStore;
    this.warm = this.options.warmStore ?? (config.tiering.warm ? await openStore(config.tiering.warm) : null);
    this.cold = this.options.coldStore ?? (config.tiering.cold ? await openStore(config.tiering.cold) : null);
    this.opened = openCatalog(config, this.warm, this.cold);
    if (!this.opened) return;
    this.committer = new Committer({
      dbPath: this.options.dbPath,
      stateDir: config.state_dir,
      catalog: this.opened.catalog,
      io: this.opened.io,
      config: config.catalog,
      datasets: this.options.datasets,
      plant: config.plant,
      agentId: config.agent_id ?? config.plant,
      warmLocation: this.opened.warmLocation,
      coldLocation: this.opened.coldLocation,
      logger,
      ...(this.options.onError ? { onError: this.options.onError } : {}),
    });
    await this.committer.start();
    this.reconcileLoop = new Periodic(() => this.reconcile(true), config.catalog.reconcile_interval_minutes * 60_000, (error) =>
      logger.warn({ code: ErrorCode.catalog, err: error.message }, 'reconciliation with the catalog failed; retried on schedule'),
    );
    this.reconcileLoop.start(0);
  }

  /** Tier map and outbox against the catalog (see reconcile.ts); `apply` marks what the catalog already holds. */
  async reconcile(apply: boolean): Promise<TableReconciliation[]> {
    const opened = this.opened;
    if (!opened) return [];
    const { config, datasets, dbPath, logger } = this.options;
    const db = new Database(dbPath);
    db.pragma('busy_timeout = 10000');
    try {
      const reports = await reconcile(
        { db, catalog: opened.catalog, io: opened.io, namespace: config.catalog.namespace, datasets, plant: config.plant, agentId: config.agent_id ?? config.plant, warmLocation: opened.warmLocation, coldLocation: opened.coldLocationIfAny },
        apply,
        Date.now() * 1000,
      );
      for (const r of reports) {
        const odd = r.markedCommitted.length + r.missingFromCatalog.length + r.unknownInCatalog.length;
        const fields = { dataset: r.dataset, in_catalog: r.inCatalog, marked_committed: r.markedCommitted.length, missing_from_catalog: r.missingFromCatalog.length, unknown_in_catalog: r.unknownInCatalog.length };
        if (odd > 0) logger.warn({ code: 'CATALOG_RECONCILED', ...fields }, 'reconciliation found differences with the catalog');
        else logger.debug(fields, 'reconciled with the catalog');
      }
      return reports;
    } finally {
      db.close();
    }
  }

  /** Whether files are committed to a catalog (else uploaded counts as committed). */
  static configured(config: LakesideConfig): boolean {
    return config.catalog.type !== 'none' && config.tiering.warm !== undefined;
  }

  /** For /v1/status and `lakeside status`. */
  status(): Record<string, unknown> | null {
    const committer = this.committer;
    if (!committer || !this.opened) return null;
    const counts = committer.outboxCounts();
    return {
      catalog: this.opened.catalog.description,
      waiting_files: (counts?.waiting ?? 0) + (counts?.batched ?? 0),
      committed_files: (counts?.committed ?? 0) + (counts?.replaced ?? 0),
      pending_commits: counts?.pendingCommits ?? 0,
      oldest_waiting_seconds: counts?.oldestWaitingUs ? Math.round((Date.now() * 1000 - counts.oldestWaitingUs) / 1e6) : 0,
      fenced_tables: Object.fromEntries(committer.fencedTables()),
      ...committer.stats,
    };
  }

  private requireCommitter(): Committer {
    if (!this.committer) throw new Error('the catalog committer is not running');
    return this.committer;
  }

  async stop(): Promise<void> {
    await this.reconcileLoop?.stop();
    await this.committer?.stop();
    await this.opened?.catalog.close();
    await this.opened?.io.close();
    if (this.ownsStores) {
      await this.warm?.close();
      await this.cold?.close();
    }
  }
}
