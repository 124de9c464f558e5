/**
 * The catalog interface the committer talks to. Two implementations: the Iceberg REST
 * catalog (rest-catalog.ts) and the file-system catalog in the warm store
 * (fs-catalog.ts, the embedded default). The manifests and the commit logic are the
 * same for both; only the final swap differs.
 *
 * The outcome contract, which exactly-once rests on:
 * - `committed`: the catalog applied the commit; `table` is the table after it.
 * - `conflict`: a requirement failed (REST 409, or the next metadata version already
 *   exists): the commit was NOT applied. Reload, rebuild on the new head, retry.
 * - `unknown`: it may or may not have been applied (REST 500, 502, 504, a timeout or
 *   a reset after the request was sent). The caller must reload and look for its
 *   own marker before anything else, and never delete what it wrote.
 * - `retry-later`: not applied, the catalog asked to come back (REST 503 with
 *   Retry-After, or 429).
 * Anything else (bad request, refused credentials, unknown table) throws a
 * `CatalogError` with `retriable` saying whether waiting can help (connection refused
 * before anything was sent: yes; 400/401/403/404: no).
 */
import type { IcebergSchema, LoadedTable, PartitionSpec, TableRequirement, TableUpdate } from './iceberg/metadata.ts';

export type CommitOutcome =
  | { kind: 'committed'; table: LoadedTable }
  | { kind: 'conflict'; detail: string }
  | { kind: 'unknown'; detail: string }
  | { kind: 'retry-later'; afterMs: number; detail: string };

export interface TableIdent {
  namespace: string[];
  name: string;
}

export interface CreateTableRequest {
  schema: IcebergSchema;
  spec: PartitionSpec;
  properties: Record<string, string>;
  /** Default: the catalog's choice (REST) or `<root>/<namespace>/<name>` (file system). */
  location?: string;
}

export interface CommitOptions {
  /**
   * REST catalogs that advertise idempotency: the `Idempotency-Key` (a UUIDv7, see
   * `newIdempotencyKey` in rest-catalog.ts) to send. Reuse a key only to resend the
   * identical request (same requirements and updates); a rebuilt commit needs a new
   * one. Without it the catalog sends a fresh key. The file-system catalog ignores it.
   */
  idempotencyKey?: string;
}

export interface Catalog {
  /** Safe for logs: never a token or a secret. */
  readonly description: string;
  /**
   * The catalog gives a new table field ids of its own (Iceberg Java's catalogs
   * renumber from 1 on every create): tables are then created unpartitioned and get
   * the dataset's ids and spec in their first commit (table-setup.ts).
   */
  readonly renumbersFieldsOnCreate?: boolean;
  /** Creates the namespace if missing (already existing is success). */
  ensureNamespace(namespace: string[]): Promise<void>;
  /** Null when the table does not exist. */
  loadTable(table: TableIdent): Promise<LoadedTable | null>;
  /** Creates the table; if it exists already (another agent won the race), loads it. */
  createTable(table: TableIdent, request: CreateTableRequest): Promise<LoadedTable>;
  commit(table: TableIdent, requirements: TableRequirement[], updates: TableUpdate[], options?: CommitOptions): Promise<CommitOutcome>;
  close(): Promise<void>;
}

export class CatalogError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly status: number | null;
  constructor(code: string, message: string, retriable: boolean, status: number | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retriable = retriable;
    this.status = status;
  }
}
