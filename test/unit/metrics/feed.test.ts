// MetricsFeed on a real landing database and fake event sources: per-batch counters,
// step histograms, landing depth from the watermark, hot-tier files per tier, the
// stream-series cap, and the readiness reason after repeated seal failures.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamState } from '../../../agent/alerts/feed-gap.ts';
import type { Sealer, StepDone } from '../../../agent/hot/sealer.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import type { LandingLog } from '../../../agent/landing/landing-log.ts';
import { silentLogger } from '../../../agent/log.ts';
import { MetricsFeed } from '../../../agent/metrics/feed.ts';
import { LakesideMetrics } from '../../../agent/metrics/metrics.ts';
import { createFixture, sealOptions, sensorRows, T0, type Fixture } from '../hot/fixture.ts';

const fixtures: Fixture[] = [];
afterEach(() => {
  for (const fx of fixtures.splice(0)) fx.close();
});

function setup() {
  const fx = createFixture();
  fixtures.push(fx);
  const landing = Object.assign(new EventEmitter(), { blocked: false }) as unknown as LandingLog & EventEmitter;
  let stepListener: ((step: StepDone) => void) | null = null;
  const sealer = { on: (_event: string, listener: (step: StepDone) => void) => ((stepListener = listener), () => (stepListener = null)) } as unknown as Sealer;
  const metrics = new LakesideMetrics({ defaultMetrics: false });
  const streams: StreamState[] = ['a', 'b', 'c'].map((id, i) => ({ dataset: 'sensors', id, key: {}, lastArrivalMs: 10_000 - i * 1000, samples: [], sampleCount: 0, limitMs: null, alert: null }));
  const feed = new MetricsFeed({
    metrics,
    landing,
    sealer,
    sources: [{ name: 'mqtt:plant', stats: { received: 7, connected: 2 } }],
    datasets: ['sensors'],
    dbPath: fx.dbPath,
    stateDir: fx.stateDir,
    streams: () => streams,
    maxStreamSeries: 2,
    logger: silentLogger(),
    now: () => 20_000,
  });
  const step = (s: StepDone) => stepListener!(s);
  return { fx, landing, metrics, feed, step };
}

async function samples(metrics: LakesideMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const v of metric.values) {
      const labels = Object.entries(v.labels).map(([k, value]) => `${k}=${value}`).join(',');
      out.set(`${(v as { metricName?: string }).metricName ?? metric.name}{${labels}}`, v.value);
    }
  }
  return out;
}

describe('MetricsFeed', () => {
  it('counts per batch, reads depth and tiers at scrape, caps stream series', async () => {
    const { fx, landing, metrics, feed, step } = setup();
    await feed.start();
    landing.emit('committed', 3, { rows: [['mqtt:plant', 'sensors', 250, 2]], quarantined: [['sensors', 'wrong_type', 1]] }, 4);
    landing.emit('committed', 1, { rows: [['mqtt:plant', 'sensors', 50, 0]], quarantined: [] }, 2);
    const [sensors] = fx.datasets;
    fx.land(sensors!, sensorRows(300, T0, 1000));
    sealDataset(fx.db, sensors!, fx.stateDir, sealOptions);
    fx.land(sensors!, sensorRows(40, T0, 1000, 'late'));
    step({ op: 'seal', ms: 12, ok: true, rows: [{ dataset: 'sensors', rows: 300 }], failed: [] });

    const snapshot = await feed.refresh();
    expect(snapshot.landingDepth).toEqual({ sensors: 40 });
    const m = await samples(metrics);
    expect(m.get('lakeside_ingest_rows_total{dataset=sensors,source=mqtt:plant}')).toBe(300);
    expect(m.get('lakeside_ingest_duplicate_rows_total{dataset=sensors,source=mqtt:plant}')).toBe(2);
    expect(m.get('lakeside_quarantine_messages_total{dataset=sensors,reason=wrong_type}')).toBe(1);
    expect(m.get('lakeside_landing_commits_total{}')).toBe(2);
    expect(m.get('lakeside_landing_commit_duration_seconds_count{}')).toBe(2);
    expect(m.get('lakeside_landing_depth_rows{dataset=sensors}')).toBe(40);
    expect(m.get('lakeside_seal_rows_total{dataset=sensors}')).toBe(300);
    expect(m.get('lakeside_seal_duration_seconds_count{}')).toBe(1);
    expect(m.get('lakeside_tier_files{dataset=sensors,tier=hot_l0}')).toBe(1);
    expect(m.get('lakeside_tier_files{dataset=sensors,tier=hot_l1}')).toBe(0);
    expect(m.get('lakeside_tier_size_bytes{dataset=sensors,tier=hot_l0}')).toBeGreaterThan(0);
    expect(m.get('lakeside_source_received_messages_total{source=mqtt:plant}')).toBe(7);
    expect(m.get('lakeside_source_connections{source=mqtt:plant}')).toBe(2);
    expect(m.get('lakeside_disk_watermark_state{state=ok}')).toBe(1);
    expect(m.get('lakeside_stream_freshness_seconds{dataset=sensors,stream=a}')).toBe(10);
    expect(m.get('lakeside_stream_freshness_seconds{dataset=sensors,stream=b}')).toBe(11);
    expect(m.has('lakeside_stream_freshness_seconds{dataset=sensors,stream=c}')).toBe(false);
    expect(m.get('lakeside_stream_freshness_max_seconds{dataset=sensors}')).toBe(12);
    expect(m.get('lakeside_stream_series_omitted_streams{}')).toBe(1);

    landing.emit('blocked', { code: 'SQLITE_FULL', message: 'full' });
    (landing as unknown as { blocked: boolean }).blocked = true;
    await feed.refresh();
    const blocked = await samples(metrics);
    expect(blocked.get('lakeside_landing_blocked{}')).toBe(1);
    expect(blocked.get('lakeside_disk_watermark_state{state=critical}')).toBe(1);
    await feed.stop();
    landing.emit('committed', 1, { rows: [['mqtt:plant', 'sensors', 5, 0]], quarantined: [] }, 1);
    expect((await samples(metrics)).get('lakeside_ingest_rows_total{dataset=sensors,source=mqtt:plant}')).toBe(300); // unsubscribed
  });

  it('reports repeated seal failures as a readiness problem until a seal succeeds', async () => {
    const { feed, step } = setup();
    await feed.start();
    step({ op: 'seal', ms: 1, ok: false, rows: [], failed: [] });
    step({ op: 'seal', ms: 1, ok: true, rows: [], failed: ['sensors'] });
    expect(feed.problems()).toEqual([]);
    step({ op: 'seal', ms: 1, ok: true, rows: [], failed: ['sensors'] });
    expect(feed.problems()).toEqual([expect.stringMatching(/the last 3 seal steps failed/)]);
    step({ op: 'compact', ms: 1, ok: false, rows: [], failed: [] });
    step({ op: 'seal', ms: 1, ok: true, rows: [], failed: [] });
    expect(feed.problems()).toEqual([]);
    await feed.stop();
  });
});
