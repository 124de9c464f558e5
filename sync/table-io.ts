/**
 * Reading and writing the catalog's own files (manifests, manifest lists, and for the
 * file-system catalog the metadata JSON) at absolute locations: `s3://bucket/key` or
 * `file:///abs/path`.
 *
 * Invariant: `writeOnce` never replaces a file. It creates it if absent; if the
 * location already holds the same bytes it succeeds with `created: false` (a retry);
 * different bytes → `ObjectConflictError`. Manifests are written at deterministic
 * paths with deterministic bytes, so a commit retried after a crash rewrites nothing,
 * and the file-system catalog's commit is exactly this conditional create.
 */
export interface TableFileIO {
  writeOnce(location: string, bytes: Uint8Array, contentType?: string): Promise<{ created: boolean }>;
  /** `ObjectNotFoundError` (tiering/stores/object-store.ts) when absent. */
  read(location: string): Promise<Uint8Array>;
  exists(location: string): Promise<boolean>;
  /** Deleting an absent file is not an error. */
  delete(location: string): Promise<void>;
  close(): Promise<void>;
}
