/**
 * The PUBACKs of one MQTT connection, held until the messages they acknowledge are
 * durable.
 *
 * Why: mqtt.js processes one packet at a time per connection and sends a QoS 1 PUBACK
 * as soon as the message handler calls back. Calling back only after the landing
 * commit would allow one commit per message per connection. Instead the handler calls
 * back at once, and the PUBACK mqtt.js then sends is caught and parked here until the
 * message's commit is done. mqtt.js goes on reading the next messages meanwhile.
 *
 * Invariants:
 * - A PUBACK leaves only after the commit that holds its message (or never).
 * - PUBACKs leave in the order the messages arrived, as MQTT requires: a later message
 *   that commits first waits for the earlier ones.
 * - A message that fails to land blocks every later PUBACK of the connection: they are
 *   all redelivered by the broker, and dedupe keys drop the copies.
 * - At most `maxMessages` messages / `maxBytes` bytes wait per connection; beyond that
 *   the next message is held (and with it mqtt.js's read loop: TCP backpressure).
 * - When the connection closes, parked PUBACKs are dropped, never sent on the next
 *   connection (packet ids are per session and the broker redelivers anyway).
 */

interface Entry {
  bytes: number;
  state: 'landing' | 'landed' | 'failed';
  /** Sends the parked PUBACK; set once mqtt.js has tried to send it. */
  send: (() => void) | null;
}

export interface AckWindowLimits {
  maxMessages: number;
  maxBytes: number;
}

export class AckWindow {
  private entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  private blocked = false;
  private waiting: (() => void) | null = null;
  private readonly limits: AckWindowLimits;

  constructor(limits: AckWindowLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  /** Registers a received message; returns its entry. */
  add(bytes: number): Entry {
    const entry: Entry = { bytes, state: 'landing', send: null };
    this.entries.push(entry);
    this.bytes += bytes;
    return entry;
  }

  /** Runs `proceed` now if the window has room, or once it has. */
  whenRoom(proceed: () => void): void {
    if (this.size < this.limits.maxMessages && this.bytes < this.limits.maxBytes) proceed();
    else this.waiting = proceed;
  }

  /** mqtt.js wants to send this entry's PUBACK. */
  park(entry: Entry, send: () => void): void {
    entry.send = send;
    this.flush();
  }

  landed(entry: Entry): void {
    entry.state = 'landed';
    this.flush();
  }

  failed(entry: Entry): void {
    entry.state = 'failed';
    this.flush();
  }

  /** The connection closed: nothing parked may be sent on the next one. */
  reset(): void {
    this.entries = [];
    this.head = 0;
    this.bytes = 0;
    this.blocked = false;
    this.waiting = null;
  }

  private flush(): void {
    while (this.head < this.entries.length) {
      const entry = this.entries[this.head]!;
      if (entry.state === 'failed') this.blocked = true;
      if (!this.blocked && (entry.state !== 'landed' || entry.send === null)) break;
      if (!this.blocked) entry.send!();
      this.bytes -= entry.bytes;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    if (this.waiting && this.size < this.limits.maxMessages && this.bytes < this.limits.maxBytes) {
      const proceed = this.waiting;
      this.waiting = null;
      proceed();
    }
  }
}
