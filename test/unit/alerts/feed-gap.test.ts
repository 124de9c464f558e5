// Feed-gap detection on an injected clock: learn a stream's cadence, alert once it has
// been silent for more than k × cadence (clamped), clear when it sends again.
import { describe, expect, it } from 'vitest';
import { FeedGapDetector } from '../../../agent/alerts/feed-gap.ts';

function setup(settings: Partial<{ k: number; floorSeconds: number; ceilingSeconds: number; minSamples: number }> = {}) {
  const clock = { now: 1_000_000 };
  const detector = new FeedGapDetector({ k: 5, floorSeconds: 1, ceilingSeconds: 3600, minSamples: 5, ...settings }, () => clock.now);
  /** One arrival of stream `id` now, then time moves on by `stepMs`. */
  const arrive = (id: string, stepMs: number) => {
    const cleared = detector.arrived('sensors', id, { sensor: id }, clock.now);
    clock.now += stepMs;
    return cleared;
  };
  return { clock, detector, arrive };
}

describe('FeedGapDetector', () => {
  it('fires within k x the cadence after a stream stops, and clears when it resumes', () => {
    const { clock, detector, arrive } = setup();
    for (let i = 0; i < 20; i++) arrive('humidity', 2000); // cadence 2 s
    const lastArrival = clock.now - 2000;
    // Silent, checked every 100 ms: no alert up to k x cadence = 10 s, one just after.
    let openedAt: number | null = null;
    while (openedAt === null && clock.now - lastArrival < 60_000) {
      const opened = detector.check();
      if (opened.length) {
        expect(opened).toHaveLength(1);
        expect(opened[0]).toMatchObject({ dataset: 'sensors', stream: 'humidity', cadenceSeconds: 2, thresholdSeconds: 10 });
        openedAt = clock.now;
      }
      clock.now += 100;
    }
    expect(openedAt).not.toBeNull();
    expect(openedAt! - lastArrival).toBeGreaterThan(10_000);
    expect(openedAt! - lastArrival).toBeLessThanOrEqual(10_100);
    expect(detector.check()).toEqual([]); // raised once
    expect(detector.openAlerts().map((a) => a.id)).toEqual(['feed_gap:sensors:humidity']);

    clock.now += 5000;
    const cleared = arrive('humidity', 2000);
    expect(cleared).toMatchObject({ id: 'feed_gap:sensors:humidity' });
    expect(cleared!.silentSeconds).toBeCloseTo((clock.now - 2000 - lastArrival) / 1000);
    expect(detector.openAlerts()).toEqual([]);
    // The outage did not become the cadence: the threshold is still 10 s.
    arrive('humidity', 2000);
    const state = [...detector.watched()][0]!;
    expect(detector.thresholdMs(state)).toBe(10_000);
  });

  it('keeps a steady stream quiet while another one stops', () => {
    const { clock, detector } = setup();
    for (let i = 0; i < 30; i++) {
      detector.arrived('sensors', 'fast', {}, clock.now);
      if (i < 10) detector.arrived('sensors', 'stops', {}, clock.now);
      clock.now += 1000;
      detector.check();
    }
    expect(detector.openAlerts().map((a) => a.stream)).toEqual(['stops']);
  });

  it('does not alert before min_samples arrivals', () => {
    const { clock, detector, arrive } = setup({ minSamples: 5 });
    for (let i = 0; i < 5; i++) arrive('new', 1000); // 4 samples
    clock.now += 3_600_000;
    expect(detector.check()).toEqual([]);
    arrive('new', 0);
    // A 5th sample (the hour-long gap) makes it eligible; silence from now on counts.
    clock.now += 3_600_001;
    expect(detector.check()).toHaveLength(1);
  });

  it('clamps the threshold between floor and ceiling', () => {
    const fast = setup({ floorSeconds: 30, ceilingSeconds: 600 });
    for (let i = 0; i < 10; i++) fast.arrive('hz10', 100);
    const fastState = [...fast.detector.watched()][0]!;
    expect(fast.detector.thresholdMs(fastState)).toBe(30_000); // 5 x 0.1 s = 0.5 s → floor
    fast.clock.now += 29_000;
    expect(fast.detector.check()).toEqual([]);
    fast.clock.now += 2000;
    expect(fast.detector.check()).toHaveLength(1);

    const slow = setup({ floorSeconds: 30, ceilingSeconds: 600 });
    for (let i = 0; i < 10; i++) slow.arrive('hourly', 3_600_000);
    expect(slow.detector.thresholdMs([...slow.detector.watched()][0]!)).toBe(600_000); // 5 h → ceiling
  });

  it('learns the cadence from batched arrivals (n rows since the last check)', () => {
    const { clock, detector } = setup();
    detector.arrived('sensors', 'batched', {}, clock.now);
    for (let i = 0; i < 10; i++) {
      clock.now += 1000;
      detector.arrived('sensors', 'batched', {}, clock.now, 10); // 10 rows per second
    }
    expect(detector.thresholdMs([...detector.watched()][0]!)).toBe(1000); // max(floor 1 s, 5 x 0.1 s)
  });

  it('a median ignores a burst of outliers', () => {
    const { detector, arrive } = setup();
    for (let i = 0; i < 20; i++) arrive('s', 1000);
    arrive('s', 60_000); // one long pause that did not trip an alert check
    arrive('s', 1000);
    expect(detector.thresholdMs([...detector.watched()][0]!)).toBe(5000);
  });
});
