import { describe, expect, it } from 'vitest';
import { AckWindow } from '../../../agent/sources/mqtt-ack-window.ts';

function setup(maxMessages = 10, maxBytes = 1_000_000) {
  const window = new AckWindow({ maxMessages, maxBytes });
  const sent: number[] = [];
  const receive = (id: number, bytes = 10) => {
    const entry = window.add(bytes);
    return { entry, park: () => window.park(entry, () => sent.push(id)) };
  };
  return { window, sent, receive };
}

describe('AckWindow', () => {
  it('sends no PUBACK before its message landed, and sends them in arrival order', () => {
    const { window, sent, receive } = setup();
    const a = receive(1);
    const b = receive(2);
    a.park();
    b.park();
    expect(sent).toEqual([]);
    window.landed(b.entry); // the later message commits first…
    expect(sent).toEqual([]); // …but waits for the earlier one
    window.landed(a.entry);
    expect(sent).toEqual([1, 2]);
    expect(window.size).toBe(0);
  });

  it('waits for mqtt.js to hand over the PUBACK even when the commit came first', () => {
    const { window, sent, receive } = setup();
    const a = receive(1);
    window.landed(a.entry);
    expect(sent).toEqual([]);
    a.park();
    expect(sent).toEqual([1]);
  });

  it('never acknowledges a message that failed to land, nor anything after it on the connection', () => {
    const { window, sent, receive } = setup();
    const a = receive(1);
    const b = receive(2);
    const c = receive(3);
    [a, b, c].forEach((m) => m.park());
    window.landed(a.entry);
    window.failed(b.entry);
    window.landed(c.entry);
    expect(sent).toEqual([1]);
  });

  it('holds the next message while the window is full, by count and by bytes', () => {
    const { window, receive } = setup(2, 100);
    const a = receive(1);
    receive(2);
    let proceeded = false;
    window.whenRoom(() => (proceeded = true));
    expect(proceeded).toBe(false);
    a.park();
    window.landed(a.entry);
    expect(proceeded).toBe(true);

    const bytes = setup(100, 100);
    const big = bytes.receive(1, 100);
    let room = false;
    bytes.window.whenRoom(() => (room = true));
    expect(room).toBe(false);
    big.park();
    bytes.window.landed(big.entry);
    expect(room).toBe(true);
  });

  it('drops parked PUBACKs when the connection closes: none leaks onto the next connection', () => {
    const { window, sent, receive } = setup();
    const a = receive(1);
    a.park();
    window.reset();
    window.landed(a.entry);
    expect(sent).toEqual([]);
    const b = receive(2);
    b.park();
    window.landed(b.entry);
    expect(sent).toEqual([2]);
  });
});
