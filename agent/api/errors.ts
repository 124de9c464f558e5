/**
 * Turning every failure into `{ error: { code, message } }`: ApiError for the routes'
 * own refusals, port errors mapped by their `code`, fastify's own errors (validation,
 * body parsing, size) mapped by status. Only 5xx are logged as errors; their message
 * is never sent to the client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorCode, statusOf, type ApiErrorCodeValue } from './error-codes.ts';
import { PortErrorCode } from './ports.ts';

export class ApiError extends Error {
  readonly code: ApiErrorCodeValue;
  readonly statusCode: number;
  readonly headers: Record<string, string>;

  constructor(code: ApiErrorCodeValue, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.statusCode = statusOf[code];
    this.headers = headers;
  }
}

export function errorBody(code: ApiErrorCodeValue, message: string): { error: { code: ApiErrorCodeValue; message: string } } {
  return { error: { code, message } };
}

const portCodes = new Set<string>(Object.values(PortErrorCode));

/** The response for any thrown value. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const e = error as Partial<FastifyError> & { code?: unknown; validation?: unknown };
  if (typeof e.code === 'string' && portCodes.has(e.code)) {
    return new ApiError(e.code as ApiErrorCodeValue, String(e.message ?? e.code));
  }
  if (Array.isArray(e.validation)) return new ApiError(ApiErrorCode.badRequest, validationMessage(e as FastifyError));
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return new ApiError(ApiErrorCode.payloadTooLarge, 'request body too large');
  if (status === 415) return new ApiError(ApiErrorCode.unsupportedMediaType, 'request body must be application/json');
  if (status === 404) return new ApiError(ApiErrorCode.notFound, 'not found');
  if (status >= 400 && status < 500) return new ApiError(ApiErrorCode.badRequest, String(e.message ?? 'bad request'));
  return new ApiError(ApiErrorCode.internal, 'internal error');
}

/** "body.max_rows: must be integer" — names the field, as the config errors do. */
function validationMessage(error: FastifyError): string {
  const context = (error as { validationContext?: string }).validationContext ?? 'request';
  const first = error.validation?.[0];
  if (!first) return error.message;
  const params = first.params as Record<string, unknown>;
  const path = [context, ...first.instancePath.split('/').filter(Boolean)];
  if (typeof params.missingProperty === 'string') return `${[...path, params.missingProperty].join('.')}: required`;
  if (typeof params.additionalProperty === 'string') return `${[...path, params.additionalProperty].join('.')}: unknown field`;
  if (Array.isArray(params.allowedValues)) return `${path.join('.')}: must be one of ${params.allowedValues.join(', ')}`;
  return `${path.join('.')}: ${first.message ?? 'invalid'}`;
}

export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const apiError = toApiError(error);
  if (apiError.statusCode >= 500) request.log.error({ err: error, code: apiError.code }, 'request failed');
  if (apiError.statusCode === 401 || apiError.statusCode === 403) {
    request.log.warn({ code: apiError.code, method: request.method, url: request.url, remote: request.ip }, apiError.message);
  }
  // Headers a route set for a success (ETag, immutable caching, length) must not
  // describe an error.
  for (const name of ['etag', 'content-length', 'content-range', 'accept-ranges']) reply.removeHeader(name);
  return reply
    .code(apiError.statusCode)
    .header('cache-control', 'no-store')
    .headers(apiError.headers)
    .type('application/json; charset=utf-8')
    .send(errorBody(apiError.code, apiError.message));
}
