// Sends a message through a real MessageChannel with its buffers transferred, as the
// daemon's threads do, and returns what the other side receives. Checks the transfer
// really moved the buffers (the sender's are detached), so a codec that copies fails.
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { expect } from 'vitest';

export function throughPort<T>(message: T, transfer: ArrayBuffer[]): T {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(message, transfer);
  const received = receiveMessageOnPort(port2)!.message as T;
  port1.close();
  for (const buffer of transfer) expect(buffer.byteLength).toBe(0);
  return received;
}
