/**
 * GET /metrics (Prometheus text exposition) and GET /v1/status (the state behind
 * `lakeside status`, open alerts included). Both need the `read` role when tokens are
 * configured: metric labels name datasets and streams of the plant. Neither is cached.
 */
import type { FastifyInstance } from 'fastify';
import type { MetricsPort, StatusPort } from '../ports.ts';

export function registerOperationsRoutes(app: FastifyInstance, ports: { metrics?: MetricsPort; status?: StatusPort }): void {
  const { metrics, status } = ports;
  if (metrics) {
    app.get('/metrics', { config: { access: 'read' } }, async (_request, reply) => {
      const { contentType, body } = await metrics.metrics();
      return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
    });
  }
  if (status) {
    app.get('/v1/status', { config: { access: 'read' } }, async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      return status.status();
    });
  }
}
