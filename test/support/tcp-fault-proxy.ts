// A TCP fault proxy for tests: it listens on a loopback port, forwards every accepted
// connection to a target host:port, and injects network faults that can be switched
// while connections are open. Put it between lakeside and Kafka, an S3 server, the
// Iceberg REST catalog or Mosquitto, and point lakeside at `proxy.address`.
//
//   const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: broker.port } });
//   connect(proxy.url('mqtt'));                  // or proxy.address ("127.0.0.1:43121")
//   proxy.setFault({ kind: 'blackhole' });       // partition: nothing moves either way
//   proxy.setFault({ kind: 'pass' });            // heal: held bytes flow on, in order
//   await proxy.close();
//
// Invariants:
// - Bytes are never reordered, duplicated or dropped mid-stream: each direction of a
//   connection is one ordered queue of steps (the upstream connect, data chunks, EOF,
//   close/RST of the other side). Faults only hold steps back or end the connection
//   (FIN or RST), the way a real network fails a TCP stream.
// - A fault applies to open connections the moment it is set. Held steps are
//   re-evaluated at once, so lifting a fault releases what it held.
// - "upstream" is client → target, "downstream" is target → client. An EOF or RST of
//   one side is forwarded to the other in order behind that side's data, so a held
//   direction also hides that its sender went away.
// - The target is connected per client connection, as the first upstream step: a
//   blackholed or delayed upstream also holds back the connect, so the target sees
//   nothing of a partitioned client. An unreachable target resets the client (a direct
//   client would see ECONNREFUSED; through the proxy it sees ECONNRESET).
//
// Faults (one at a time; per-connection counts start when the fault is set, or when the
// connection is accepted if that is later):
// - pass: forward everything (default).
// - latency {ms, jitterMs?, direction?}: each step is forwarded no earlier than
//   `ms + random(0..jitterMs)` after the proxy received it; order is kept, so a jittered
//   chunk also waits for the ones before it.
// - blackhole {direction?}: hold every step in the direction(s); connections stay open,
//   accepted clients connect fine. Data waits in the proxy (source sockets are paused
//   past 1 MiB, so senders see TCP backpressure) until the fault changes.
// - reset: RST every open connection (both sides) and every new one on accept.
// - close-after-bytes {bytes, direction}: once `bytes` bytes went through in that
//   direction, forward no more and close both sides cleanly (FIN). A chunk crossing the
//   limit is cut, so the receiver gets exactly `bytes` bytes, then EOF.
// - reset-after-response {responseBytes? | idleMs?}: "the request reached the server,
//   the client never learned the outcome". After the client's first byte goes upstream,
//   every downstream step (response bytes, the server's EOF) is held back from the
//   client; once the response counts as complete the client is RST and the target
//   connection closed cleanly, and the held response is discarded. Complete means:
//   `responseBytes` bytes received from the target (default 1: the server started
//   answering, which for an HTTP server means it handled the request), or, with
//   `idleMs`, the target sent at least one byte and then nothing for `idleMs`.
//   The response is held rather than forwarded-then-reset because bytes written just
//   before an RST may or may not be readable by the client, which would make the test
//   racy. Setting another fault before the trigger releases the held response.
//
// Caveats for later tests: Kafka clients connect to the brokers' advertised listeners
// after bootstrap, so a proxy in front of Kafka only sees the bootstrap connection unless
// the broker advertises the proxy's address. S3 clients must use path-style addressing.
import { connect, createServer, type Socket } from 'node:net';

export type Direction = 'upstream' | 'downstream';
/** Which direction(s) a latency or blackhole fault affects (default 'both'). */
export type Directions = Direction | 'both';

export type Fault =
  | { kind: 'pass' }
  | { kind: 'latency'; ms: number; jitterMs?: number; direction?: Directions }
  | { kind: 'blackhole'; direction?: Directions }
  | { kind: 'reset' }
  | { kind: 'close-after-bytes'; bytes: number; direction: Direction }
  | { kind: 'reset-after-response'; responseBytes?: number; idleMs?: undefined }
  | { kind: 'reset-after-response'; idleMs: number; responseBytes?: undefined };

export interface Target {
  host: string;
  port: number;
}

export interface FaultProxyOptions {
  target: Target;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default 0: the kernel picks a free one, race-free). */
  port?: number;
  /** Initial fault (default pass). */
  fault?: Fault;
}

export interface FaultProxyStats {
  /** Client connections accepted since start. */
  accepted: number;
  /** Bytes forwarded client → target. */
  bytesUpstream: number;
  /** Bytes forwarded target → client. */
  bytesDownstream: number;
  /** Bytes received but held in the proxy right now, per direction. */
  heldUpstream: number;
  heldDownstream: number;
  /** Client connections the proxy RST: reset fault, reset-after-response, dropAll('reset'), unreachable target. */
  resets: number;
  /** Connections ended by close-after-bytes. */
  closedAfterBytes: number;
  /** Connections whose response reset-after-response withheld. */
  responsesWithheld: number;
  /** Connects to the target that failed. */
  targetConnectFailures: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** "host:port" of the proxy, for broker lists and endpoints. */
  readonly address: string;
  /** `${scheme}://host:port`, e.g. url('mqtt'), url('http'). */
  url(scheme: string): string;
  readonly fault: Fault;
  readonly target: Target;
  /** Switch the fault; applies to open connections at once (see header). */
  setFault(fault: Fault): void;
  /** New connections go to `target`; open ones stay where they are (dropAll() moves them). */
  setTarget(target: Target): void;
  /** Proxied connections with at least one side still open. */
  connections(): number;
  stats(): FaultProxyStats;
  /** Kill open connections now, both sides: RST (default) or a clean FIN. */
  dropAll(how?: 'reset' | 'end'): void;
  /** Stop listening and destroy every connection. Idempotent. */
  close(): Promise<void>;
}

/** Past this many held bytes in one direction the source socket is paused. */
const HOLD_HIGH_WATER = 1024 * 1024;

/** One queued step of a direction; data is a Buffer. */
type Step = Buffer | 'connect' | 'end' | 'close' | 'reset';
interface Queued {
  step: Step;
  receivedAt: number;
  /** Fraction of jitterMs this step gets, drawn once so re-evaluation is stable. */
  jitter: number;
}

interface Pipe {
  readonly dir: Direction;
  queue: Queued[];
  heldBytes: number;
  /** Bytes forwarded since the current fault was armed (close-after-bytes). */
  forwarded: number;
  /** Whether the source's EOF / close has been queued. */
  source: 'open' | 'ended' | 'closed';
  pumping: boolean;
  wake: (() => void) | undefined;
}

interface Conn {
  client: Socket;
  upstream: Socket | undefined;
  clientClosed: boolean;
  upstreamClosed: boolean;
  up: Pipe;
  down: Pipe;
  /** The proxy ended this connection: queues are cleared, nothing more is forwarded. */
  done: boolean;
  /** reset-after-response: a request byte went upstream since the fault was armed. */
  requestSeen: boolean;
  responseHeld: number;
  idleTimer: NodeJS.Timeout | undefined;
}

type Ending = 'reset' | 'end' | 'destroy';

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  let fault: Fault = checkFault(opts.fault ?? { kind: 'pass' });
  let target: Target = { ...opts.target };
  const conns = new Set<Conn>();
  const counts = { accepted: 0, bytesUpstream: 0, bytesDownstream: 0, resets: 0, closedAfterBytes: 0, responsesWithheld: 0, targetConnectFailures: 0 };

  const newPipe = (dir: Direction): Pipe => ({ dir, queue: [], heldBytes: 0, forwarded: 0, source: 'open', pumping: false, wake: undefined });
  const sourceOf = (c: Conn, p: Pipe): Socket | undefined => (p.dir === 'upstream' ? c.client : c.upstream);
  const destOf = (c: Conn, p: Pipe): Socket | undefined => (p.dir === 'upstream' ? c.upstream : c.client);
  const applies = (d: Directions | undefined, dir: Direction): boolean => (d ?? 'both') === 'both' || d === dir;

  /** How long the head step must still wait under the current fault (Infinity: held). */
  function holdMs(c: Conn, p: Pipe, q: Queued): number {
    const f = fault;
    if (f.kind === 'blackhole' && applies(f.direction, p.dir)) return Infinity;
    if (f.kind === 'latency' && applies(f.direction, p.dir)) return q.receivedAt + f.ms + q.jitter * (f.jitterMs ?? 0) - Date.now();
    if (f.kind === 'reset-after-response' && p.dir === 'downstream' && c.requestSeen) return Infinity;
    return 0;
  }

  function enqueue(c: Conn, p: Pipe, step: Step): void {
    if (c.done) return;
    p.queue.push({ step, receivedAt: Date.now(), jitter: Math.random() });
    if (step === 'end') p.source = 'ended';
    if (step === 'close' || step === 'reset') p.source = 'closed';
    if (Buffer.isBuffer(step)) {
      p.heldBytes += step.length;
      if (fault.kind === 'reset-after-response' && p.dir === 'downstream' && c.requestSeen) {
        c.responseHeld += step.length;
        if (responseComplete(c, fault)) return;
      }
      updateFlow(c, p);
    }
    pump(c, p).catch((error: unknown) => {
      // A bug in the proxy must not pass silently as a "network fault".
      console.error('tcp-fault-proxy: pump failed', error);
      finish(c, 'destroy', 'destroy');
    });
  }

  // Forwards head steps while the fault lets them through; at most one pump per pipe.
  async function pump(c: Conn, p: Pipe): Promise<void> {
    if (p.pumping) return;
    p.pumping = true;
    try {
      while (!c.done && p.queue.length > 0) {
        const head = p.queue[0] as Queued;
        const wait = holdMs(c, p, head);
        if (wait > 0) {
          await nap(p, wait);
          continue;
        }
        p.queue.shift();
        deliver(c, p, head.step);
      }
    } finally {
      p.pumping = false;
    }
  }

  function deliver(c: Conn, p: Pipe, step: Step): void {
    if (step === 'connect') return openUpstream(c);
    const dest = destOf(c, p);
    if (Buffer.isBuffer(step)) p.heldBytes -= step.length;
    if (dest === undefined || dest.destroyed) return;
    if (!Buffer.isBuffer(step)) {
      if (step === 'end') dest.end();
      else if (step === 'reset') rst(dest);
      else dest.destroy();
      return;
    }
    const f = fault;
    const limit = f.kind === 'close-after-bytes' && f.direction === p.dir ? f.bytes - p.forwarded : Infinity;
    const chunk = step.length > limit ? step.subarray(0, Math.max(0, limit)) : step;
    if (chunk.length > 0) {
      dest.write(chunk);
      p.forwarded += chunk.length;
      if (p.dir === 'upstream') counts.bytesUpstream += chunk.length;
      else counts.bytesDownstream += chunk.length;
      if (p.dir === 'upstream' && f.kind === 'reset-after-response') c.requestSeen = true;
    }
    if (!closedAfterBytes(c)) updateFlow(c, p);
  }

  // Pause a source while its direction holds too much or its destination needs a drain.
  function updateFlow(c: Conn, p: Pipe): void {
    const source = sourceOf(c, p);
    if (source === undefined || c.done) return;
    const full = p.heldBytes > HOLD_HIGH_WATER || (destOf(c, p)?.writableNeedDrain ?? false);
    if (full) source.pause();
    else if (source.isPaused()) source.resume();
  }

  function closedAfterBytes(c: Conn): boolean {
    const f = fault;
    if (f.kind !== 'close-after-bytes' || c.done) return false;
    if ((f.direction === 'upstream' ? c.up : c.down).forwarded < f.bytes) return false;
    counts.closedAfterBytes++;
    finish(c, 'end', 'end');
    return true;
  }

  function responseComplete(c: Conn, f: Extract<Fault, { kind: 'reset-after-response' }>): boolean {
    const withhold = (): void => {
      if (c.done) return;
      counts.responsesWithheld++;
      counts.resets++;
      finish(c, 'reset', 'end');
    };
    if (f.idleMs !== undefined) {
      clearTimeout(c.idleTimer);
      c.idleTimer = setTimeout(withhold, f.idleMs);
      return false;
    }
    if (c.responseHeld < (f.responseBytes ?? 1)) return false;
    withhold();
    return true;
  }

  function openUpstream(c: Conn): void {
    let connected = false;
    const s = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    c.upstream = s;
    s.on('connect', () => {
      connected = true;
    });
    s.on('data', (chunk: Buffer) => enqueue(c, c.down, chunk));
    s.on('end', () => enqueue(c, c.down, 'end'));
    s.on('drain', () => updateFlow(c, c.up));
    let code: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => {
      code = e.code;
      if (!connected && !c.done) {
        counts.targetConnectFailures++;
        counts.resets++;
        finish(c, 'reset', 'destroy');
      }
    });
    s.on('close', (hadError) => {
      c.upstreamClosed = true;
      sourceClosed(c, c.down, hadError, code);
      settle(c);
    });
  }

  // A side closed: tell the other side, behind the data already queued.
  function sourceClosed(c: Conn, p: Pipe, hadError: boolean, code: string | undefined): void {
    if (p.source === 'closed' || (p.source === 'ended' && !hadError)) return;
    enqueue(c, p, code === 'ECONNRESET' ? 'reset' : 'close');
  }

  function settle(c: Conn): void {
    if (c.clientClosed && (c.upstream === undefined || c.upstreamClosed)) {
      finish(c, 'destroy', 'destroy');
      conns.delete(c);
    }
  }

  /** End a connection now: clear both queues, then end each side as told. */
  function finish(c: Conn, client: Ending, upstream: Ending): void {
    if (c.done) return;
    c.done = true;
    clearTimeout(c.idleTimer);
    for (const p of [c.up, c.down]) {
      p.queue = [];
      p.heldBytes = 0;
      p.wake?.();
    }
    endSocket(c.client, client);
    if (c.upstream !== undefined) endSocket(c.upstream, upstream);
  }

  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    counts.accepted++;
    const c: Conn = {
      client,
      upstream: undefined,
      clientClosed: false,
      upstreamClosed: false,
      up: newPipe('upstream'),
      down: newPipe('downstream'),
      done: false,
      requestSeen: false,
      responseHeld: 0,
      idleTimer: undefined,
    };
    conns.add(c);
    let code: string | undefined;
    client.on('error', (e: NodeJS.ErrnoException) => {
      code = e.code;
    });
    client.on('data', (chunk: Buffer) => enqueue(c, c.up, chunk));
    client.on('end', () => enqueue(c, c.up, 'end'));
    client.on('drain', () => updateFlow(c, c.down));
    client.on('close', (hadError) => {
      c.clientClosed = true;
      // Not connected upstream yet (held connect): the target never learns of it.
      if (c.upstream === undefined) finish(c, 'destroy', 'destroy');
      else sourceClosed(c, c.up, hadError, code);
      settle(c);
    });
    if (fault.kind === 'reset') {
      counts.resets++;
      finish(c, 'reset', 'reset');
      return;
    }
    enqueue(c, c.up, 'connect');
    closedAfterBytes(c);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('tcp-fault-proxy: server has no TCP address');
  const { address: host, port } = addr;

  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    address: `${host}:${port}`,
    url: (scheme) => `${scheme}://${host}:${port}`,
    get fault() {
      return { ...fault };
    },
    get target() {
      return { ...target };
    },
    setFault(next) {
      fault = checkFault(next);
      for (const c of conns) {
        if (c.done) continue;
        c.up.forwarded = 0;
        c.down.forwarded = 0;
        c.requestSeen = false;
        c.responseHeld = 0;
        clearTimeout(c.idleTimer);
        if (fault.kind === 'reset') {
          counts.resets++;
          finish(c, 'reset', 'reset');
        } else if (!closedAfterBytes(c)) {
          c.up.wake?.();
          c.down.wake?.();
        }
      }
    },
    setTarget(next) {
      target = { ...next };
    },
    connections: () => conns.size,
    stats() {
      let heldUpstream = 0;
      let heldDownstream = 0;
      for (const c of conns) {
        heldUpstream += c.up.heldBytes;
        heldDownstream += c.down.heldBytes;
      }
      return { ...counts, heldUpstream, heldDownstream };
    },
    dropAll(how = 'reset') {
      for (const c of conns) {
        if (c.done) continue;
        if (how === 'reset') counts.resets++;
        finish(c, how, how);
      }
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Also connections already ending cleanly: the server waits for every client socket.
        for (const c of conns) {
          finish(c, 'destroy', 'destroy');
          c.client.destroy();
          c.upstream?.destroy();
        }
      });
      return closing;
    },
  };
}

/** Sleep until `ms` passed (never for Infinity) or the fault changed. */
function nap(p: Pipe, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const wake = (): void => {
      clearTimeout(timer);
      p.wake = undefined;
      resolve();
    };
    const timer = Number.isFinite(ms) ? setTimeout(wake, ms) : undefined;
    p.wake = wake;
  });
}

/** RST a socket (SO_LINGER 0); one still connecting is just destroyed. */
function rst(s: Socket): void {
  if (s.destroyed) return;
  if (s.connecting) s.destroy();
  else s.resetAndDestroy();
}

function endSocket(s: Socket, how: Ending): void {
  if (s.destroyed) return;
  if (how === 'reset') return rst(s);
  if (how === 'destroy' || s.connecting) {
    s.destroy();
    return;
  }
  // Clean close: FIN now, keep reading (and discarding) until the peer closes too.
  s.end();
  s.resume();
}

function checkFault(f: Fault): Fault {
  const nonNegative = (v: number | undefined, what: string): void => {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`tcp-fault-proxy: ${f.kind}.${what} must be a finite number >= 0, got ${v}`);
  };
  const direction = (d: string | undefined, allowed: readonly string[]): void => {
    if (d !== undefined && !allowed.includes(d)) throw new RangeError(`tcp-fault-proxy: ${f.kind}.direction must be one of ${allowed.join(', ')}, got ${d}`);
  };
  switch (f.kind) {
    case 'pass':
    case 'reset':
      break;
    case 'latency':
      nonNegative(f.ms, 'ms');
      nonNegative(f.jitterMs, 'jitterMs');
      direction(f.direction, ['upstream', 'downstream', 'both']);
      break;
    case 'blackhole':
      direction(f.direction, ['upstream', 'downstream', 'both']);
      break;
    case 'close-after-bytes':
      if (!Number.isInteger(f.bytes) || f.bytes < 0) throw new RangeError(`tcp-fault-proxy: close-after-bytes.bytes must be an integer >= 0, got ${f.bytes}`);
      direction(f.direction, ['upstream', 'downstream']);
      if (f.direction === undefined) throw new RangeError('tcp-fault-proxy: close-after-bytes needs a direction');
      break;
    case 'reset-after-response':
      if (f.responseBytes !== undefined && f.idleMs !== undefined) throw new RangeError('tcp-fault-proxy: reset-after-response takes responseBytes or idleMs, not both');
      if (f.responseBytes !== undefined && !(Number.isInteger(f.responseBytes) && f.responseBytes >= 1)) {
        throw new RangeError(`tcp-fault-proxy: reset-after-response.responseBytes must be an integer >= 1, got ${f.responseBytes}`);
      }
      nonNegative(f.idleMs, 'idleMs');
      break;
    default:
      throw new RangeError(`tcp-fault-proxy: unknown fault ${JSON.stringify(f)}`);
  }
  return { ...f };
}
