/**
 * The file-system Iceberg catalog: table metadata written by the agent itself into an
 * object store (the warm store), the embedded default when no REST catalog is
 * configured. A commit is the atomic, exclusive creation of the next metadata version.
 *
 * Layout (keys in the store; `<ns…>` is one folder per namespace level):
 *   <root>/<ns…>/<table>/                               the table location
 *   <root>/<ns…>/<table>/metadata/v<N>.metadata.json    version N, written once
 *   <root>/<ns…>/<table>/metadata/version-hint.text     "N", a hint that may lag
 *
 * Invariants:
 * - Each commit also drops expired snapshots from the new metadata (`expiry`,
 *   iceberg/expire-snapshots.ts: old ones go, ref heads and each agent's newest stay).
 * - Version N+1 is created with the store's conditional create (`putBytes`: link(2)
 *   on a local directory, `If-None-Match: *` on S3), so of two commits built on the
 *   same head exactly one creates it; the other gets `conflict`. Nothing is replaced.
 * - The head is the highest N with an existing v<N>: load reads the hint, then probes
 *   v<N+1>, v<N+2>… until one is absent (the hint is written after the version,
 *   best effort, and may lag or be missing: then the versions are listed).
 * - Requirements are checked against the head (a failed one → `conflict`); updates are
 *   applied by apply-updates.ts; a rejected update is a `CatalogError`.
 * - A store error whose retry may help, raised while creating v<N+1>, is an `unknown`
 *   outcome: the version may exist. The caller reloads before anything else.
 * - Every metadata file is complete format-v2 JSON that other engines read as is
 *   (PyIceberg `StaticTable.from_metadata(<metadata location>)`).
 */
import { expireSnapshots, type SnapshotExpiry } from './iceberg/expire-snapshots.ts';
import { ObjectConflictError, ObjectNotFoundError, ObjectStoreError, type ObjectStore } from '../tiering/stores/object-store.ts';
import { CatalogError, type Catalog, type CommitOutcome, type CreateTableRequest, type TableIdent } from './catalog.ts';
import { applyUpdates, failedRequirement, newTableMetadata, UpdateRejected } from './iceberg/apply-updates.ts';
import { parseIcebergJson, stringifyIcebergJson } from './iceberg/json.ts';
import { normalizeTableMetadata, type LoadedTable, type TableMetadata, type TableRequirement, type TableUpdate } from './iceberg/metadata.ts';
import { locationOf, readAll, storeLocation } from './table-io-stores.ts';

export interface FileSystemCatalogOptions {
  /** The store holding the metadata (normally the warm store). */
  store: ObjectStore;
  /** Key prefix of the catalog in the store (`catalog.root_prefix`). */
  rootPrefix: string;
  /** The store's root as a location (default: derived from the store). */
  storeBase?: string;
  now?: () => number;
  /** Snapshots dropped from the metadata at each commit (iceberg/expire-snapshots.ts); none: all kept. */
  expiry?: SnapshotExpiry;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const VERSION_FILE = /\/v(\d+)\.metadata\.json$/;

async function readText(store: ObjectStore, key: string): Promise<string | null> {
  try {
    return (await readAll(await store.get(key))).toString('utf8');
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return null;
    throw error;
  }
}

function storeFailure(error: unknown, what: string): CatalogError {
  if (error instanceof CatalogError) return error;
  const e = error as Partial<ObjectStoreError> & Error;
  return new CatalogError(`CATALOG_STORE_${e.code ?? 'ERROR'}`, `${what}: ${e.message}`, e.retriable ?? true, null, { cause: error });
}

export class FileSystemCatalog implements Catalog {
  readonly description: string;
  private readonly store: ObjectStore;
  private readonly root: string;
  private readonly base: string;
  private readonly now: () => number;
  private readonly expiry: SnapshotExpiry | undefined;

  constructor(options: FileSystemCatalogOptions) {
    this.store = options.store;
    this.root = options.rootPrefix.replace(/^\/+|\/+$/g, '');
    this.base = options.storeBase ?? storeLocation(options.store);
    this.now = options.now ?? Date.now;
    this.expiry = options.expiry;
    this.description = `file-system catalog at ${locationOf(this.base, this.root)}`;
  }

  private tableKey(table: TableIdent): string {
    for (const part of [...table.namespace, table.name]) {
      if (!NAME.test(part)) throw new CatalogError('CATALOG_BAD_IDENTIFIER', `invalid namespace or table name ${JSON.stringify(part)}`, false);
    }
    if (table.namespace.length === 0) throw new CatalogError('CATALOG_BAD_IDENTIFIER', `table ${table.name} has no namespace`, false);
    return [this.root, ...table.namespace, table.name].filter((s) => s !== '').join('/');
  }

  private versionKey(table: TableIdent, version: number): string {
    return `${this.tableKey(table)}/metadata/v${version}.metadata.json`;
  }

  private hintKey(table: TableIdent): string {
    return `${this.tableKey(table)}/metadata/version-hint.text`;
  }

  /** Namespaces are folders, which exist as soon as a table is in them. */
  async ensureNamespace(namespace: string[]): Promise<void> {
    this.tableKey({ namespace, name: 'x' });
  }

  /** The head version number, 0 when the table does not exist. */
  private async headVersion(table: TableIdent): Promise<number> {
    const hint = Number.parseInt((await readText(this.store, this.hintKey(table)))?.trim() ?? '', 10);
    let version = Number.isSafeInteger(hint) && hint > 0 ? hint : await this.listedHead(table);
    if (version > 0 && (await this.store.head(this.versionKey(table, version))) === null) version = await this.listedHead(table);
    while ((await this.store.head(this.versionKey(table, version + 1))) !== null) version += 1;
    return version;
  }

  private async listedHead(table: TableIdent): Promise<number> {
    let max = 0;
    for await (const info of this.store.list(`${this.tableKey(table)}/metadata/v`)) {
      const match = VERSION_FILE.exec(`/${info.key}`);
      if (match) max = Math.max(max, Number(match[1]));
    }
    return max;
  }

  private async loadVersioned(table: TableIdent): Promise<{ version: number; loaded: LoadedTable } | null> {
    const version = await this.headVersion(table);
    if (version === 0) return null;
    const key = this.versionKey(table, version);
    const text = await readText(this.store, key);
    if (text === null) throw new CatalogError('CATALOG_STORE_RACE', `metadata ${key} vanished while loading`, true);
    const metadata = normalizeTableMetadata(parseIcebergJson(text) as TableMetadata);
    return { version, loaded: { metadataLocation: locationOf(this.base, key), metadata, config: {} } };
  }

  async loadTable(table: TableIdent): Promise<LoadedTable | null> {
    try {
      return (await this.loadVersioned(table))?.loaded ?? null;
    } catch (error) {
      throw storeFailure(error, `load ${table.namespace.join('.')}.${table.name}`);
    }
  }

  async createTable(table: TableIdent, request: CreateTableRequest): Promise<LoadedTable> {
    const name = `${table.namespace.join('.')}.${table.name}`;
    try {
      const existing = await this.loadTable(table);
      if (existing) return existing;
      const metadata = newTableMetadata({
        location: request.location ?? locationOf(this.base, this.tableKey(table)),
        schema: request.schema,
        spec: request.spec,
        properties: request.properties,
        nowMs: this.now(),
      });
      const key = this.versionKey(table, 1);
      await this.store.putBytes(key, new TextEncoder().encode(stringifyIcebergJson(metadata)), 'application/json');
      await this.writeHint(table, 1);
      return { metadataLocation: locationOf(this.base, key), metadata: normalizeTableMetadata(metadata), config: {} };
    } catch (error) {
      if (error instanceof ObjectConflictError) {
        // Another agent created the table first: its table is the table.
        const winner = await this.loadTable(table);
        if (winner) return winner;
      }
      throw storeFailure(error, `create ${name}`);
    }
  }

  async commit(table: TableIdent, requirements: TableRequirement[], updates: TableUpdate[]): Promise<CommitOutcome> {
    const name = `${table.namespace.join('.')}.${table.name}`;
    const head = await this.loadVersioned(table).catch((error: unknown) => {
      throw storeFailure(error, `load ${name} for a commit`);
    });
    if (!head) throw new CatalogError('CATALOG_NO_SUCH_TABLE', `table ${name} does not exist`, false, 404);
    let next: TableMetadata;
    try {
      // A requirement that fails is a conflict even if the updates no longer apply.
      const failed = failedRequirement(head.loaded.metadata, requirements);
      if (failed !== null) return { kind: 'conflict', detail: `${name} v${head.version}: ${failed}` };
      next = applyUpdates(head.loaded.metadata, updates, { nowMs: this.now(), baseLocation: head.loaded.metadataLocation });
      if (this.expiry) next = expireSnapshots(next, this.expiry, this.now());
    } catch (error) {
      if (error instanceof UpdateRejected) throw new CatalogError('CATALOG_BAD_COMMIT', `commit to ${name} rejected: ${error.message}`, false, 400);
      throw error;
    }
    const version = head.version + 1;
    const key = this.versionKey(table, version);
    try {
      // created: false means these exact bytes are already v<N+1>: the commit is in.
      await this.store.putBytes(key, new TextEncoder().encode(stringifyIcebergJson(next)), 'application/json');
    } catch (error) {
      if (error instanceof ObjectConflictError) return { kind: 'conflict', detail: `${name}: another writer created v${version} first` };
      if (error instanceof ObjectStoreError && !error.retriable) throw storeFailure(error, `commit ${name} v${version}`);
      return { kind: 'unknown', detail: `${name} v${version}: ${(error as Error).message}` };
    }
    await this.writeHint(table, version);
    return { kind: 'committed', table: { metadataLocation: locationOf(this.base, key), metadata: next, config: {} } };
  }

  /** Best effort: replaces the hint (delete, then create); a lost race leaves it lagging, which load tolerates. */
  private async writeHint(table: TableIdent, version: number): Promise<void> {
    const key = this.hintKey(table);
    try {
      await this.store.delete(key);
      await this.store.putBytes(key, new TextEncoder().encode(String(version)), 'text/plain');
    } catch {
      // A hint only.
    }
  }

  async close(): Promise<void> {}
}
