/**
 * The HTTP API: a fastify instance built by a factory (no I/O, no listen; tests use
 * inject()) and started by startApiServer. Invariants: every error is
 * `{ error: { code, message } }` with a code from error-codes.ts; with tokens
 * configured every route but /healthz and /readyz needs a bearer token (auth.ts);
 * without tokens the server refuses to listen anywhere but loopback; the
 * Authorization header is never logged (fastify's request serializer omits headers,
 * and the logger redacts it should anything log them). Requests are logged at debug
 * only: the latest-value path serves ~1200 req/s.
 */
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { isIP } from 'node:net';
import { fastify, LogController, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import { TokenAuth, type ApiToken } from './auth.ts';
import { ApiErrorCode } from './error-codes.ts';
import { ApiError, sendError } from './errors.ts';
import type { BlobsPort, ConfigPort, DatasetsPort, HealthPort, LatestPort, MetricsPort, QueryPort, StatusPort } from './ports.ts';
import { registerBlobRoute } from './routes/blobs.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerOperationsRoutes } from './routes/operations.ts';
import { registerQueryRoute } from './routes/query.ts';
import { registerReadRoutes } from './routes/reads.ts';

export interface ApiServerDeps {
  query: QueryPort;
  latest: LatestPort;
  datasets: DatasetsPort;
  health: HealthPort;
  blobs: BlobsPort;
  /** GET /v1/config (admin) exists only when given. */
  config?: ConfigPort;
  /** GET /metrics and GET /v1/status (read role) exist only when given. */
  metrics?: MetricsPort;
  status?: StatusPort;
  /** api.tokens with resolved secret values; empty = no authentication. */
  tokens: readonly ApiToken[];
  logger: Logger;
  /** api.tls: the server is https; the files are read by startApiServer. */
  tls?: { certFile: string; keyFile: string };
  /** Largest accepted request body (default 1 MiB: a query is SQL, not data). */
  bodyLimitBytes?: number;
}

interface ServerMeta {
  authEnabled: boolean;
  tls?: { certFile: string; keyFile: string };
}

const metaOf = new WeakMap<FastifyInstance, ServerMeta>();

const REDACTED_PATHS = ['req.headers.authorization', 'headers.authorization', 'request.headers.authorization'];

export function buildApiServer(deps: ApiServerDeps): FastifyInstance {
  const auth = new TokenAuth(deps.tokens);
  const logger = deps.logger.child({ component: 'api' }, { redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
  const tls = deps.tls;
  const app = fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes ?? 1024 * 1024,
    // Unknown body fields are refused (a typo like `maxRows` must not be ignored).
    ajv: { customOptions: { removeAdditional: false } },
    return503OnClosing: true,
    // https without a certificate yet: startApiServer sets it (setSecureContext), so
    // building stays free of I/O.
    ...(tls ? { serverFactory: (handler: Parameters<typeof createHttpsServer>[1]) => createHttpsServer({}, handler) } : {}),
  }) as unknown as FastifyInstance;
  app.removeContentTypeParser('text/plain'); // a query body is JSON; anything else is a 415
  metaOf.set(app, { authEnabled: auth.enabled, ...(tls ? { tls } : {}) });

  app.addHook('onRequest', async (request) => {
    auth.check(request, request.routeOptions.config.access ?? 'read');
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 },
      'request',
    );
  });
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) => sendError(new ApiError(ApiErrorCode.notFound, `no route ${request.method} ${request.url.split('?')[0]}`), request, reply));

  registerHealthRoutes(app, deps.health);
  registerQueryRoute(app, deps.query);
  registerReadRoutes(app, deps);
  registerBlobRoute(app, deps.blobs);
  registerOperationsRoutes(app, deps);
  const configPort = deps.config;
  if (configPort) {
    app.get('/v1/config', { config: { access: 'admin' } }, async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return { config: configPort.redacted() };
    });
  }
  return app;
}

export class ApiStartError extends Error {
  readonly code = ApiErrorCode.exposedWithoutTokens;
}

/** 127.0.0.0/8, ::1, an IPv4-mapped loopback, or the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0:){7}1$/.test(h) || h.startsWith('::ffff:127.');
  return false;
}

/**
 * Listens on host:port (TLS when the app was built with `tls`: the certificate and
 * key are read now). Refuses a non-loopback host when no tokens are configured.
 * Returns the URL it serves on.
 */
export async function startApiServer(app: FastifyInstance, options: { host: string; port: number }): Promise<{ url: string }> {
  const meta = metaOf.get(app);
  if (!meta) throw new Error('startApiServer: the app was not built by buildApiServer');
  if (!meta.authEnabled && !isLoopbackHost(options.host)) {
    throw new ApiStartError(
      `${ApiErrorCode.exposedWithoutTokens}: api.listen_host is ${options.host}, which is not loopback, and api.tokens is empty; ` +
        'an unauthenticated API must not be exposed to the plant network: configure api.tokens or listen on 127.0.0.1',
    );
  }
  if (meta.tls) {
    const [cert, key] = await Promise.all([readFile(meta.tls.certFile), readFile(meta.tls.keyFile)]);
    (app.server as unknown as HttpsServer).setSecureContext({ cert, key });
  }
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return { url: `${meta.tls ? 'https' : 'http'}://${host}:${port}` };
}
