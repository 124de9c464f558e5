/** A pass-through stream that hashes (SHA-256) and counts the bytes going through it. */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export interface HashingStream {
  stream: Transform;
  /** Bytes seen so far. */
  bytes(): number;
  /** Lowercase hex SHA-256 of the bytes seen; call once, after the stream ended. */
  digest(): string;
}

export function hashingStream(): HashingStream {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes, digest: () => hash.digest('hex') };
}
