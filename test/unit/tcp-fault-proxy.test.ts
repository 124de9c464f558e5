// The TCP fault proxy (test/support/tcp-fault-proxy.ts) against a real TCP echo server
// and a real node:http server: every fault is injected on real sockets and checked by
// what each end received (bytes, EOF, ECONNRESET), never by how long anything took.
import { randomBytes } from 'node:crypto';
import { get, createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.ts';
import { startFaultProxy, type FaultProxy, type FaultProxyOptions } from '../support/tcp-fault-proxy.ts';
import { waitFor } from '../support/wait-for.ts';

/** What one end of a TCP connection saw. */
interface End {
  data: Buffer;
  ended: boolean;
  closed: boolean;
  error: string | undefined;
}

function record(socket: Socket): End {
  const end: End = { data: Buffer.alloc(0), ended: false, closed: false, error: undefined };
  socket.on('data', (d: Buffer) => {
    end.data = Buffer.concat([end.data, d]);
  });
  socket.on('end', () => {
    end.ended = true;
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    end.error = e.code;
  });
  socket.on('close', () => {
    end.closed = true;
  });
  return end;
}

interface EchoServer {
  port: number;
  /** The server side of every accepted connection, in accept order. */
  peers: End[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An echo server; `transform` rewrites what is echoed (to tell two servers apart). */
async function startEcho(transform: (d: Buffer) => Buffer = (d) => d): Promise<EchoServer> {
  const peers: End[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    peers.push(record(s));
    s.on('data', (d: Buffer) => s.write(transform(d)));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return { port: addr.port, peers };
}

async function proxyTo(port: number, extra: Partial<FaultProxyOptions> = {}): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, ...extra });
  cleanups.push(() => proxy.close());
  return proxy;
}

interface Client extends End {
  socket: Socket;
}

function dial(proxy: FaultProxy): Client {
  const socket = connect({ host: proxy.host, port: proxy.port, noDelay: true });
  const client = Object.assign(record(socket), { socket });
  cleanups.push(() => {
    socket.destroy();
  });
  return client;
}

const text = (e: End): string => e.data.toString('latin1');

/** Write and wait until the proxy has taken the bytes in (forwarded or held). */
async function send(proxy: FaultProxy, client: Client, data: string | Buffer): Promise<void> {
  const before = proxy.stats();
  const target = before.bytesUpstream + before.heldUpstream + Buffer.byteLength(data);
  client.socket.write(data);
  await waitFor(() => {
    const s = proxy.stats();
    return s.bytesUpstream + s.heldUpstream >= target;
  }, 'the proxy to read the bytes');
}

/** A client through the proxy that has had `greeting` echoed back: connected end to end. */
async function echoedClient(proxy: FaultProxy, greeting = 'a'): Promise<Client> {
  const client = dial(proxy);
  await send(proxy, client, greeting);
  await waitFor(() => text(client) === greeting, 'the first echo');
  return client;
}

describe('tcp fault proxy', () => {
  it('pass forwards both directions byte for byte, forwards the half-close and counts', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
    expect(proxy.url('mqtt')).toBe(`mqtt://127.0.0.1:${proxy.port}`);
    const payload = randomBytes(512 * 1024);
    const client = dial(proxy);
    client.socket.end(payload);
    await waitFor(() => client.closed, 'the client to close');
    expect(client.error).toBeUndefined();
    expect(client.ended).toBe(true);
    expect(client.data.equals(payload)).toBe(true);
    expect(echo.peers[0]?.data.equals(payload)).toBe(true);
    expect(echo.peers[0]?.ended).toBe(true);
    const stats = proxy.stats();
    expect(stats).toMatchObject({ accepted: 1, bytesUpstream: payload.length, bytesDownstream: payload.length, resets: 0 });
    await waitFor(() => proxy.connections() === 0, 'the proxied connection to go away');
  });

  it('latency holds data until it is due and keeps chunk order under jitter', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy, 'hello');

    // Not due for a minute: the bytes sit in the proxy, the server has not seen them.
    proxy.setFault({ kind: 'latency', ms: 60_000, direction: 'upstream' });
    await send(proxy, client, 'held');
    expect(proxy.stats().heldUpstream).toBe(4);
    expect(echo.peers[0]?.data.toString()).toBe('hello');
    // A shorter delay makes them due (counted from when the proxy received them).
    proxy.setFault({ kind: 'latency', ms: 0 });
    await waitFor(() => text(client) === 'helloheld', 'the held bytes after the delay shrank');

    // Each chunk gets its own random delay; delivered one at a time, order still holds.
    proxy.setFault({ kind: 'latency', ms: 1, jitterMs: 40 });
    let expected = 'helloheld';
    for (let i = 0; i < 40; i++) {
      const chunk = `<${i}>`;
      expected += chunk;
      await send(proxy, client, chunk);
    }
    await waitFor(() => client.data.length >= expected.length, 'all jittered chunks');
    expect(echo.peers[0]?.data.toString()).toBe(expected);
    expect(text(client)).toBe(expected);
  });

  it('blackhole forwards nothing, not even the connect, until the fault is lifted', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy);

    proxy.setFault({ kind: 'blackhole' });
    await send(proxy, client, 'bc');
    const late = dial(proxy);
    await send(proxy, late, 'x');
    expect(proxy.stats()).toMatchObject({ accepted: 2, heldUpstream: 3 });
    expect(echo.peers).toHaveLength(1); // the late client's connect is held too
    expect(echo.peers[0]?.data.toString()).toBe('a');
    expect(text(client)).toBe('a');
    expect(proxy.connections()).toBe(2);

    proxy.setFault({ kind: 'pass' });
    await waitFor(() => text(client) === 'abc' && text(late) === 'x', 'the held bytes after the heal');
    expect(echo.peers.map((p) => p.data.toString())).toEqual(['abc', 'x']);
  });

  it('a downstream blackhole lets the request reach the server but not the reply', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port, { fault: { kind: 'blackhole', direction: 'downstream' } });
    const client = dial(proxy);
    await send(proxy, client, 'ping');
    await waitFor(() => echo.peers[0]?.data.toString() === 'ping', 'the server to get the request');
    await waitFor(() => proxy.stats().heldDownstream === 4, 'the reply to be held');
    expect(client.data.length).toBe(0);
    proxy.setFault({ kind: 'pass' });
    await waitFor(() => text(client) === 'ping', 'the reply after the heal');
  });

  it('reset RSTs open connections and every new one until lifted', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy);

    proxy.setFault({ kind: 'reset' });
    await waitFor(() => client.closed, 'the open connection to die');
    expect(client.error).toBe('ECONNRESET');
    await waitFor(() => echo.peers[0]?.closed, 'the server side to die');
    expect(echo.peers[0]?.error).toBe('ECONNRESET');

    const next = dial(proxy);
    await waitFor(() => next.closed, 'the new connection to die');
    expect(next.error).toBe('ECONNRESET');
    expect(echo.peers).toHaveLength(1);
    expect(proxy.stats().resets).toBe(2);

    proxy.setFault({ kind: 'pass' });
    const healed = dial(proxy);
    await send(proxy, healed, 'ok');
    await waitFor(() => text(healed) === 'ok', 'an echo after the heal');
  });

  it('close-after-bytes downstream delivers exactly N bytes per connection, then EOF', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port, { fault: { kind: 'close-after-bytes', bytes: 10, direction: 'downstream' } });
    const payload = randomBytes(100);
    for (let i = 0; i < 2; i++) {
      const client = dial(proxy);
      client.socket.write(payload);
      await waitFor(() => client.closed, 'the connection to close');
      expect(client.error).toBeUndefined();
      expect(client.ended).toBe(true);
      expect(client.data.equals(payload.subarray(0, 10))).toBe(true);
    }
    expect(proxy.stats()).toMatchObject({ closedAfterBytes: 2, bytesDownstream: 20 });
  });

  it('close-after-bytes counts from when it is set and cuts upstream too', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy, 'hello');
    proxy.setFault({ kind: 'close-after-bytes', bytes: 3, direction: 'upstream' });
    client.socket.write('abcdef');
    await waitFor(() => client.closed && echo.peers[0]?.closed, 'both sides to close');
    expect(echo.peers[0]).toMatchObject({ ended: true, error: undefined });
    expect(echo.peers[0]?.data.toString()).toBe('helloabc');
    expect(client).toMatchObject({ ended: true, error: undefined });
  });

  describe('reset-after-response', () => {
    interface Http {
      port: number;
      /** Responses the server finished writing. */
      answered: number;
    }
    async function startHttp(): Promise<Http> {
      const state: Http = { port: 0, answered: 0 };
      const server: HttpServer = createHttpServer((req, res) => {
        res.on('finish', () => state.answered++);
        res.end('committed');
      });
      await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
      cleanups.push(() => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      });
      const addr = server.address();
      if (addr === null || typeof addr === 'string') throw new Error('no address');
      state.port = addr.port;
      return state;
    }
    function request(url: string): Promise<{ status: number | undefined; body: string }> {
      return new Promise((resolve, reject) => {
        get(url, { agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode, body }));
          res.on('error', reject);
        }).on('error', reject);
      });
    }

    it('the server answers the request, the client gets a reset instead of the answer', async () => {
      const http = await startHttp();
      const proxy = await proxyTo(http.port, { fault: { kind: 'reset-after-response' } });
      await expect(request(proxy.url('http') + '/commit')).rejects.toMatchObject({ code: 'ECONNRESET' });
      expect(http.answered).toBe(1);

      // Whole response read by the proxy: trigger on the target going quiet.
      proxy.setFault({ kind: 'reset-after-response', idleMs: 20 });
      await expect(request(proxy.url('http') + '/commit')).rejects.toMatchObject({ code: 'ECONNRESET' });
      expect(http.answered).toBe(2);
      expect(proxy.stats()).toMatchObject({ responsesWithheld: 2, resets: 2, bytesDownstream: 0 });

      proxy.setFault({ kind: 'pass' });
      await expect(request(proxy.url('http') + '/commit')).resolves.toEqual({ status: 200, body: 'committed' });
    });

    it('lifting the fault before the trigger releases the held response', async () => {
      const http = await startHttp();
      const proxy = await proxyTo(http.port, { fault: { kind: 'reset-after-response', idleMs: 60_000 } });
      const pending = request(proxy.url('http') + '/commit');
      await waitFor(() => http.answered === 1 && proxy.stats().heldDownstream > 0, 'the held response');
      proxy.setFault({ kind: 'pass' });
      await expect(pending).resolves.toEqual({ status: 200, body: 'committed' });
      expect(proxy.stats().responsesWithheld).toBe(0);
    });
  });

  it('setTarget sends new connections to the new target; dropAll kills the open ones', async () => {
    const a = await startEcho();
    const b = await startEcho((d) => Buffer.from(d.toString().toUpperCase()));
    const proxy = await proxyTo(a.port);
    const first = dial(proxy);
    await send(proxy, first, 'ab');
    await waitFor(() => text(first) === 'ab', 'the echo from a');

    proxy.setTarget({ host: '127.0.0.1', port: b.port });
    expect(proxy.target.port).toBe(b.port);
    const second = dial(proxy);
    await send(proxy, second, 'ab');
    await waitFor(() => text(second) === 'AB', 'the echo from b');
    await send(proxy, first, 'cd');
    await waitFor(() => text(first) === 'abcd', 'the old connection still on a');
    expect(proxy.connections()).toBe(2);

    proxy.dropAll();
    await waitFor(() => first.closed && second.closed, 'both connections to die');
    expect([first.error, second.error]).toEqual(['ECONNRESET', 'ECONNRESET']);
    await waitFor(() => proxy.connections() === 0, 'no proxied connections');
  });

  it("dropAll('end') closes open connections cleanly on both sides", async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy);
    proxy.dropAll('end');
    await waitFor(() => client.closed && echo.peers[0]?.closed, 'both sides to close');
    expect(client).toMatchObject({ ended: true, error: undefined });
    expect(echo.peers[0]).toMatchObject({ ended: true, error: undefined });
    expect(proxy.stats().resets).toBe(0);
  });

  it('an unreachable target resets the client', async () => {
    const proxy = await proxyTo(await freePort());
    const client = dial(proxy);
    await waitFor(() => client.closed, 'the client to be reset');
    expect(client.error).toBe('ECONNRESET');
    expect(proxy.stats()).toMatchObject({ targetConnectFailures: 1, resets: 1 });
  });

  it('close stops listening and ends open connections', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    const client = await echoedClient(proxy);
    await proxy.close();
    await waitFor(() => client.closed, 'the client to close');
    expect(client.error).toBeUndefined();
    const after = dial(proxy);
    await waitFor(() => after.closed, 'the refused connect');
    expect(after.error).toBe('ECONNREFUSED');
    await proxy.close(); // idempotent
  });

  it('rejects malformed faults and keeps the current one', async () => {
    const echo = await startEcho();
    const proxy = await proxyTo(echo.port);
    expect(() => proxy.setFault({ kind: 'latency', ms: -1 })).toThrow(/ms must be/);
    expect(() => proxy.setFault({ kind: 'close-after-bytes', bytes: 1.5, direction: 'upstream' })).toThrow(/integer/);
    // Both triggers at once is a type error too; the cast checks the runtime guard.
    const both = { kind: 'reset-after-response', responseBytes: 1, idleMs: 5 } as unknown as Parameters<FaultProxy['setFault']>[0];
    expect(() => proxy.setFault(both)).toThrow(/not both/);
    expect(proxy.fault).toEqual({ kind: 'pass' });
  });
});
