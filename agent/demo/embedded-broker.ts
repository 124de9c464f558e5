/**
 * The demo's embedded MQTT broker: aedes (MQTT 3.1.1 only: no MQTT 5, no `$share/`
 * shared subscriptions, so the demo config subscribes with protocol_version 4,
 * share_group null and one connection), in-memory persistence, plain TCP on loopback.
 *
 * Lifecycle (agent/lifecycle.ts): the constructor does no I/O; `start()` resolves once
 * the port is listening (port 0 = a free one, then `url` tells which); `stop()`
 * disconnects every client, closes the listener and is safe to call twice.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { onceStop, type Component } from '../lifecycle.ts';

export interface EmbeddedBrokerOptions {
  /** Default 127.0.0.1: the demo broker is never exposed beyond the machine. */
  host?: string;
  /** Default 0: a free port chosen by the kernel. */
  port?: number;
}

export class EmbeddedBroker implements Component {
  readonly name = 'embedded_broker';
  private readonly host: string;
  private readonly requestedPort: number;
  private broker: Aedes | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private boundPort: number | null = null;

  constructor(options: EmbeddedBrokerOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.requestedPort = options.port ?? 0;
  }

  /** The listening port; throws before `start()` resolved. */
  get port(): number {
    if (this.boundPort === null) throw new Error('EmbeddedBroker: not started');
    return this.boundPort;
  }

  /** `mqtt://host:port`, for clients. */
  get url(): string {
    return `mqtt://${this.host}:${this.port}`;
  }

  async start(): Promise<void> {
    const broker = await Aedes.createBroker();
    this.broker = broker;
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port: this.requestedPort, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('EmbeddedBroker: the server has no TCP address');
    this.boundPort = address.port;
  }

  readonly stop = onceStop(async () => {
    const { broker, server } = this;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}
