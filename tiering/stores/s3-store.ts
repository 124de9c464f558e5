/**
 * S3 (or an S3-compatible server) as an object store: `s3://bucket/prefix`.
 *
 * Invariants (on top of object-store.ts):
 * - Keys given to this store are relative to the URL's prefix.
 * - A put first looks at the key (HEAD): an object already there is verified by its
 *   size and the SHA-256 kept in its metadata (`x-amz-meta-sha256`), so a retry after
 *   a crash costs one request and never writes a second time. Otherwise the object is
 *   created with `If-None-Match: *` (PutObject, or CompleteMultipartUpload above the
 *   multipart threshold); a 412 (someone else created it meanwhile) is answered by
 *   verifying again. Nothing is ever overwritten.
 * - `putBytes` (catalog metadata, manifests) is the same conditional create from
 *   memory: one PutObject with `If-None-Match: *`, the sha256 metadata and checksum.
 * - Single puts carry `x-amz-checksum-sha256`, which the server verifies against the
 *   bytes it received (`checksums: true`); parts of a multipart upload carry the SDK's
 *   per-part checksums. A multipart upload that fails is aborted; one whose abort was
 *   lost too (a dead connection) is aborted by the next attempt at the same key.
 * - The SDK does not retry (maxAttempts 1): a put streams a file that cannot be
 *   rewound, and retries of durable work are the uploader's, with backoff, in rows.
 * - Credentials: the SDK's default chain (environment, shared files, web identity,
 *   instance roles), or a configured credentials file + profile, or resolved secret
 *   references. They are never logged; `description` holds bucket and prefix only.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { Upload } from '@aws-sdk/lib-storage';
import type { StoreConfig } from '../../config/tiering-schema.ts';
import { hashingStream } from './hashing.ts';
import {
  assertValidKey,
  joinKey,
  ObjectConflictError,
  ObjectNotFoundError,
  ObjectStoreError,
  type ObjectInfo,
  type ObjectStore,
  type PutResult,
  type PutSource,
} from './object-store.ts';

const SHA256_METADATA = 'sha256';

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

function statusOf(error: unknown): number | undefined {
  return (error as SdkError).$metadata?.httpStatusCode;
}

/** Maps an SDK or network error to an ObjectStoreError that says whether a retry can help. */
export function classifyS3Error(error: unknown, what: string): ObjectStoreError {
  if (error instanceof ObjectStoreError) return error;
  const e = error as SdkError & Error;
  const status = statusOf(error);
  const name = e.name ?? e.code ?? 'Error';
  const message = `${what}: ${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message.slice(0, 200)}` : ''}`;
  // Refusals that retrying cannot fix: wrong bucket, no permission, bad request.
  const permanent = status !== undefined && [400, 401, 403, 404, 405, 411, 501].includes(status) && name !== 'BadDigest' && name !== 'RequestTimeout';
  return new ObjectStoreError(`S3_${name}`, message, !permanent, { cause: error });
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!match) throw new ObjectStoreError('BAD_URL', `not an s3:// URL: ${url}`, false);
  return { bucket: match[1]!, prefix: joinKey(match[2]!) };
}

export function s3ClientConfig(config: StoreConfig): S3ClientConfig {
  const client: S3ClientConfig = {
    region: config.region,
    forcePathStyle: config.force_path_style,
    maxAttempts: 1,
    // An inactivity timeout, not a deadline: a capped upload of a large part is slow but never idle.
    requestHandler: { socketTimeout: config.request_timeout_ms, connectionTimeout: Math.min(config.request_timeout_ms, 10_000) },
    // Without checksums, no aws-chunked trailers (some S3-compatible servers refuse them).
    requestChecksumCalculation: config.checksums ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
    responseChecksumValidation: config.checksums ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
  };
  if (config.endpoint) client.endpoint = config.endpoint;
  const credentials = config.credentials;
  if (credentials?.file !== undefined) {
    client.credentials = fromIni({ filepath: credentials.file, ...(credentials.profile ? { profile: credentials.profile } : {}) });
  } else if (credentials?.access_key_id !== undefined && credentials.secret_access_key !== undefined) {
    client.credentials = {
      accessKeyId: credentials.access_key_id,
      secretAccessKey: credentials.secret_access_key,
      ...(credentials.session_token ? { sessionToken: credentials.session_token } : {}),
    };
  }
  return client;
}

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly config: StoreConfig;

  constructor(config: StoreConfig, client?: S3Client) {
    this.config = config;
    const { bucket, prefix } = parseS3Url(config.url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.description = `s3://${bucket}/${prefix}`;
    this.client = client ?? new S3Client(s3ClientConfig(config));
  }

  private fullKey(key: string): string {
    assertValidKey(key);
    return joinKey(this.prefix, key);
  }

  async put(key: string, source: PutSource): Promise<PutResult> {
    const Key = this.fullKey(key);
    const existing = await this.verifyExisting(key, Key, source);
    if (existing) return existing;
    const multipart = source.sizeBytes >= this.config.multipart_threshold_bytes;
    const storageClass = (source.storageClass ?? this.config.storage_class) as StorageClass | undefined;
    const hashing = hashingStream();
    const file = createReadStream(source.path);
    const throttled = source.throttle ? source.throttle(file) : file;
    const counted = throttled.pipe(hashing.stream);
    // pipe() does not forward errors: a failed read must fail the request, not stall it.
    file.on('error', (error) => counted.destroy(error));
    if (throttled !== file) throttled.on('error', (error: Error) => counted.destroy(error));
    // The SDK listens on the body only while it reads it: an error in between (stop()
    // destroying a capped upload's source) must fail this put, never reach the process
    // as an unhandled 'error' event.
    counted.on('error', () => {});
    const params = {
      Bucket: this.bucket,
      Key,
      Body: counted,
      ContentLength: source.sizeBytes,
      IfNoneMatch: '*',
      Metadata: { [SHA256_METADATA]: source.sha256 },
      ...(source.contentType ? { ContentType: source.contentType } : {}),
      ...(storageClass ? { StorageClass: storageClass } : {}),
    };
    try {
      if (multipart) {
        await this.abortOpenUploads(Key);
        const upload = new Upload({
          client: this.client,
          params: { ...params, ...(this.config.checksums ? { ChecksumAlgorithm: 'SHA256' as const } : {}) },
          partSize: this.config.part_size_bytes,
          queueSize: this.config.part_concurrency,
          leavePartsOnError: false,
        });
        await upload.done();
      } else {
        const checksum = this.config.checksums ? { ChecksumSHA256: Buffer.from(source.sha256, 'hex').toString('base64') } : {};
        await this.client.send(new PutObjectCommand({ ...params, ...checksum }));
      }
    } catch (error) {
      file.destroy();
      const status = statusOf(error);
      if (status === 412 || status === 409) {
        const raced = await this.verifyExisting(key, Key, source);
        if (raced) return raced;
      }
      // The server refused the checksum: a retry helps after corruption in transit, not when the file's bytes are not the registered ones.
      if (hashing.bytes() === source.sizeBytes && hashing.digest() !== source.sha256) {
        throw new ObjectStoreError('CHECKSUM_MISMATCH', `${Key}: the local file's sha256 is not ${source.sha256} (it changed); not uploaded`, false, { cause: error });
      }
      throw classifyS3Error(error, `put ${Key}`);
    }
    const sent = hashing.bytes();
    const digest = hashing.digest();
    if (sent !== source.sizeBytes || digest !== source.sha256) {
      // The server holds what we sent; if the local file changed under us, that is not the registered content.
      await this.delete(key).catch(() => {});
      throw new ObjectStoreError('CHECKSUM_MISMATCH', `${Key}: sent ${sent} bytes with sha256 ${digest}, expected ${source.sizeBytes} bytes ${source.sha256} (the local file changed)`, false);
    }
    return { created: true, sizeBytes: source.sizeBytes, sha256: source.sha256, multipart };
  }

  async putBytes(key: string, bytes: Uint8Array, contentType?: string): Promise<PutResult> {
    const Key = this.fullKey(key);
    const expected = { sizeBytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    const existing = await this.verifyExisting(key, Key, expected);
    if (existing) return existing;
    const storageClass = this.config.storage_class as StorageClass | undefined;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: bytes,
          ContentLength: bytes.length,
          IfNoneMatch: '*',
          Metadata: { [SHA256_METADATA]: expected.sha256 },
          ...(contentType ? { ContentType: contentType } : {}),
          ...(storageClass ? { StorageClass: storageClass } : {}),
          ...(this.config.checksums ? { ChecksumSHA256: Buffer.from(expected.sha256, 'hex').toString('base64') } : {}),
        }),
      );
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 409) {
        const raced = await this.verifyExisting(key, Key, expected);
        if (raced) return raced;
      }
      throw classifyS3Error(error, `put ${Key}`);
    }
    return { created: true, ...expected, multipart: false };
  }

  /**
   * Aborts multipart uploads of this exact key left open by an earlier attempt (its own
   * abort may have failed on the same dead connection), so they hold no storage.
   */
  private async abortOpenUploads(Key: string): Promise<void> {
    try {
      const open = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: Key }));
      for (const upload of open.Uploads ?? []) {
        if (upload.Key !== Key || !upload.UploadId) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: upload.UploadId }));
      }
    } catch (error) {
      throw classifyS3Error(error, `abort open uploads of ${Key}`);
    }
  }

  private async verifyExisting(key: string, Key: string, source: Pick<PutSource, 'sizeBytes' | 'sha256'>): Promise<PutResult | null> {
    const info = await this.head(key);
    if (!info) return null;
    if (info.sizeBytes !== source.sizeBytes) throw new ObjectConflictError(Key, `${info.sizeBytes} bytes, expected ${source.sizeBytes}`);
    if (info.sha256 !== source.sha256) throw new ObjectConflictError(Key, `sha256 ${info.sha256 ?? 'unknown'}, expected ${source.sha256}`);
    return { created: false, sizeBytes: info.sizeBytes, sha256: source.sha256, multipart: false };
  }

  async get(key: string): Promise<Readable> {
    const Key = this.fullKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      return response.Body as Readable;
    } catch (error) {
      if (statusOf(error) === 404) throw new ObjectNotFoundError(Key);
      throw classifyS3Error(error, `get ${Key}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const Key = this.fullKey(key);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return {
        key,
        sizeBytes: r.ContentLength ?? 0,
        sha256: r.Metadata?.[SHA256_METADATA] ?? null,
        lastModifiedMs: r.LastModified?.getTime() ?? 0,
        ...(r.StorageClass ? { storageClass: r.StorageClass } : {}),
      };
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw classifyS3Error(error, `head ${Key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ...(token ? { ContinuationToken: token } : {}) }));
      } catch (error) {
        throw classifyS3Error(error, `list ${full}`);
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        yield {
          key: o.Key.slice(strip),
          sizeBytes: o.Size ?? 0,
          sha256: null,
          lastModifiedMs: o.LastModified?.getTime() ?? 0,
          ...(o.StorageClass ? { storageClass: o.StorageClass } : {}),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      if (statusOf(error) === 404) return;
      throw classifyS3Error(error, `delete ${Key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
