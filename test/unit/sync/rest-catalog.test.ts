// The REST catalog client against a small fake catalog (fastify on loopback): auth,
// routes, and the classification of every answer into the catalog.ts contract.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { catalogSchema, type RestCatalogConfig } from '../../../config/catalog-schema.ts';
import { CatalogError } from '../../../sync/catalog.ts';
import { stringifyIcebergJson } from '../../../sync/iceberg/json.ts';
import { newTableMetadata } from '../../../sync/iceberg/apply-updates.ts';
import { newIdempotencyKey, RestCatalog } from '../../../sync/rest-catalog.ts';
import { hasOpenssl, writeSelfSignedCert } from '../../support/tls-cert.ts';
import { append, BIG_ID, schema, spec } from './fixtures.ts';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** The body as sent (JSON.parse would round 64-bit ids). */
  raw: string;
}

type Handler = (req: FastifyRequest, reply: FastifyReply, seen: Seen) => unknown;

const SECRET = 'cl1ent-s3cret-value';
const metadata = newTableMetadata({ location: 's3://wh/ns/t', schema, spec, properties: {}, nowMs: 1_700_000_000_000, tableUuid: '11111111-2222-4333-8444-555555555555' });
const headSnapshot = (append(BIG_ID, 1, null)[0] as { snapshot: unknown }).snapshot;
/** A LoadTableResult / CommitTableResponse body with one snapshot whose id is past 2^53. */
const tableBody = (location = 's3://wh/ns/t/metadata/00001.metadata.json') =>
  stringifyIcebergJson({ 'metadata-location': location, metadata: { ...metadata, 'current-snapshot-id': BIG_ID, snapshots: [headSnapshot] }, config: { 'client.region': 'eu-west-1' } });

let servers: FastifyInstance[] = [];
let catalogs: RestCatalog[] = [];
afterEach(async () => {
  await Promise.all(catalogs.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Fake {
  uri: string;
  seen: Seen[];
  tokensIssued: number;
  on(method: string, path: RegExp, handler: Handler): void;
}

async function fakeCatalog(opts: { config?: Record<string, unknown>; tokenTtlS?: number; https?: { cert: string; key: string } } = {}): Promise<Fake> {
  // The https and http instances differ only in their server type, which no handler here touches.
  const app = (opts.https ? Fastify({ https: opts.https }) : Fastify()) as unknown as FastifyInstance;
  servers.push(app);
  const raw = new WeakMap<object, string>();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (req, body, done) => {
    raw.set(req, body as string);
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    raw.set(req, body as string);
    done(null, JSON.parse(body as string));
  });
  const routes: { method: string; path: RegExp; handler: Handler }[] = [];
  const fake: Fake = {
    uri: '',
    seen: [],
    tokensIssued: 0,
    on(method, path, handler) {
      routes.unshift({ method, path, handler });
    },
  };
  fake.on('GET', /^\/v1\/config/, () => opts.config ?? { defaults: {}, overrides: { prefix: 'ws1' }, 'idempotency-key-lifetime': 'PT30M' });
  fake.on('POST', /^\/oauth\/token$/, (_req, reply, seen) => {
    const form = seen.body as Record<string, string>;
    if (form.client_secret !== SECRET) return reply.code(401).send({ error: 'invalid_client', error_description: `bad secret ${form.client_secret}` });
    fake.tokensIssued += 1;
    return { access_token: `token-${fake.tokensIssued}`, token_type: 'bearer', ...(opts.tokenTtlS ? { expires_in: opts.tokenTtlS } : {}) };
  });
  app.all('/*', async (req, reply) => {
    const seen = { method: req.method, url: req.raw.url!, headers: req.headers, body: req.body, raw: raw.get(req) ?? '' };
    fake.seen.push(seen);
    const route = routes.find((r) => r.method === req.method && r.path.test(req.raw.url!));
    if (!route) return reply.code(404).send({ error: { message: `no route ${req.raw.url}`, type: 'NoSuchTableException', code: 404 } });
    const result = await route.handler(req, reply, seen);
    if (typeof result === 'string') return reply.type('application/json').send(result);
    return result;
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  // The test certificate names localhost.
  fake.uri = opts.https ? address.replace('127.0.0.1', 'localhost') : address;
  return fake;
}

/**
 * A client on the fake, its config parsed as the loader does (defaults applied, secrets
 * as references), then `resolve` stands in for the loader's in-place secret resolution.
 */
function catalog(fake: { uri: string }, rest: Record<string, unknown> = {}, resolve: (c: RestCatalogConfig) => void = () => {}, now?: () => number): RestCatalog {
  const parsed = catalogSchema.parse({ type: 'rest', rest: { uri: fake.uri, request_timeout_ms: 1_000, ...rest } }).rest!;
  resolve(parsed);
  const c = new RestCatalog({ config: parsed, ...(now ? { now } : {}) });
  catalogs.push(c);
  return c;
}

const oauth2 = (fake: Fake) => ({ oauth2: { token_endpoint: `${fake.uri}/oauth/token`, client_id: 'c', client_secret: '${env:S}' } });
const withSecret = (secret: string) => (r: RestCatalogConfig) => {
  r.oauth2!.client_secret = secret;
};

const ident = { namespace: ['plant', 'line3'], name: 'readings' };
const commitPath = /^\/v1\/ws1\/namespaces\/plant%1Fline3\/tables\/readings$/;

describe('RestCatalog', () => {
  it('uses the prefix from /v1/config (with the warehouse), %1F namespaces, and the bearer token and extra headers', async () => {
    const fake = await fakeCatalog();
    fake.on('GET', commitPath, () => tableBody());
    const c = catalog(fake, { warehouse: 'plant wh', token: '${env:X}', headers: { 'X-Iceberg-Access-Delegation': 'vended-credentials' } }, (r) => (r.token = 'static-token-1'));
    const t = await c.loadTable(ident);
    expect(t!.metadataLocation).toBe('s3://wh/ns/t/metadata/00001.metadata.json');
    expect(t!.metadata['current-snapshot-id']).toBe(BIG_ID);
    expect(t!.config).toEqual({ 'client.region': 'eu-west-1' });
    expect(fake.seen.map((s) => s.url)).toEqual(['/v1/config?warehouse=plant%20wh', '/v1/ws1/namespaces/plant%1Fline3/tables/readings']);
    for (const s of fake.seen) {
      expect(s.headers.authorization).toBe('Bearer static-token-1');
      expect(s.headers['x-iceberg-access-delegation']).toBe('vended-credentials');
    }
    expect(c.description).not.toContain('static-token-1');
  });

  it('works without a prefix', async () => {
    const fake = await fakeCatalog({ config: { defaults: {}, overrides: {} } });
    const c = catalog(fake);
    expect(await c.loadTable({ namespace: ['a'], name: 'b' })).toBeNull();
    expect(fake.seen.at(-1)!.url).toBe('/v1/namespaces/a/tables/b');
  });

  it('OAuth2: fetches a token with the client credentials form, caches it, and refreshes once on a 401', async () => {
    const fake = await fakeCatalog({ tokenTtlS: 3600 });
    let refuse = false;
    fake.on('GET', commitPath, (req, reply) => {
      if (refuse && req.headers.authorization === 'Bearer token-1') return reply.code(401).send({ error: { message: 'token expired', type: 'NotAuthorizedException', code: 401 } });
      return tableBody();
    });
    const resolved = catalog(fake, { oauth2: { token_endpoint: `${fake.uri}/oauth/token`, client_id: 'plant-7', client_secret: '${env:S}', scope: 'PRINCIPAL_ROLE:ALL' } }, withSecret(SECRET));
    await resolved.loadTable(ident);
    await resolved.loadTable(ident);
    expect(fake.tokensIssued).toBe(1);
    const tokenRequest = fake.seen.find((s) => s.url === '/oauth/token')!;
    expect(tokenRequest.body).toEqual({ grant_type: 'client_credentials', client_id: 'plant-7', client_secret: SECRET, scope: 'PRINCIPAL_ROLE:ALL' });
    expect(tokenRequest.headers['content-type']).toBe('application/x-www-form-urlencoded');
    refuse = true;
    expect(await resolved.loadTable(ident)).not.toBeNull();
    expect(fake.tokensIssued).toBe(2);
    expect(fake.seen.at(-1)!.headers.authorization).toBe('Bearer token-2');
  });

  it('OAuth2: refreshes a token shortly before it expires', async () => {
    const fake = await fakeCatalog({ tokenTtlS: 100 });
    fake.on('GET', commitPath, () => tableBody());
    let now = 1_000_000;
    const c = catalog(fake, oauth2(fake), withSecret(SECRET), () => now);
    await c.loadTable(ident);
    now += 40_000;
    await c.loadTable(ident);
    expect(fake.tokensIssued).toBe(1);
    now += 20_000; // 60 s of 100 gone: within the refresh margin (half the lifetime for short tokens)
    await c.loadTable(ident);
    expect(fake.tokensIssued).toBe(2);
    expect(fake.seen.find((s) => s.url === '/oauth/token')!.body).toMatchObject({ scope: 'catalog' });
  });

  it('OAuth2: a refused client secret is a CatalogError that never shows the secret', async () => {
    const fake = await fakeCatalog();
    const c = catalog(fake, oauth2(fake), withSecret('wrong-secret-42'));
    const error = await c.loadTable(ident).then(
      () => null,
      (e: unknown) => e as CatalogError,
    );
    expect(error).toBeInstanceOf(CatalogError);
    expect(error).toMatchObject({ code: 'CATALOG_OAUTH2_REFUSED', retriable: false, status: 401 });
    expect(error!.message).toContain('invalid_client');
    expect(error!.message).not.toContain('wrong-secret-42');
    expect(JSON.stringify(error)).not.toContain('wrong-secret-42');
  });

  it('a static token refused with 401 is not retried and not retriable', async () => {
    const fake = await fakeCatalog();
    fake.on('GET', commitPath, (_req, reply) => reply.code(401).send({ error: { message: 'Not authorized', type: 'NotAuthorizedException', code: 401 } }));
    const c = catalog(fake, { token: '${env:T}' }, (r) => (r.token = 'tok-abcdef'));
    await expect(c.loadTable(ident)).rejects.toMatchObject({ code: 'CATALOG_HTTP_401', retriable: false, message: expect.stringContaining('NotAuthorizedException: Not authorized') });
    expect(fake.seen.filter((s) => commitPath.test(s.url))).toHaveLength(1);
  });

  it('ensureNamespace: an existing namespace is left alone; a missing one is created level by level, 409 is fine', async () => {
    const fake = await fakeCatalog();
    const existing = new Set(['plant']);
    fake.on('GET', /^\/v1\/ws1\/namespaces\/[^/]+$/, (req, reply) => {
      const ns = decodeURIComponent(req.raw.url!.split('/').at(-1)!).split('\x1f').join('.');
      return existing.has(ns) ? { namespace: ns.split('.'), properties: {} } : reply.code(404).send({ error: { message: 'no', type: 'NoSuchNamespaceException', code: 404 } });
    });
    fake.on('POST', /^\/v1\/ws1\/namespaces$/, (req, reply) => {
      const ns = (req.body as { namespace: string[] }).namespace.join('.');
      if (existing.has(ns)) return reply.code(409).send({ error: { message: 'exists', type: 'AlreadyExistsException', code: 409 } });
      existing.add(ns);
      return { namespace: ns.split('.'), properties: {} };
    });
    const c = catalog(fake);
    await c.ensureNamespace(['plant']);
    expect(fake.seen.filter((s) => s.method === 'POST')).toHaveLength(0);
    await c.ensureNamespace(['plant', 'line3']);
    expect(fake.seen.filter((s) => s.method === 'POST').map((s) => (s.body as { namespace: string[] }).namespace)).toEqual([['plant'], ['plant', 'line3']]);
    expect(existing.has('plant.line3')).toBe(true);
    expect(fake.seen.some((s) => s.url === '/v1/ws1/namespaces/plant%1Fline3')).toBe(true);
  });

  it('ensureNamespace: a 500 on create (another agent won the race) is fine once the namespace is there; a 500 with no namespace fails', async () => {
    const fake = await fakeCatalog();
    const existing = new Set<string>();
    let raceLost = true;
    fake.on('GET', /^\/v1\/ws1\/namespaces\/[^/]+$/, (req, reply) => {
      const ns = decodeURIComponent(req.raw.url!.split('/').at(-1)!).split('\x1f').join('.');
      return existing.has(ns) ? { namespace: ns.split('.'), properties: {} } : reply.code(404).send({ error: { message: 'no', type: 'NoSuchNamespaceException', code: 404 } });
    });
    fake.on('POST', /^\/v1\/ws1\/namespaces$/, (req, reply) => {
      const ns = (req.body as { namespace: string[] }).namespace.join('.');
      if (raceLost) existing.add(ns); // the other agent's create landed; ours hit the duplicate row
      return reply.code(500).send({ error: { message: 'UncheckedSQLException: Failed to execute: INSERT INTO iceberg_namespace_properties', type: 'UncheckedSQLException', code: 500 } });
    });
    const c = catalog(fake);
    await c.ensureNamespace(['lakeside']);
    expect(existing.has('lakeside')).toBe(true);
    raceLost = false;
    await expect(c.ensureNamespace(['other'])).rejects.toMatchObject({ message: expect.stringContaining('create namespace other') });
  });

  it('createTable stages the create, then commits it with our field ids (assert-create); a 409 (another agent won) loads the table', async () => {
    const fake = await fakeCatalog();
    let exists = false;
    fake.on('POST', /^\/v1\/ws1\/namespaces\/plant%1Fline3\/tables$/, (req, reply) => {
      expect((req.body as Record<string, unknown>)['stage-create']).toBe(true);
      if (exists) return reply.code(409).send({ error: { message: 'Table already exists', type: 'AlreadyExistsException', code: 409 } });
      return tableBody('s3://wh/ns/t/metadata/staged.metadata.json');
    });
    fake.on('POST', commitPath, (_req, reply) => {
      if (exists) return reply.code(409).send({ error: { message: 'Requirement failed: table already exists', type: 'CommitFailedException', code: 409 } });
      exists = true;
      return tableBody();
    });
    fake.on('GET', commitPath, () => tableBody('s3://wh/ns/t/metadata/00002.metadata.json'));
    const c = catalog(fake);
    const created = await c.createTable(ident, { schema, spec, properties: { 'format-version': '2', 'lakeside.dataset': 'readings' } });
    expect(created.metadataLocation).toMatch(/00001/);
    const [stage, create] = fake.seen.filter((s) => s.method === 'POST');
    expect(stage!.body).toMatchObject({ name: 'readings', schema, 'partition-spec': spec, 'stage-create': true });
    expect(create!.url).toBe('/v1/ws1/namespaces/plant%1Fline3/tables/readings');
    const { requirements, updates } = create!.body as { requirements: unknown[]; updates: Record<string, unknown>[] };
    expect(requirements).toEqual([{ type: 'assert-create' }]);
    expect(updates).toEqual([
      { action: 'assign-uuid', uuid: metadata['table-uuid'] },
      { action: 'upgrade-format-version', 'format-version': 2 },
      { action: 'add-schema', schema, 'last-column-id': Math.max(...schema.fields.map((f) => f.id)) },
      { action: 'set-current-schema', 'schema-id': -1 },
      { action: 'add-spec', spec },
      { action: 'set-default-spec', 'spec-id': -1 },
      { action: 'add-sort-order', 'sort-order': { 'order-id': 0, fields: [] } },
      { action: 'set-default-sort-order', 'sort-order-id': -1 },
      { action: 'set-location', location: metadata.location },
      { action: 'set-properties', updates: { 'lakeside.dataset': 'readings' } },
    ]);
    // Exists now: the stage answers 409, the table is loaded.
    const again = await c.createTable(ident, { schema, spec, properties: {} });
    expect(again.metadataLocation).toMatch(/00002/);
  });

  it('createTable falls back to a plain create where the server refuses staging', async () => {
    const fake = await fakeCatalog();
    fake.on('POST', /^\/v1\/ws1\/namespaces\/plant%1Fline3\/tables$/, (req, reply) => {
      if ((req.body as Record<string, unknown>)['stage-create']) return reply.code(406).send({ error: { message: 'staging not supported', type: 'UnsupportedOperationException', code: 406 } });
      return tableBody();
    });
    const c = catalog(fake);
    const created = await c.createTable(ident, { schema, spec, properties: {} });
    expect(created.metadataLocation).toMatch(/00001/);
    expect(fake.seen.filter((s) => s.method === 'POST').map((s) => (s.body as Record<string, unknown>)['stage-create'])).toEqual([true, false]);
  });

  describe('commit outcomes', () => {
    async function commitAnswering(answer: Handler, rest: Record<string, unknown> = {}) {
      const fake = await fakeCatalog();
      fake.on('POST', commitPath, answer);
      const c = catalog(fake, rest);
      const outcome = await c.commit(ident, [{ type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null }], append(BIG_ID, 1, null));
      return { outcome, fake };
    }
    const iceberg = (status: number, type: string, message: string) => (_req: FastifyRequest, reply: FastifyReply) => reply.code(status).send({ error: { message, type, code: status } });

    it('200 → committed with the returned metadata; the body keeps 64-bit ids exact', async () => {
      const { outcome, fake } = await commitAnswering(() => tableBody('s3://wh/ns/t/metadata/00003.metadata.json'));
      expect(outcome).toMatchObject({ kind: 'committed', table: { metadataLocation: 's3://wh/ns/t/metadata/00003.metadata.json' } });
      if (outcome.kind === 'committed') expect(outcome.table.metadata['current-snapshot-id']).toBe(BIG_ID);
      expect(fake.seen.find((s) => s.method === 'POST')!.headers['content-type']).toMatch(/application\/json/);
    });

    it('the request body carries the snapshot ids digit for digit', async () => {
      const { fake } = await commitAnswering(() => tableBody());
      const sent = fake.seen.find((s) => s.method === 'POST')!;
      expect(sent.raw).toContain('"snapshot-id":9007199254740993');
      expect(sent.raw).toContain('"requirements":[{"type":"assert-ref-snapshot-id","ref":"main","snapshot-id":null}]');
    });

    it('409 → conflict', async () => {
      const { outcome } = await commitAnswering(iceberg(409, 'CommitFailedException', 'Requirement failed: branch main has changed'));
      expect(outcome).toMatchObject({ kind: 'conflict', detail: expect.stringContaining('CommitFailedException: Requirement failed') });
    });

    it.each([500, 502, 504])('%i → unknown', async (status) => {
      const { outcome } = await commitAnswering(iceberg(status, 'CommitStateUnknownException', 'gateway'));
      expect(outcome).toMatchObject({ kind: 'unknown', detail: expect.stringContaining(`HTTP ${status}`) });
    });

    it('503 with Retry-After → retry-later; 503 without → unknown (it may have been partially processed)', async () => {
      const later = await commitAnswering((_req, reply) => reply.code(503).header('retry-after', '7').send({ error: { message: 'Slow down', type: 'SlowDownException', code: 503 } }));
      expect(later.outcome).toMatchObject({ kind: 'retry-later', afterMs: 7000 });
      const bare = await commitAnswering(iceberg(503, 'SlowDownException', 'Slow down'));
      expect(bare.outcome.kind).toBe('unknown');
    });

    it('429 → retry-later', async () => {
      const { outcome } = await commitAnswering((_req, reply) => reply.code(429).header('retry-after', '2').send({}));
      expect(outcome).toMatchObject({ kind: 'retry-later', afterMs: 2000 });
    });

    it.each([400, 403, 404, 406])('%i → CatalogError, not retriable', async (status) => {
      await expect(commitAnswering(iceberg(status, 'BadRequestException', 'nope'))).rejects.toMatchObject({ code: `CATALOG_HTTP_${status}`, retriable: false, status });
    });

    it('no answer within the request timeout → unknown', async () => {
      const { outcome } = await commitAnswering(async () => {
        await new Promise((r) => setTimeout(r, 3_000));
        return tableBody();
      }, { request_timeout_ms: 200 });
      expect(outcome).toMatchObject({ kind: 'unknown', detail: expect.stringContaining('no answer within 200 ms') });
    });

    it('a connection reset after the request was sent → unknown', async () => {
      const { outcome } = await commitAnswering((req) => {
        req.raw.socket.resetAndDestroy();
        return new Promise(() => {});
      });
      expect(outcome.kind).toBe('unknown');
    });

    it('connection refused before sending → CatalogError, retriable', async () => {
      const fake = await fakeCatalog();
      const c = catalog(fake);
      await c.serverConfig();
      await servers.pop()!.close();
      const error = await c.commit(ident, [], append(1n, 1, null)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'CATALOG_UNREACHABLE', retriable: true });
    });

    it('OAuth2: a 401 on a commit (not applied) refreshes the token and resends with the same Idempotency-Key', async () => {
      const fake = await fakeCatalog();
      let first = true;
      fake.on('POST', commitPath, (_req, reply) => {
        if (first) {
          first = false;
          return reply.code(401).send({ error: { message: 'expired', type: 'NotAuthorizedException', code: 401 } });
        }
        return tableBody();
      });
      const c = catalog(fake, oauth2(fake), withSecret(SECRET));
      const key = newIdempotencyKey();
      const outcome = await c.commit(ident, [], append(1n, 1, null), { idempotencyKey: key });
      expect(outcome.kind).toBe('committed');
      const commits = fake.seen.filter((s) => s.method === 'POST' && commitPath.test(s.url));
      expect(commits.map((s) => s.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
      expect(commits.map((s) => s.headers['idempotency-key'])).toEqual([key, key]);
    });
  });

  it('Idempotency-Key: a fresh UUIDv7 per commit unless the caller passes one; none when the server does not advertise it', async () => {
    const fake = await fakeCatalog();
    fake.on('POST', commitPath, () => tableBody());
    const c = catalog(fake);
    await c.commit(ident, [], append(1n, 1, null));
    await c.commit(ident, [], append(1n, 1, null));
    const key = newIdempotencyKey();
    await c.commit(ident, [], append(1n, 1, null), { idempotencyKey: key });
    await c.commit(ident, [], append(1n, 1, null), { idempotencyKey: key });
    const keys = fake.seen.filter((s) => s.method === 'POST').map((s) => s.headers['idempotency-key'] as string);
    for (const k of keys) expect(k).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(keys[0]).not.toBe(keys[1]);
    expect(keys.slice(2)).toEqual([key, key]);
    expect((await c.serverConfig()).idempotencyKeyLifetime).toBe('PT30M');

    const plain = await fakeCatalog({ config: { defaults: {}, overrides: { prefix: 'ws1' } } });
    plain.on('POST', commitPath, () => tableBody());
    await catalog(plain).commit(ident, [], append(1n, 1, null), { idempotencyKey: key });
    expect(plain.seen.at(-1)!.headers['idempotency-key']).toBeUndefined();
  });

  it('an Iceberg error body names type and message; a non-JSON body its start', async () => {
    const fake = await fakeCatalog();
    fake.on('GET', commitPath, (_req, reply) => reply.code(400).type('text/plain').send('plain failure text'));
    await expect(catalog(fake).loadTable(ident)).rejects.toMatchObject({ message: expect.stringContaining('HTTP 400 plain failure text') });
  });

  it.skipIf(!hasOpenssl() && process.env.CI !== 'true')('https: trusts the server through ca_file; without it the connection fails before sending (retriable)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lakeside-rest-tls-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    writeSelfSignedCert(certFile, keyFile);
    const fake = await fakeCatalog({ https: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') } });
    fake.on('GET', commitPath, () => tableBody());
    expect(fake.uri).toMatch(/^https:\/\/localhost:/);
    expect(await catalog(fake, { ca_file: certFile }).loadTable(ident)).not.toBeNull();
    await expect(catalog(fake).loadTable(ident)).rejects.toMatchObject({ code: 'CATALOG_UNREACHABLE', retriable: true });
    await expect(catalog(fake).commit(ident, [], append(1n, 1, null))).rejects.toMatchObject({ code: 'CATALOG_UNREACHABLE' });
  });
});
