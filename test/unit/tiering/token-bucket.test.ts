import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TokenBucket, type BucketClock } from '../../../tiering/token-bucket.ts';

/** A clock that only moves when someone sleeps: the bucket's own waits are the passage of time. */
function fakeClock(): BucketClock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.t += ms;
    },
  };
  return clock;
}

describe('token bucket (bandwidth cap)', () => {
  it('grants at most burst + rate × T bytes over every interval, measured in bytes on its own clock', async () => {
    const clock = fakeClock();
    const rate = 1_000_000; // 1 MB/s
    const bucket = new TokenBucket(rate, { burstBytes: 250_000, clock });
    const grants: { t: number; total: number }[] = [];
    let total = 0;
    // Three concurrent uploads asking for 64 KiB chunks, 60 "seconds" worth of bytes in all.
    const upload = async (chunks: number) => {
      for (let i = 0; i < chunks; i++) {
        await bucket.take(65_536);
        total += 65_536;
        grants.push({ t: clock.t, total });
      }
    };
    await Promise.all([upload(305), upload(305), upload(305)]);
    expect(total).toBe(915 * 65_536);
    // Over the whole run: within ±5 % of the cap (after the initial burst).
    const seconds = clock.t / 1000;
    const achieved = (total - 250_000) / seconds;
    expect(Math.abs(achieved - rate) / rate).toBeLessThan(0.05);
    // And never above the cap: for every pair of grants, bytes between them ≤ burst + rate × Δt.
    for (let i = 0; i < grants.length; i += 7) {
      for (let j = i + 1; j < grants.length; j += 13) {
        const bytes = grants[j]!.total - grants[i]!.total;
        expect(bytes).toBeLessThanOrEqual(250_000 + (rate * (grants[j]!.t - grants[i]!.t)) / 1000 + 65_536);
      }
    }
  });

  it('slices a request larger than the burst and serves requests in arrival order', async () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(100_000, { burstBytes: 10_000, clock });
    const order: string[] = [];
    await Promise.all([bucket.take(95_000).then(() => order.push('big')), bucket.take(1_000).then(() => order.push('small'))]);
    expect(order).toEqual(['big', 'small']);
    // 95 000 + 1 000 bytes minus the 10 000 burst at 100 000 B/s: 0.86 s of its clock.
    expect(clock.t).toBeGreaterThanOrEqual(860);
    expect(clock.t).toBeLessThanOrEqual(870);
  });

  it('throttle() passes every byte through unchanged', async () => {
    const bucket = new TokenBucket(50_000_000, { clock: fakeClock() });
    const bytes = randomBytes(300_000);
    const chunks: Buffer[] = [];
    for await (const chunk of bucket.throttle(Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]))) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
  });

  it('a source destroyed by stop() while nobody reads the throttled stream ends it, not the process', async () => {
    const bucket = new TokenBucket(50_000_000, { clock: fakeClock() });
    const source = new Readable({ read() {} });
    const limited = bucket.throttle(source);
    source.destroy(new Error('tiering is stopping'));
    await new Promise((resolve) => limited.once('close', resolve));
    // Without the guard, the error event on the throttled stream has no listener and
    // vitest reports an unhandled error (in the daemon: a crash during shutdown).
    expect(limited.destroyed).toBe(true);
  });
});
