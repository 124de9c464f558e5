/**
 * Bearer-token authentication with roles. Invariants: with no tokens configured
 * every route is open (startApiServer then insists on a loopback address); with
 * tokens, every route except the `public` ones (/healthz, /readyz) needs
 * `Authorization: Bearer <token>`, including unknown routes (a 404 is only shown to a
 * caller who may see it). Tokens are compared as sha256 digests with timingSafeEqual,
 * against every configured token, so timing says nothing about which one is close.
 * Token values are never logged: a refusal logs the route and reason, an admission
 * the token's name at most.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiErrorCode } from './error-codes.ts';
import { ApiError } from './errors.ts';

export type Role = 'read' | 'admin';
/** A route's access level, set as the route option `config.access`. */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

export interface ApiToken {
  name: string;
  role: Role;
  /** The resolved secret value. */
  token: string;
}

interface StoredToken {
  name: string;
  role: Role;
  digest: Buffer;
}

const REALM = 'Bearer realm="lakeside"';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export class TokenAuth {
  private readonly tokens: StoredToken[];

  constructor(tokens: readonly ApiToken[]) {
    this.tokens = tokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.token) }));
  }

  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  /** Throws ApiError 401/403 unless the request may use a route of `access`. */
  check(request: FastifyRequest, access: Access): void {
    if (!this.enabled || access === 'public') return;
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      throw new ApiError(ApiErrorCode.unauthenticated, 'missing bearer token', { 'www-authenticate': REALM });
    }
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const token = match ? this.find(match[1]!) : undefined;
    if (!token) {
      throw new ApiError(ApiErrorCode.unauthenticated, 'invalid bearer token', {
        'www-authenticate': `${REALM}, error="invalid_token"`,
      });
    }
    if (access === 'admin' && token.role !== 'admin') {
      throw new ApiError(ApiErrorCode.forbidden, `token "${token.name}" has role ${token.role}; this route needs admin`);
    }
  }

  private find(presented: string): StoredToken | undefined {
    const presentedDigest = digest(presented);
    let found: StoredToken | undefined;
    for (const token of this.tokens) {
      if (timingSafeEqual(token.digest, presentedDigest) && !found) found = token;
    }
    return found;
  }
}
