/**
 * /healthz (liveness: should systemd restart us?) and /readyz (readiness: can we
 * serve reads?). Both public, never authenticated, so a probe needs no token. 200
 * with `{ ok: true, reasons: [] }`; 503 with the reasons and the usual error member.
 */
import type { FastifyInstance } from 'fastify';
import { ApiErrorCode } from '../error-codes.ts';
import type { HealthPort, HealthStatus } from '../ports.ts';

function respond(status: HealthStatus, failCode: string) {
  if (status.ok) return { statusCode: 200, body: { ok: true, reasons: status.reasons } };
  return {
    statusCode: 503,
    body: { ok: false, reasons: status.reasons, error: { code: failCode, message: status.reasons.join('; ') || failCode } },
  };
}

export function registerHealthRoutes(app: FastifyInstance, port: HealthPort): void {
  app.get('/healthz', { config: { access: 'public' } }, async (_request, reply) => {
    const { statusCode, body } = respond(port.health(), ApiErrorCode.unhealthy);
    return reply.code(statusCode).header('cache-control', 'no-store').send(body);
  });
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const { statusCode, body } = respond(port.ready(), ApiErrorCode.notReady);
    return reply.code(statusCode).header('cache-control', 'no-store').send(body);
  });
}
