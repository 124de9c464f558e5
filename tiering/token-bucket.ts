/**
 * The bandwidth cap: one token bucket (bytes) shared by every concurrent upload.
 *
 * Invariants:
 * - Over any interval of length T, the bytes granted are at most `burstBytes + rate × T`.
 * - Requests are served in arrival order (FIFO), so one large file cannot starve the
 *   others; a request larger than the burst is granted in burst-sized slices.
 * - `setRate` changes the rate live (a central policy): tokens earned so far are
 *   counted at the old rate, the burst follows the new rate, and requests already
 *   sleeping wake at their old time and then wait at the new rate.
 * - The clock and the sleep are injectable, so tests measure bytes against a clock
 *   they drive, not against wall time.
 */
import { Transform, type Readable } from 'node:stream';
import { sleep as realSleep } from '../agent/retry.ts';

export interface BucketClock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_CLOCK: BucketClock = { now: () => performance.now(), sleep: (ms) => realSleep(ms) };

export class TokenBucket {
  private rate: number;
  private burst: number;
  private readonly fixedBurst: number | undefined;
  private tokens: number;
  private last: number;
  private tail: Promise<void> = Promise.resolve();
  private readonly clock: BucketClock;

  constructor(rateBytesPerSecond: number, options: { burstBytes?: number; clock?: BucketClock } = {}) {
    this.rate = rateBytesPerSecond;
    this.fixedBurst = options.burstBytes;
    this.burst = TokenBucket.burstFor(rateBytesPerSecond, options.burstBytes);
    this.clock = options.clock ?? REAL_CLOCK;
    this.tokens = this.burstBytes;
    this.last = this.clock.now();
  }

  // A quarter second of burst: smooth enough for a ±5 % cap over a minute, large enough for 64 KiB reads.
  private static burstFor(rate: number, fixed: number | undefined): number {
    return fixed ?? Math.max(64 * 1024, Math.ceil(rate / 4));
  }

  get rateBytesPerSecond(): number {
    return this.rate;
  }

  get burstBytes(): number {
    return this.burst;
  }

  /** Changes the rate from now on (see the header). */
  setRate(rateBytesPerSecond: number): void {
    if (!(rateBytesPerSecond > 0)) throw new RangeError(`bandwidth rate must be positive, got ${rateBytesPerSecond}`);
    this.refill();
    this.rate = rateBytesPerSecond;
    this.burst = TokenBucket.burstFor(rateBytesPerSecond, this.fixedBurst);
    this.tokens = Math.min(this.tokens, this.burst);
  }

  /** Resolves once `bytes` may be sent. */
  take(bytes: number): Promise<void> {
    const turn = this.tail.then(() => this.acquire(bytes));
    this.tail = turn.catch(() => undefined);
    return turn;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) * this.rateBytesPerSecond) / 1000);
    this.last = now;
  }

  private async acquire(bytes: number): Promise<void> {
    let left = bytes;
    while (left > 0) {
      const slice = Math.min(left, this.burstBytes);
      this.refill();
      if (this.tokens < slice) {
        await this.clock.sleep(Math.ceil(((slice - this.tokens) * 1000) / this.rateBytesPerSecond));
        this.refill();
      }
      this.tokens -= slice;
      left -= slice;
    }
  }

  /** A pass-through stream that waits for the bucket before letting each chunk out. */
  throttle(source: Readable): Readable {
    const limited = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.take(chunk.length).then(() => done(null, chunk), done);
      },
    });
    source.on('error', (error) => limited.destroy(error));
    // The consumer (an S3 request body) may not listen for errors when stop() destroys
    // the source between its reads: the error must end the upload, not the process.
    limited.on('error', () => {});
    return source.pipe(limited);
  }
}
