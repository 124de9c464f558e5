/**
 * The CLI's client of a running daemon's HTTP API. The address comes from `--url`, or
 * from the `api` section of `--config FILE`, or defaults to http://127.0.0.1:7070; a
 * bearer token from the LAKESIDE_TOKEN environment variable (never a command-line
 * argument, which other users could read in the process list).
 */
import { Readable, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { loadConfigFile } from '../../config/loader.ts';

export interface ClientOptions {
  url?: string;
  config?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;

  constructor(baseUrl: string, token: string | undefined) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
  }

  static async from(options: ClientOptions): Promise<ApiClient> {
    let url = options.url;
    if (!url && options.config) {
      const { config } = await loadConfigFile(options.config, { resolveSecrets: false });
      const scheme = config.api.tls ? 'https' : 'http';
      const host = config.api.listen_host === '0.0.0.0' || config.api.listen_host === '::' ? '127.0.0.1' : config.api.listen_host;
      url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.api.listen_port}`;
    }
    return new ApiClient(url ?? 'http://127.0.0.1:7070', process.env.LAKESIDE_TOKEN || undefined);
  }

  async json<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
    const response = await this.request(path, init, 'application/json');
    return (await response.json()) as T;
  }

  /**
   * Copies the response body to `out` as it arrives (bounded memory, whatever the
   * result's size), through `through` if given. A reader that went away (`… | head`:
   * EPIPE) ends it quietly, returning false; a body the daemon cut short is an ApiError.
   */
  async pipeTo(path: string, init: { method?: string; body?: unknown; accept: string }, out: NodeJS.WritableStream, through?: Transform): Promise<boolean> {
    const response = await this.request(path, init, init.accept);
    if (!response.body) return true;
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    try {
      if (through) await pipeline(body, through, out, { end: false });
      else await pipeline(body, out, { end: false });
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPIPE' || (out as Writable).destroyed) return false;
      throw new ApiError(0, 'STREAM_ABORTED', `the daemon ended the result early (${(error as Error).message}); what was printed is incomplete`);
    }
  }

  private async request(path: string, init: { method?: string; body?: unknown }, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method: init.method ?? 'GET',
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new ApiError(0, 'UNREACHABLE', `no lakeside API at ${this.baseUrl} (${cause}); is the daemon running? (--url or --config)`);
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
      throw new ApiError(response.status, body?.error?.code ?? `HTTP_${response.status}`, body?.error?.message ?? response.statusText);
    }
    return response;
  }
}
