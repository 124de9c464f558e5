/**
 * The HTTP exchange under the REST catalog client: one request, one buffered answer,
 * and for a failure whether the request can have reached the server.
 *
 * Invariants:
 * - A request either returns a response (any status) or throws `HttpFailure` whose
 *   `sent` is false only when the server cannot have seen it: the connection was
 *   refused, the name did not resolve, the TCP/TLS connect failed or timed out.
 *   Everything else (a reset, an idle or deadline timeout) is `sent: true`, which a
 *   commit must treat as an unknown outcome.
 * - Each request has a deadline (`timeoutMs`) covering connect, headers and body.
 * - An extra CA file is added to Node's default roots, never replaces them. It is
 *   read at the first request, not at construction (no I/O before use).
 * - Messages carry the method, the URL path and an error code, never headers.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export class HttpFailure extends Error {
  readonly code: string;
  /** False only when the server cannot have received the request. */
  readonly sent: boolean;
  constructor(code: string, message: string, sent: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.sent = sent;
  }
}

export interface HttpClientOptions {
  timeoutMs: number;
  /** PEM file of extra CA certificates. */
  caFile?: string;
}

/** Failures before a byte of the request could reach the server. */
const NOT_SENT = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

function errorCode(error: unknown): string {
  let e = error as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth += 1) {
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'TIMEOUT';
    e = e.cause as typeof e;
  }
  return 'UNKNOWN';
}

export class HttpClient {
  private readonly options: HttpClientOptions;
  private agent: Agent | undefined;

  constructor(options: HttpClientOptions) {
    this.options = options;
  }

  private dispatcher(): Agent {
    if (!this.agent) {
      const ca = this.options.caFile ? [...rootCertificates, readFileSync(this.options.caFile, 'utf8')] : undefined;
      this.agent = new Agent({
        connect: { timeout: Math.min(this.options.timeoutMs, 10_000), ...(ca ? { ca } : {}) },
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
    }
    return this.agent;
  }

  async send(method: 'GET' | 'POST' | 'HEAD' | 'DELETE', url: string, headers: Record<string, string>, body?: string): Promise<HttpResponse> {
    const what = `${method} ${new URL(url).pathname}`;
    let dispatcher: Agent;
    try {
      dispatcher = this.dispatcher();
    } catch (error) {
      throw new HttpFailure('CA_FILE', `${what}: cannot read the CA file ${this.options.caFile} (${errorCode(error)})`, false, { cause: error });
    }
    try {
      const response = await request(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        dispatcher,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      const text = await response.body.text();
      return { status: response.statusCode, headers: response.headers, text };
    } catch (error) {
      const code = errorCode(error);
      const sent = !NOT_SENT.has(code);
      throw new HttpFailure(code, `${what}: ${code === 'TIMEOUT' ? `no answer within ${this.options.timeoutMs} ms` : code}`, sent, { cause: error });
    }
  }

  async close(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    await agent?.close();
  }
}

/** Retry-After (seconds or an HTTP date) in ms; null when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, nowMs = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}
