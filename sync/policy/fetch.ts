/**
 * Fetching the signed policy: the document and its detached signature from `file:`,
 * `http(s)://` or `s3://bucket/key`, and an optional MQTT nudge.
 *
 * Invariants:
 * - A fetch is conditional where the location allows it: HTTP and S3 send the last
 *   ETag as If-None-Match and a 304 means "unchanged" (no body moves); a file is
 *   re-read and compared. `fetch()` answers `changed: false` only when neither the
 *   document nor the signature changed since the last answer, so a pair the centre
 *   published half-way is fetched again (and re-checked) once the other half lands.
 * - Nothing here trusts the bytes: they go to the validator (check.ts) before use.
 * - Errors carry `retriable` (a network failure, a 5xx); the caller backs off.
 * - The nudge only asks for an immediate fetch; it carries no policy. Its retained
 *   message arrives on every (re)subscribe, which costs one conditional fetch.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import mqtt, { type MqttClient } from 'mqtt';
import { request } from 'undici';
import type { AgentPolicyConfig } from '../../config/policy-schema.ts';
import { storeSettingsSchema, type StoreConfig } from '../../config/tiering-schema.ts';
import { classifyS3Error, parseS3Url, s3ClientConfig } from '../../tiering/stores/s3-store.ts';

export class PolicyFetchError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  constructor(code: string, message: string, retriable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retriable = retriable;
  }
}

export type FetchOutcome = { changed: false } | { changed: true; document: Uint8Array; signature: Uint8Array };

/** One location read conditionally: the bytes, and whether they differ from the last read. */
interface Resource {
  read(): Promise<{ changed: boolean; bytes: Uint8Array }>;
}

const REQUEST_TIMEOUT_MS = 30_000;

const STORE_DEFAULTS = storeSettingsSchema.parse({});

/** S3 settings as given: validated config, or a few flags of the CLI. */
export type PolicyStoreSettings = Partial<NonNullable<AgentPolicyConfig['store']>>;

/**
 * The S3 settings of a loaded config's policy section as a store config for `url` (the
 * policy's or status reports' own bucket). The loader already validated `policy.store`
 * and resolved its secrets, so only the defaults of absent keys are filled and nothing
 * is parsed again (store-config.ts does validate-then-resolve for settings read with
 * `resolveSecrets: false`, as `lakeside policy publish` reads them).
 */
export function loadedStoreConfig(url: string, store: PolicyStoreSettings | undefined): StoreConfig {
  return { ...STORE_DEFAULTS, ...(store ?? {}), url };
}

class FileResource implements Resource {
  private last: Buffer | null = null;
  private readonly path: string;
  constructor(url: string) {
    this.path = fileURLToPath(url);
  }
  async read(): Promise<{ changed: boolean; bytes: Uint8Array }> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      // A missing file may appear (the centre publishes it later, a mount comes back).
      throw new PolicyFetchError('POLICY_SOURCE_UNREADABLE', `cannot read ${this.path} (${code})`, true, { cause: error });
    }
    const changed = this.last === null || !this.last.equals(bytes);
    this.last = bytes;
    return { changed, bytes };
  }
}

class HttpResource implements Resource {
  private last: { etag: string | null; bytes: Uint8Array } | null = null;
  private readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  async read(): Promise<{ changed: boolean; bytes: Uint8Array }> {
    const headers: Record<string, string> = {};
    if (this.last?.etag) headers['if-none-match'] = this.last.etag;
    let response;
    try {
      response = await request(this.url, { method: 'GET', headers, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    } catch (error) {
      throw new PolicyFetchError('POLICY_SOURCE_UNREACHABLE', `${redactUrl(this.url)}: ${(error as Error).message}`, true, { cause: error });
    }
    if (response.statusCode === 304 && this.last) {
      await response.body.dump();
      return { changed: false, bytes: this.last.bytes };
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      const retriable = response.statusCode >= 500 || response.statusCode === 404 || response.statusCode === 408 || response.statusCode === 429;
      throw new PolicyFetchError('POLICY_SOURCE_HTTP', `${redactUrl(this.url)}: HTTP ${response.statusCode}`, retriable);
    }
    const bytes = new Uint8Array(await response.body.arrayBuffer());
    const etag = typeof response.headers.etag === 'string' ? response.headers.etag : null;
    const changed = this.last === null || !Buffer.from(this.last.bytes).equals(bytes);
    this.last = { etag, bytes };
    return { changed, bytes };
  }
}

class S3Resource implements Resource {
  private last: { etag: string | null; bytes: Uint8Array } | null = null;
  private readonly bucket: string;
  private readonly key: string;
  private readonly client: S3Client;
  constructor(url: string, client: S3Client) {
    const { bucket, prefix } = parseS3Url(url);
    if (prefix === '') throw new PolicyFetchError('POLICY_BAD_URL', `${url} names a bucket, not an object`, false);
    this.bucket = bucket;
    this.key = prefix;
    this.client = client;
  }
  async read(): Promise<{ changed: boolean; bytes: Uint8Array }> {
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key, ...(this.last?.etag ? { IfNoneMatch: this.last.etag } : {}) }),
      );
      const bytes = (await response.Body?.transformToByteArray()) ?? new Uint8Array();
      const changed = this.last === null || !Buffer.from(this.last.bytes).equals(bytes);
      this.last = { etag: response.ETag ?? null, bytes };
      return { changed, bytes };
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 304 && this.last) return { changed: false, bytes: this.last.bytes };
      const e = classifyS3Error(error, `s3://${this.bucket}/${this.key}`);
      throw new PolicyFetchError('POLICY_SOURCE_UNREACHABLE', e.message, e.retriable || e.code === 'S3_NoSuchKey', { cause: error });
    }
  }
}

/** A URL safe for logs: no user info, no query (a presigned URL's signature). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.href;
  } catch {
    return url.replace(/\?.*$/, '');
  }
}

/** The policy location of an agent: the document and its signature. */
export class PolicySource {
  readonly description: string;
  private readonly document: Resource;
  private readonly signature: Resource;
  private readonly clients: S3Client[] = [];

  constructor(config: Pick<AgentPolicyConfig, 'url' | 'signature_url'> & { store?: PolicyStoreSettings | undefined }) {
    this.description = redactUrl(config.url);
    this.document = this.resource(config.url, config.store);
    this.signature = this.resource(config.signature_url ?? `${config.url}.sig`, config.store);
  }

  private resource(url: string, store: PolicyStoreSettings | undefined): Resource {
    if (url.startsWith('file:')) return new FileResource(url);
    if (/^https?:\/\//.test(url)) return new HttpResource(url);
    const client = new S3Client(s3ClientConfig(loadedStoreConfig(url, store)));
    this.clients.push(client);
    return new S3Resource(url, client);
  }

  /** Reads both (conditionally); `changed: false` when neither changed since the last call. */
  async fetch(): Promise<FetchOutcome> {
    const document = await this.document.read();
    const signature = await this.signature.read();
    if (!document.changed && !signature.changed) return { changed: false };
    return { changed: true, document: document.bytes, signature: signature.bytes };
  }

  close(): void {
    for (const client of this.clients) client.destroy();
  }
}

/** Subscribes to the nudge topic; every message calls `onNudge`. Connects in the background. */
export async function subscribeNudge(config: NonNullable<AgentPolicyConfig['mqtt_nudge']>, onNudge: () => void, onError: (error: Error) => void): Promise<MqttClient> {
  const client = mqtt.connect(config.url, {
    reconnectPeriod: 5000,
    connectTimeout: 10_000,
    ...(config.ca_file !== undefined ? { ca: await readFile(config.ca_file) } : {}),
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
  });
  client.on('connect', () => {
    client.subscribe(config.topic, { qos: 1 }, (error) => {
      if (error) onError(error);
    });
  });
  client.on('message', () => onNudge());
  client.on('error', onError);
  return client;
}
