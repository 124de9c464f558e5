/**
 * Reconciliation: this agent's local view (tier map + outbox) against the files the
 * catalog's tables really hold. Run at start, on a schedule, and by
 * `lakeside reconcile [--dry-run]`.
 *
 * Which catalog files are ours: data file paths in the warm or cold store under
 * `<plant>/<dataset>/data/` whose file name starts with `<agent_id>-` (tiering/layout.ts):
 * a path-based ownership, so it holds even after the centre rewrote manifests.
 * Manifests whose partition summary excludes this plant are not read.
 *
 * What it finds and does (with `apply`):
 * - in the catalog, and locally committed: fine;
 * - in the catalog, but locally only uploaded / waiting (e.g. a state restored from a
 *   backup): marked committed, never committed again (no double commit);
 * - uploaded locally, in neither the catalog nor the outbox: handed to the outbox;
 * - locally committed but absent from the catalog (removed or rewritten at the
 *   centre): reported, not re-committed: its rows may live on in a rewritten file;
 * - in the catalog with our name but unknown locally (another state directory):
 *   reported.
 * A pending commit is left to the committer, which resolves it by its marker.
 */
import type Database from 'better-sqlite3';
import type { Dataset } from '../config/dataset.ts';
import type { Catalog } from './catalog.ts';
import { readManifest } from './iceberg/manifest.ts';
import { readManifestList } from './iceberg/manifest-list.ts';
import { refHead, type LoadedTable } from './iceberg/metadata.ts';
import { tableIdent } from './table-setup.ts';
import type { TableFileIO } from './table-io.ts';
import { ENTRY_STATUS } from './iceberg/manifest.ts';

export interface ReconcileContext {
  db: Database.Database;
  catalog: Catalog;
  io: TableFileIO;
  namespace: string[];
  datasets: Dataset[];
  plant: string;
  agentId: string;
  warmLocation: (key: string) => string;
  /** Null: no cold store is configured. */
  coldLocation: (key: string) => string | null;
}

export interface TableReconciliation {
  dataset: string;
  table: string;
  exists: boolean;
  /** Our live files in the table. */
  inCatalog: number;
  committedAndPresent: number;
  /** In the catalog, locally not committed: marked committed (never committed again). */
  markedCommitted: string[];
  /** Uploaded, in neither the catalog nor the outbox: handed to the outbox. */
  handedIn: string[];
  /** Locally committed, absent from the catalog: reported only. */
  missingFromCatalog: string[];
  /** Ours by name, unknown locally: reported only. */
  unknownInCatalog: string[];
}

interface LocalFile {
  tierId: number;
  objectKey: string;
  tierState: string;
  syncState: string | null;
  location: string | null;
}

/** Paths of this agent's live data files in the table's current snapshot. */
export async function ourLiveFiles(table: LoadedTable, io: TableFileIO, ctx: Pick<ReconcileContext, 'plant' | 'agentId'>, dataset: string): Promise<Set<string>> {
  const head = refHead(table.metadata);
  const out = new Set<string>();
  if (!head) return out;
  const ours = (path: string): boolean => path.includes(`/${ctx.plant}/${dataset}/data/`) && (path.split('/').pop() ?? '').startsWith(`${ctx.agentId}-`);
  const spec = table.metadata['partition-specs'].find((s) => s['spec-id'] === table.metadata['default-spec-id']);
  const plantIndex = spec ? spec.fields.findIndex((f) => f.name === 'plant' && f.transform === 'identity') : -1;
  for (const manifest of readManifestList(await io.read(head['manifest-list'])).manifests) {
    if (manifest.content !== 0) continue;
    const summary = plantIndex >= 0 ? manifest.partitions?.[plantIndex] : undefined;
    if (summary?.lower_bound && summary.upper_bound) {
      const lower = Buffer.from(summary.lower_bound).toString('utf8');
      const upper = Buffer.from(summary.upper_bound).toString('utf8');
      if (ctx.plant < lower || ctx.plant > upper) continue;
    }
    for (const entry of readManifest(await io.read(manifest.manifest_path)).entries) {
      if (entry.status === ENTRY_STATUS.DELETED) continue;
      if (ours(entry.data_file.file_path)) out.add(entry.data_file.file_path);
    }
  }
  return out;
}

function localFiles(db: Database.Database, dataset: string): LocalFile[] {
  return db
    .prepare(
      `SELECT t.id AS tierId, t.object_key AS objectKey, t.state AS tierState, s.state AS syncState, s.location AS location
         FROM tier_files t LEFT JOIN sync_files s ON s.tier_id = t.id
        WHERE t.kind = 'data' AND t.dataset = ? AND t.state IN ('uploaded', 'committed', 'archived')`,
    )
    .all(dataset) as LocalFile[];
}

export async function reconcile(ctx: ReconcileContext, apply: boolean, nowUs: number): Promise<TableReconciliation[]> {
  const reports: TableReconciliation[] = [];
  for (const dataset of ctx.datasets) {
    const ident = tableIdent(ctx.namespace, dataset.name);
    const report: TableReconciliation = {
      dataset: dataset.name,
      table: [...ident.namespace, ident.name].join('.'),
      exists: false,
      inCatalog: 0,
      committedAndPresent: 0,
      markedCommitted: [],
      handedIn: [],
      missingFromCatalog: [],
      unknownInCatalog: [],
    };
    reports.push(report);
    const table = await ctx.catalog.loadTable(ident);
    const live = table ? await ourLiveFiles(table, ctx.io, ctx, dataset.name) : new Set<string>();
    report.exists = table !== null;
    report.inCatalog = live.size;
    const known = new Set<string>();
    const markCommitted: LocalFile[] = [];
    for (const file of localFiles(ctx.db, dataset.name)) {
      const candidates = [file.location, ctx.warmLocation(file.objectKey), ctx.coldLocation(file.objectKey)].filter((l): l is string => !!l);
      candidates.forEach((l) => known.add(l));
      const present = candidates.find((l) => live.has(l));
      const locallyCommitted = file.syncState === 'committed' || file.syncState === 'replaced';
      if (present && locallyCommitted) report.committedAndPresent++;
      else if (present) {
        report.markedCommitted.push(present);
        markCommitted.push({ ...file, location: present });
      } else if (locallyCommitted) report.missingFromCatalog.push(file.location ?? ctx.warmLocation(file.objectKey));
      else if (file.syncState === null && file.tierState === 'uploaded') report.handedIn.push(ctx.warmLocation(file.objectKey));
    }
    for (const path of live) if (!known.has(path)) report.unknownInCatalog.push(path);
    if (apply && markCommitted.length > 0) markAsCommitted(ctx.db, dataset.name, markCommitted, nowUs);
  }
  return reports;
}

/** Files the catalog already holds become committed locally (outbox and tier map), in one transaction. */
function markAsCommitted(db: Database.Database, dataset: string, files: LocalFile[], nowUs: number): void {
  const upsert = db.prepare(
    `INSERT INTO sync_files (tier_id, dataset, location, entry_json, state, created_us, committed_us)
     VALUES (?, ?, ?, '{}', 'committed', ?, ?)
     ON CONFLICT (tier_id) DO UPDATE SET state = 'committed', location = excluded.location, seq = NULL, committed_us = excluded.committed_us
     WHERE sync_files.state IN ('waiting')`,
  );
  const tier = db.prepare(`UPDATE tier_files SET state = 'committed', committed_us = ? WHERE id = ? AND state = 'uploaded'`);
  db.transaction(() => {
    for (const f of files) {
      if (f.syncState === 'batched') continue; // its pending commit is resolved by marker
      upsert.run(f.tierId, dataset, f.location, nowUs, nowUs);
      tier.run(nowUs, f.tierId);
    }
  }).immediate();
}
