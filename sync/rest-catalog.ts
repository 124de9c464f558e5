/**
 * The Iceberg REST catalog client (reference/iceberg-rest-catalog-open-api.yaml):
 * config, namespaces, load / create / commit table, classified per catalog.ts.
 *
 * Invariants:
 * - `GET /v1/config?warehouse=` comes first (once, lazily; again after a failure): its
 *   `defaults` then `overrides` give the route `prefix`; an `idempotency-key-lifetime`
 *   means the server replays final answers to a repeated `Idempotency-Key`. Then a
 *   commit carries a UUIDv7 key: the caller's (`CommitOptions.idempotencyKey`, to be
 *   reused only when resending the identical request) or a fresh one, the same on the
 *   internal retry after a 401.
 * - Multi-level namespaces are joined with `%1F` in paths.
 * - A commit's answer: 200 → `committed` (the metadata it returned); 409 → `conflict`;
 *   503 with Retry-After and 429 → `retry-later`; 500, 502, 504, any other 5xx, 503
 *   without Retry-After (the spec: it may have been partially processed), and a
 *   failure after the request may have been sent (reset, timeout) → `unknown`; a
 *   failure before (refused, DNS, connect) → retriable `CatalogError`; 400, 401, 403,
 *   404, 406 and other 4xx → `CatalogError`, not retriable.
 * - Auth: a static bearer token, or OAuth2 client credentials (rest/oauth2.ts). A 401
 *   (or 419) with OAuth2 drops the token and retries once with a new one: a refused
 *   request was not applied, so this is safe for commits too.
 * - No token, secret, or Authorization header ever appears in an error or `description`:
 *   every message derived from an answer is cut of the known secrets.
 */
import { v7 as uuidv7 } from 'uuid';
import type { RestCatalogConfig } from '../config/catalog-schema.ts';
import { CatalogError, type Catalog, type CommitOptions, type CommitOutcome, type CreateTableRequest, type TableIdent } from './catalog.ts';
import { parseIcebergJson, stringifyIcebergJson } from './iceberg/json.ts';
import { normalizeTableMetadata, type LoadedTable, type TableMetadata, type TableRequirement, type TableUpdate } from './iceberg/metadata.ts';
import { HttpClient, HttpFailure, retryAfterMs, type HttpResponse } from './rest/http.ts';
import { OAuth2ClientCredentials, redact } from './rest/oauth2.ts';

/** When a 429 names no Retry-After. */
const DEFAULT_RETRY_AFTER_MS = 5_000;

export interface RestCatalogOptions {
  /** The `catalog.rest` section with its secret references resolved. */
  config: RestCatalogConfig;
  now?: () => number;
}

export interface RestServerConfig {
  prefix: string;
  /** `idempotency-key-lifetime` (ISO-8601 duration) or null: keys not supported. */
  idempotencyKeyLifetime: string | null;
  /** defaults, then overrides. */
  properties: Record<string, string>;
}

/** A fresh Idempotency-Key: a UUIDv7 (RFC 9562), as the REST spec requires. */
export function newIdempotencyKey(): string {
  return uuidv7();
}

function safeUri(uri: string): string {
  const url = new URL(uri);
  url.username = '';
  url.password = '';
  url.search = '';
  return url.href.replace(/\/+$/, '');
}

type Method = 'GET' | 'POST';

export class RestCatalog implements Catalog {
  readonly description: string;
  /** A REST server may be any implementation; the Java ones renumber, so assume it does. */
  readonly renumbersFieldsOnCreate = true;
  private readonly config: RestCatalogConfig;
  private readonly base: string;
  private readonly http: HttpClient;
  private readonly oauth2: OAuth2ClientCredentials | null;
  private server: Promise<RestServerConfig> | null = null;

  constructor(options: RestCatalogOptions) {
    const c = options.config;
    this.config = c;
    this.base = c.uri.replace(/\/+$/, '');
    this.http = new HttpClient({ timeoutMs: c.request_timeout_ms, ...(c.ca_file ? { caFile: c.ca_file } : {}) });
    this.oauth2 = c.oauth2
      ? new OAuth2ClientCredentials({
          tokenEndpoint: c.oauth2.token_endpoint,
          clientId: c.oauth2.client_id,
          clientSecret: c.oauth2.client_secret,
          ...(c.oauth2.scope ? { scope: c.oauth2.scope } : {}),
          http: this.http,
          ...(options.now ? { now: options.now } : {}),
        })
      : null;
    this.description = `Iceberg REST catalog ${safeUri(c.uri)}${c.warehouse ? ` (warehouse ${c.warehouse})` : ''}`;
  }

  /** The server's configuration (fetched once; a failed fetch is retried on the next call). */
  serverConfig(): Promise<RestServerConfig> {
    this.server ??= this.fetchServerConfig().catch((error: unknown) => {
      this.server = null;
      throw error;
    });
    return this.server;
  }

  private async fetchServerConfig(): Promise<RestServerConfig> {
    const query = this.config.warehouse ? `?warehouse=${encodeURIComponent(this.config.warehouse)}` : '';
    const res = await this.request('GET', `${this.base}/v1/config${query}`);
    if (res.status !== 200) throw this.failure(res, 'GET /v1/config');
    const body = this.parse(res, 'GET /v1/config') as { defaults?: Record<string, string>; overrides?: Record<string, string>; 'idempotency-key-lifetime'?: string };
    const properties = { ...(body.defaults ?? {}), ...(body.overrides ?? {}) };
    return {
      prefix: (properties.prefix ?? '').replace(/^\/+|\/+$/g, ''),
      idempotencyKeyLifetime: typeof body['idempotency-key-lifetime'] === 'string' ? body['idempotency-key-lifetime'] : null,
      properties,
    };
  }

  private async routes(): Promise<string> {
    const { prefix } = await this.serverConfig();
    return prefix ? `${this.base}/v1/${prefix}` : `${this.base}/v1`;
  }

  private static namespacePath(namespace: string[]): string {
    return namespace.map(encodeURIComponent).join('%1F');
  }

  private async tableUrl(table: TableIdent): Promise<string> {
    return `${await this.routes()}/namespaces/${RestCatalog.namespacePath(table.namespace)}/tables/${encodeURIComponent(table.name)}`;
  }

  private secrets(): (string | undefined)[] {
    return [this.config.token, ...(this.oauth2?.secrets() ?? []), ...Object.values(this.config.headers)];
  }

  /** One exchange with auth; a 401/419 under OAuth2 drops the token and retries once. */
  private async request(method: Method, url: string, body?: string, extraHeaders: Record<string, string> = {}): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt += 1) {
      const headers: Record<string, string> = { accept: 'application/json', ...this.config.headers, ...extraHeaders };
      if (body !== undefined) headers['content-type'] = 'application/json';
      let token: string | undefined = this.config.token;
      if (this.oauth2) token = await this.oauth2.token();
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      const res = await this.http.send(method, url, headers, body);
      if ((res.status === 401 || res.status === 419) && this.oauth2 && token !== undefined && attempt === 0) {
        this.oauth2.invalidate(token);
        continue;
      }
      return res;
    }
  }

  /** A non-commit call's exchange; transport failures become retriable CatalogErrors. */
  private async call(method: Method, url: string, what: string, body?: string): Promise<HttpResponse> {
    try {
      return await this.request(method, url, body);
    } catch (error) {
      throw this.transportError(error, what);
    }
  }

  private transportError(error: unknown, what: string): CatalogError {
    if (error instanceof CatalogError) return error;
    if (error instanceof HttpFailure) {
      const code = error.sent ? 'CATALOG_NO_ANSWER' : 'CATALOG_UNREACHABLE';
      return new CatalogError(code, redact(`${what}: ${error.message}`, this.secrets()), true, null, { cause: error });
    }
    return new CatalogError('CATALOG_ERROR', redact(`${what}: ${(error as Error).message}`, this.secrets()), true, null, { cause: error });
  }

  /** `type: message` of an Iceberg error body, else the start of the body. */
  private detail(res: HttpResponse): string {
    let text = res.text.slice(0, 300);
    try {
      const e = (JSON.parse(res.text) as { error?: { message?: unknown; type?: unknown } }).error;
      if (e && (typeof e.message === 'string' || typeof e.type === 'string')) text = [e.type, e.message].filter((v) => typeof v === 'string').join(': ').slice(0, 500);
    } catch {
      // Not JSON: keep the start of the text.
    }
    return redact(text, this.secrets());
  }

  private failure(res: HttpResponse, what: string): CatalogError {
    const retriable = res.status >= 500 || res.status === 429 || res.status === 408;
    const detail = this.detail(res);
    return new CatalogError(`CATALOG_HTTP_${res.status}`, `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`, retriable, res.status);
  }

  private parse(res: HttpResponse, what: string): unknown {
    try {
      return parseIcebergJson(res.text);
    } catch (error) {
      throw new CatalogError('CATALOG_BAD_RESPONSE', `${what}: the answer is not JSON`, true, res.status, { cause: error });
    }
  }

  private loaded(res: HttpResponse, what: string): LoadedTable {
    const body = this.parse(res, what) as { 'metadata-location'?: string | null; metadata?: TableMetadata; config?: Record<string, string> };
    if (!body.metadata || typeof body.metadata !== 'object') throw new CatalogError('CATALOG_BAD_RESPONSE', `${what}: no table metadata in the answer`, true, res.status);
    return { metadataLocation: body['metadata-location'] ?? null, metadata: normalizeTableMetadata(body.metadata), config: body.config ?? {} };
  }

  async ensureNamespace(namespace: string[]): Promise<void> {
    const routes = await this.routes().catch((e: unknown) => {
      throw this.transportError(e, 'GET /v1/config');
    });
    const what = `namespace ${namespace.join('.')}`;
    const found = await this.call('GET', `${routes}/namespaces/${RestCatalog.namespacePath(namespace)}`, `load ${what}`);
    if (found.status === 200 || found.status === 204) return;
    if (found.status !== 404) throw this.failure(found, `load ${what}`);
    for (let depth = 1; depth <= namespace.length; depth += 1) {
      const level = namespace.slice(0, depth);
      const res = await this.call('POST', `${routes}/namespaces`, `create ${what}`, JSON.stringify({ namespace: level, properties: {} }));
      // 409: it exists (another agent, or a parent level that was there).
      if (res.status === 200 || res.status === 409) continue;
      // A 5xx may be another agent's create winning the race (the Apache fixture answers
      // 500 for the duplicate row): the outcome is unknown, so look before failing.
      if (res.status >= 500) {
        const after = await this.call('GET', `${routes}/namespaces/${RestCatalog.namespacePath(level)}`, `load namespace ${level.join('.')}`);
        if (after.status === 200 || after.status === 204) continue;
      }
      throw this.failure(res, `create namespace ${level.join('.')}`);
    }
  }

  async loadTable(table: TableIdent): Promise<LoadedTable | null> {
    const what = `load table ${table.namespace.join('.')}.${table.name}`;
    const url = await this.tableUrl(table).catch((e: unknown) => {
      throw this.transportError(e, 'GET /v1/config');
    });
    const res = await this.call('GET', url, what);
    if (res.status === 404) return null;
    if (res.status !== 200) throw this.failure(res, what);
    return this.loaded(res, what);
  }

  /**
   * Creates the table with OUR field ids. A plain create (`stage-create: false`) lets the
   * server pick the ids: Java catalogs (the Apache fixture, Polaris, …) renumber every
   * column 1..n (`TypeUtil.assignFreshIds`), so `plant` (100000) or a dataset with a gap
   * in its ids would no longer match the `field_id`s in the Parquet files. So: stage
   * the create (the server picks location and uuid, nothing is created), then commit
   * the table as a create transaction (`assert-create`) whose `add-schema` and
   * `add-spec` carry our ids; servers apply those updates as given. A server that
   * refuses staging (400, 405, 406, 501) gets the plain create; TableSetup then refuses
   * a table whose ids differ from the dataset's.
   * Losing the race to another agent (409 at either step) loads the winner's table.
   */
  async createTable(table: TableIdent, request: CreateTableRequest): Promise<LoadedTable> {
    const name = `${table.namespace.join('.')}.${table.name}`;
    const routes = await this.routes().catch((e: unknown) => {
      throw this.transportError(e, 'GET /v1/config');
    });
    const body = (stage: boolean): string =>
      stringifyIcebergJson({
        name: table.name,
        schema: request.schema,
        'partition-spec': request.spec,
        properties: request.properties,
        'stage-create': stage,
        ...(request.location ? { location: request.location } : {}),
      });
    const url = `${routes}/namespaces/${RestCatalog.namespacePath(table.namespace)}/tables`;
    let res = await this.call('POST', url, `stage table ${name}`, body(true));
    if (res.status === 404) {
      // The namespace is missing: create it, then the table.
      await this.ensureNamespace(table.namespace);
      res = await this.call('POST', url, `stage table ${name}`, body(true));
    }
    if (res.status === 409) return this.existing(table, name);
    if ([400, 405, 406, 501].includes(res.status)) {
      res = await this.call('POST', url, `create table ${name}`, body(false));
      if (res.status === 200) return this.loaded(res, `create table ${name}`);
      if (res.status === 409) return this.existing(table, name);
      throw this.failure(res, `create table ${name}`);
    }
    if (res.status !== 200) throw this.failure(res, `stage table ${name}`);
    const staged = this.loaded(res, `stage table ${name}`).metadata;
    const { 'format-version': formatVersion, ...properties } = request.properties;
    const lastColumnId = Math.max(0, ...request.schema.fields.map((f) => f.id));
    const create = stringifyIcebergJson({
      requirements: [{ type: 'assert-create' }],
      updates: [
        { action: 'assign-uuid', uuid: staged['table-uuid'] },
        { action: 'upgrade-format-version', 'format-version': Number(formatVersion ?? 2) },
        { action: 'add-schema', schema: request.schema, 'last-column-id': lastColumnId },
        { action: 'set-current-schema', 'schema-id': -1 },
        { action: 'add-spec', spec: request.spec },
        { action: 'set-default-spec', 'spec-id': -1 },
        { action: 'add-sort-order', 'sort-order': { 'order-id': 0, fields: [] } },
        { action: 'set-default-sort-order', 'sort-order-id': -1 },
        { action: 'set-location', location: staged.location },
        { action: 'set-properties', updates: properties },
      ],
    });
    const created = await this.call('POST', await this.tableUrl(table), `create table ${name}`, create);
    if (created.status === 200) return this.loaded(created, `create table ${name}`);
    if (created.status === 409) return this.existing(table, name);
    if (created.status >= 500) {
      // Maybe created: whoever did, the table is the table.
      const found = await this.loadTable(table);
      if (found) return found;
    }
    throw this.failure(created, `create table ${name}`);
  }

  /** Another agent created the table first: its table is the table. */
  private async existing(table: TableIdent, name: string): Promise<LoadedTable> {
    const found = await this.loadTable(table);
    if (found) return found;
    throw new CatalogError('CATALOG_CREATE_RACE', `create table ${name}: exists, but could not be loaded`, true, 409);
  }

  async commit(table: TableIdent, requirements: TableRequirement[], updates: TableUpdate[], options: CommitOptions = {}): Promise<CommitOutcome> {
    const what = `commit to ${table.namespace.join('.')}.${table.name}`;
    let server: RestServerConfig;
    let url: string;
    try {
      server = await this.serverConfig();
      url = await this.tableUrl(table);
    } catch (error) {
      throw this.transportError(error, 'GET /v1/config');
    }
    const headers: Record<string, string> = {};
    if (server.idempotencyKeyLifetime !== null) headers['idempotency-key'] = options.idempotencyKey ?? newIdempotencyKey();
    let res: HttpResponse;
    try {
      res = await this.request('POST', url, stringifyIcebergJson({ requirements, updates }), headers);
    } catch (error) {
      if (error instanceof HttpFailure && error.sent) return { kind: 'unknown', detail: redact(`${what}: ${error.message}`, this.secrets()) };
      throw this.transportError(error, what);
    }
    const detail = `${what}: HTTP ${res.status} ${this.detail(res)}`.trim();
    if (res.status === 200) return { kind: 'committed', table: this.loaded(res, what) };
    if (res.status === 409) return { kind: 'conflict', detail };
    if (res.status === 429 || res.status === 503) {
      const after = retryAfterMs(res.headers['retry-after']);
      if (after !== null) return { kind: 'retry-later', afterMs: after, detail };
      if (res.status === 429) return { kind: 'retry-later', afterMs: DEFAULT_RETRY_AFTER_MS, detail };
      return { kind: 'unknown', detail };
    }
    if (res.status >= 500) return { kind: 'unknown', detail };
    throw this.failure(res, what);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
