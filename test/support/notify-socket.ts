// A stand-in for systemd's notification socket: a Unix datagram socket (Node has none,
// so a python3 listener owns it) that records every sd_notify message, for tests that
// point $NOTIFY_SOCKET at it. The BARRIER=1 messages systemd-notify sends after each
// notification (it waits until the receiver closed the passed fd) are left out.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from './wait-for.ts';

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": sys.argv[1]}), flush=True)
while True:
    data = s.recv(65536)  # no ancillary buffer: the kernel closes passed fds, releasing the barrier
    print(json.dumps({"message": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifyMessage {
  /** The datagram's lines as key → value, e.g. { READY: '1', STATUS: '…' }. */
  fields: Record<string, string>;
  raw: string;
  at: number;
}

export class FakeNotifySocket {
  readonly path: string;
  readonly messages: NotifyMessage[] = [];
  private readonly proc: ChildProcess;

  private constructor(path: string, proc: ChildProcess) {
    this.path = path;
    this.proc = proc;
  }

  /** Binds `<dir>/notify.sock`; fails (never skips) when python3 is missing. */
  static async start(dir: string): Promise<FakeNotifySocket> {
    const path = join(dir, 'notify.sock');
    const proc = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const socket = new FakeNotifySocket(path, proc);
    const listening = new Promise<void>((resolve, reject) => {
      proc.once('error', (error) => reject(new Error(`python3 is needed for the fake NOTIFY_SOCKET: ${error.message}`)));
      proc.once('exit', (code) => reject(new Error(`the NOTIFY_SOCKET listener exited (${code})`)));
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const parsed = JSON.parse(line) as { listening?: string; message?: string };
        if (parsed.listening) resolve();
        if (parsed.message !== undefined && parsed.message !== 'BARRIER=1') {
          const fields = Object.fromEntries(parsed.message.split('\n').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
          socket.messages.push({ fields, raw: parsed.message, at: Date.now() });
        }
      });
    });
    await listening;
    return socket;
  }

  count(key: string): number {
    return this.messages.filter((m) => key in m.fields).length;
  }

  /** Index of the first message carrying `key`, or -1. */
  indexOf(key: string): number {
    return this.messages.findIndex((m) => key in m.fields);
  }

  async waitForCount(key: string, n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.count(key) >= n, () => `${n}× ${key} on the fake NOTIFY_SOCKET; got: ${JSON.stringify(this.messages.map((m) => m.raw))}`, timeoutMs);
  }

  close(): void {
    this.proc.kill('SIGKILL');
  }
}
