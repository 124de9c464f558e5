// An HTTP-level fault proxy for tests: it forwards every request to an upstream HTTP
// server (the Iceberg REST catalog) and, per a script, tampers with chosen requests in
// ways a TCP proxy cannot target: "the catalog applied this commit, and the client got
// a 502".
//
//   const proxy = await startHttpFaultProxy({ upstream: rest.uri });
//   proxy.script(isCommit, [{ kind: 'status', status: 502 }, { kind: 'reset' }]);
//   // lakeside's catalog.rest.uri = proxy.url
//
// Invariants:
// - A request is read whole before anything is forwarded; it is forwarded at most once,
//   and, once forwarded, to the end, even if the client went away meanwhile (so a held
//   request released after the client died still reaches the catalog: "applied while
//   the agent was dead").
// - The faults that replace an answer ('status', 'reset') act only AFTER the upstream
//   answered: the exchange records the upstream's status, so a test can assert that the
//   catalog really applied what the client saw fail.
// - Actions are taken from the script in order, one per matching request; a matching
//   request with the script empty, and every other request, passes through unchanged.
// - `keepHost`: the client's Host header goes upstream unchanged (S3 signs it: SigV4),
//   instead of the upstream's.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type HttpFaultAction =
  | { kind: 'pass' }
  /**
   * Forward; once the upstream answered, answer the client `status` instead (its body
   * discarded): with `body` (of `contentType`), else a JSON error as a REST catalog sends.
   */
  | { kind: 'status'; status: number; body?: string; contentType?: string }
  /** Forward; once the upstream answered, reset the client connection (no answer at all). */
  | { kind: 'reset' }
  /** Hold the request (not forwarded) until `release()`; then forward it and answer the client if it is still there. */
  | { kind: 'hold-request' }
  /** Forward at once; hold the upstream's answer until `release()`. */
  | { kind: 'hold-response' };

export interface HttpExchange {
  id: number;
  method: string;
  path: string;
  action: HttpFaultAction['kind'];
  /** The upstream's status, once it answered (undefined: not forwarded or not answered yet). */
  upstreamStatus?: number;
  /** What the client got: a status, 'reset', or undefined while pending / if it went away. */
  clientGot?: number | 'reset';
  /** The client's connection closed before it got an answer. */
  clientGone: boolean;
  /** The request body (commit requests are JSON). */
  body: string;
}

export interface HttpFaultProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Matching requests take the next action of `actions` (replacing any earlier script). */
  script(match: (method: string, path: string, body: string) => boolean, actions: HttpFaultAction[]): void;
  /** Actions of the script not used yet. */
  remaining(): number;
  /** Lets held requests and answers go on. */
  release(): void;
  readonly exchanges: readonly HttpExchange[];
  /** The first exchange (seen or future) matching `pred`, once it has reached the state `pred` checks. */
  waitFor(pred: (e: HttpExchange) => boolean, timeoutMs?: number): Promise<HttpExchange>;
  close(): Promise<void>;
}

/** An Iceberg REST table commit: POST to `/v1/[prefix/]namespaces/<ns>/tables/<table>` (not the create route `…/tables`). */
export function isTableCommit(method: string, path: string): boolean {
  return method === 'POST' && /\/v1\/(.+\/)?namespaces\/[^/]+\/tables\/[^/?]+(\?.*)?$/.test(path);
}

/** A table commit that adds a snapshot (an append, replace …), not a create or schema change. */
export function isSnapshotCommit(method: string, path: string, body: string): boolean {
  return isTableCommit(method, path) && body.includes('"add-snapshot"');
}

export async function startHttpFaultProxy(opts: { upstream: string; keepHost?: boolean }): Promise<HttpFaultProxy> {
  const upstream = new URL(opts.upstream);
  const exchanges: HttpExchange[] = [];
  let matcher: (method: string, path: string, body: string) => boolean = () => false;
  let actions: HttpFaultAction[] = [];
  let held: (() => void)[] = [];
  let waiters: { pred: (e: HttpExchange) => boolean; resolve: (e: HttpExchange) => void }[] = [];

  const changed = (): void => {
    for (const w of waiters.slice()) {
      const hit = exchanges.find(w.pred);
      if (hit) {
        waiters = waiters.filter((x) => x !== w);
        w.resolve(hit);
      }
    }
  };

  const release = (): void => {
    const list = held;
    held = [];
    for (const r of list) r();
  };
  const holdUntilReleased = (): Promise<void> => new Promise((resolve) => held.push(resolve));

  const forward = (method: string, path: string, headers: IncomingMessage['headers'], body: Buffer): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: upstream.hostname, port: upstream.port, method, path, headers: { ...headers, ...(opts.keepHost ? {} : { host: upstream.host }), 'content-length': String(body.length) }, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const action: HttpFaultAction = matcher(method, path, body.toString('utf8')) ? (actions.shift() ?? { kind: 'pass' }) : { kind: 'pass' };
    const exchange: HttpExchange = { id: exchanges.length + 1, method, path, action: action.kind, clientGone: false, body: body.toString('utf8') };
    exchanges.push(exchange);
    res.on('close', () => {
      if (!res.writableFinished && exchange.clientGot === undefined) {
        exchange.clientGone = true;
        changed();
      }
    });
    changed();
    const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, ...headers } = req.headers;
    if (action.kind === 'hold-request') await holdUntilReleased();
    let answer;
    try {
      answer = await forward(method, path, headers, body);
    } catch (error) {
      exchange.clientGot = 'reset';
      req.socket.resetAndDestroy();
      changed();
      throw error;
    }
    exchange.upstreamStatus = answer.status;
    changed();
    if (action.kind === 'hold-response') await holdUntilReleased();
    if (res.destroyed || exchange.clientGone) return;
    if (action.kind === 'reset') {
      exchange.clientGot = 'reset';
      req.socket.resetAndDestroy();
    } else if (action.kind === 'status') {
      exchange.clientGot = action.status;
      const text = action.body ?? JSON.stringify({ error: { message: `injected by the test proxy (upstream answered ${answer.status})`, type: 'InjectedFault', code: action.status } });
      res.writeHead(action.status, { 'content-type': action.contentType ?? 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    } else {
      exchange.clientGot = answer.status;
      const { connection: _rc, 'keep-alive': _rk, 'transfer-encoding': _rt, ...out } = answer.headers;
      // A HEAD answer has no body: its content-length is the object's size, kept as sent.
      res.writeHead(answer.status, method === 'HEAD' ? out : { ...out, 'content-length': String(answer.body.length) });
      res.end(answer.body);
    }
    changed();
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.destroyed) res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    script(match, list) {
      matcher = match;
      actions = [...list];
    },
    remaining: () => actions.length,
    release,
    waitFor(pred, timeoutMs = 60_000) {
      const seen = exchanges.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (e: HttpExchange) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`http fault proxy: no matching exchange within ${timeoutMs} ms; seen: ${exchanges.map((e) => `${e.method} ${e.path} ${e.action} → ${e.upstreamStatus}/${e.clientGot}`).join('; ')}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async close() {
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
