/**
 * OAuth2 client credentials (RFC 6749 §4.4) for the REST catalog: a form POST of
 * `grant_type=client_credentials`, `client_id`, `client_secret` and `scope` to the
 * token endpoint; the access token is cached.
 *
 * Invariants:
 * - One token fetch at a time: concurrent callers share it.
 * - A token is reused until `REFRESH_MARGIN` of its `expires_in` is left (one without
 *   `expires_in` until the catalog refuses it); `invalidate(token)` after a 401 drops
 *   it so the next call fetches a new one.
 * - Neither the client secret nor a token appears in an error message: the endpoint's
 *   answer is reduced to its RFC 6749 §5.2 `error` code and description, with every
 *   known secret cut out.
 */
import { CatalogError } from '../catalog.ts';
import type { HttpClient } from './http.ts';

/** Refresh this long before expiry, or at half the lifetime for short-lived tokens. */
const REFRESH_MARGIN_MS = 60_000;

export interface OAuth2Options {
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  /** Default `catalog`, the scope the Iceberg REST spec's OAuth2 security names. */
  scope?: string;
  http: HttpClient;
  now?: () => number;
}

interface CachedToken {
  token: string;
  /** When to fetch a new one (ms since the epoch); Infinity without expires_in. */
  refreshAtMs: number;
}

/** Cuts every secret out of `text`. */
export function redact(text: string, secrets: Iterable<string | undefined>): string {
  let out = text;
  for (const secret of secrets) if (secret && secret.length >= 4) out = out.split(secret).join('<redacted>');
  return out;
}

export class OAuth2ClientCredentials {
  private readonly options: OAuth2Options;
  private readonly now: () => number;
  private cached: CachedToken | null = null;
  private inflight: Promise<string> | null = null;

  constructor(options: OAuth2Options) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Secrets this source knows (for redaction elsewhere). */
  secrets(): string[] {
    return [this.options.clientSecret, ...(this.cached ? [this.cached.token] : [])];
  }

  async token(): Promise<string> {
    if (this.cached && this.now() < this.cached.refreshAtMs) return this.cached.token;
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /** After the catalog refused `token`: forget it (unless a newer one replaced it). */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = null;
  }

  private async fetchToken(): Promise<string> {
    const o = this.options;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: o.clientId, client_secret: o.clientSecret, scope: o.scope ?? 'catalog' });
    const started = this.now();
    let response;
    try {
      response = await o.http.send('POST', o.tokenEndpoint, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, form.toString());
    } catch (error) {
      throw new CatalogError('CATALOG_OAUTH2_UNREACHABLE', `OAuth2 token endpoint: ${(error as Error).message}`, true, null, { cause: error });
    }
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(response.text) as Record<string, unknown>;
    } catch {
      // Described below by status.
    }
    if (response.status !== 200 || typeof body.access_token !== 'string') {
      const detail = [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ').slice(0, 300);
      const retriable = response.status >= 500 || response.status === 429;
      const message = `OAuth2 token endpoint answered HTTP ${response.status}${detail ? ` (${detail})` : ''}`;
      throw new CatalogError('CATALOG_OAUTH2_REFUSED', redact(message, [o.clientSecret]), retriable, response.status);
    }
    const token = body.access_token;
    const expiresInMs = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : null;
    const margin = expiresInMs === null ? 0 : Math.min(REFRESH_MARGIN_MS, expiresInMs / 2);
    this.cached = { token, refreshAtMs: expiresInMs === null ? Infinity : started + expiresInMs - margin };
    return token;
  }
}
