/**
 * The one interface every object store (warm, cold) implements: a local directory
 * (`file://`, file-store.ts) or S3 (s3-store.ts).
 *
 * Invariants:
 * - `put` never leaves a second object for one key, nor a partial one: it creates the
 *   object if absent (conditional create), and if the key already holds an object it
 *   verifies that object's SHA-256 and size against the ones being written. Same
 *   content → success (`created: false`): a retry after a crash is a no-op. Different
 *   content → `ObjectConflictError` (not retriable): nothing is overwritten.
 * - A successful `put` means the whole object is durable in the store with the
 *   given checksum; the caller may record it as uploaded.
 * - Errors carry `retriable`: a network failure, timeout or 5xx can help by retrying;
 *   a conflict, a missing bucket or refused credentials cannot.
 * - Implementations never log or put secrets in errors.
 */
import type { Readable } from 'node:stream';

export interface PutSource {
  /** Absolute path of the local file to upload. */
  path: string;
  sizeBytes: number;
  /** Lowercase hex SHA-256 of the file's bytes, known before the upload. */
  sha256: string;
  contentType?: string;
  /**
   * Wraps the file's byte stream on its way out (bandwidth cap, byte counting); must
   * pass every byte through unchanged.
   */
  throttle?: (source: Readable) => Readable;
  /** S3 storage class for this object (overrides the store's). */
  storageClass?: string;
}

export interface PutResult {
  /** False when the key already held this exact content (a retried put). */
  created: boolean;
  sizeBytes: number;
  sha256: string;
  /** Whether the object went up in parts. */
  multipart: boolean;
}

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
  /** As recorded at put time (metadata), or computed by a local store; null if unknown. */
  sha256: string | null;
  lastModifiedMs: number;
  storageClass?: string;
}

export interface ObjectStore {
  /** A description safe for logs, e.g. `s3://bucket/prefix` or `file:///dir`. */
  readonly description: string;
  put(key: string, source: PutSource): Promise<PutResult>;
  /**
   * `put` for bytes in memory (catalog metadata, manifests): the same conditional
   * create, verified by SHA-256 and size; never a multipart upload.
   */
  putBytes(key: string, bytes: Uint8Array, contentType?: string): Promise<PutResult>;
  /** The object's bytes as a stream; `ObjectNotFoundError` if absent. */
  get(key: string): Promise<Readable>;
  /** Null when absent. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deleting an absent key is not an error. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

export class ObjectStoreError extends Error {
  readonly retriable: boolean;
  readonly code: string;
  constructor(code: string, message: string, retriable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retriable = retriable;
  }
}

export class ObjectConflictError extends ObjectStoreError {
  constructor(key: string, detail: string) {
    super('OBJECT_CONFLICT', `object ${key} already exists with different content (${detail}); not overwritten`, false);
  }
}

export class ObjectNotFoundError extends ObjectStoreError {
  constructor(key: string) {
    super('OBJECT_NOT_FOUND', `object ${key} not found`, false);
  }
}

/** Object keys are relative, `/`-separated, without empty, `.` or `..` segments. */
export function assertValidKey(key: string): void {
  const segments = key.split('/');
  if (key.length === 0 || key.length > 1024 || segments.some((s) => s === '' || s === '.' || s === '..') || key.includes('\0')) {
    throw new ObjectStoreError('BAD_KEY', `invalid object key ${JSON.stringify(key)}`, false);
  }
}

/** Joins key segments, dropping empty ones (an empty prefix). */
export function joinKey(...segments: string[]): string {
  return segments
    .flatMap((s) => s.split('/'))
    .filter((s) => s !== '')
    .join('/');
}
