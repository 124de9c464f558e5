// MetricsFeed on a real landing database and fake event sources: per-batch counters,
// step histograms, landing depth from the watermark, hot-tier files per tier, the
// stream-series cap, the readiness reason after repeated seal failures, and the tier
// map's metrics (upload backlog, warm and cold, commit lag) following tier_files.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamState } from '../../../agent/alerts/feed-gap.ts';
import type { Sealer, StepDone } from '../../../agent/hot/sealer.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import type { LandingLog } from '../../../agent/landing/landing-log.ts';
import { silentLogger } from '../../../agent/log.ts';
import { MetricsFeed } from '../../../agent/metrics/feed.ts';
import { LakesideMetrics } from '../../../agent/metrics/metrics.ts';
import { discoverNewFiles } from '../../../tiering/layout.ts';
import { createFixture, sealOptions, sensorRows, T0, type Fixture } from '../hot/fixture.ts';
import { createTieringFixture, type TieringFixture } from '../tiering/fixture.ts';

const fixtures: (Fixture | TieringFixture)[] = [];
afterEach(() => {
  for (const fx of fixtures.splice(0)) fx.close();
});

function fakeEvents() {
  const landing = Object.assign(new EventEmitter(), { blocked: false }) as unknown as LandingLog & EventEmitter;
  let stepListener: ((step: StepDone) => void) | null = null;
  const sealer = { on: (_event: string, listener: (step: StepDone) => void) => ((stepListener = listener), () => (stepListener = null)) } as unknown as Sealer;
  return { landing, sealer, step: (s: StepDone) => stepListener!(s) };
}

function setup() {
  const fx = createFixture();
  fixtures.push(fx);
  const { landing, sealer, step } = fakeEvents();
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

  it('feeds the upload backlog, warm and cold tiers and the commit lag from tier_files, blobs as dataset=""', async () => {
    const f = await createTieringFixture();
    fixtures.push(f);
    const { landing, sealer } = fakeEvents();
    const metrics = new LakesideMetrics({ defaultMetrics: false });
    let catalog = false;
    let watermark: 'ok' | 'high' | 'critical' = 'ok';
    const feed = new MetricsFeed({
      metrics,
      landing,
      sealer,
      sources: [],
      datasets: ['inspections', 'readings'],
      dbPath: f.dbPath,
      stateDir: f.stateDir,
      streams: () => [],
      maxStreamSeries: 10,
      logger: silentLogger(),
      now: f.nowMs,
      watermark: () => watermark,
      catalog: () => catalog,
    });
    await feed.start();
    const a = f.addL1('inspections', { bytes: 1000, ageHours: 3 });
    f.addL1('inspections', { bytes: 500, ageHours: 2 });
    f.addBlob({ bytes: 2000 });
    const registeredUs = f.clock.ms * 1000;
    expect(await discoverNewFiles(f.db, f.map, f.stateDir, { plant: 'ulm', agentId: 'ulm' }, registeredUs)).toBe(3);
    f.clock.ms += 90_000;

    await feed.refresh();
    let m = await samples(metrics);
    // What tier_files holds, in the metrics.
    const held = f.db.prepare(`SELECT coalesce(dataset, '') AS dataset, count(*) AS files, sum(size_bytes) AS bytes FROM tier_files WHERE state = 'local' GROUP BY 1`).all() as { dataset: string; files: number; bytes: number }[];
    expect(held).toEqual([
      { dataset: '', files: 1, bytes: 2000 },
      { dataset: 'inspections', files: 2, bytes: 1500 },
    ]);
    for (const { dataset, files, bytes } of held) {
      expect(m.get(`lakeside_upload_backlog_files{dataset=${dataset}}`)).toBe(files);
      expect(m.get(`lakeside_upload_backlog_bytes{dataset=${dataset}}`)).toBe(bytes);
      expect(m.get(`lakeside_upload_backlog_oldest_age_seconds{dataset=${dataset}}`)).toBe(90);
    }
    expect(m.get('lakeside_upload_backlog_files{dataset=readings}')).toBe(0);
    expect(m.get('lakeside_upload_backlog_oldest_age_seconds{dataset=readings}')).toBe(0);
    expect(m.get('lakeside_tier_files{dataset=inspections,tier=warm}')).toBe(0);

    // Uploaded: out of the backlog, into warm; with a catalog it waits for the commit.
    const tierA = f.map.byPath(a.path)!;
    expect(f.map.markUploaded(tierA.id, f.clock.ms * 1000)).toBe(true);
    f.clock.ms += 30_000;
    catalog = true;
    watermark = 'high';
    await feed.refresh();
    m = await samples(metrics);
    expect(m.get('lakeside_upload_backlog_files{dataset=inspections}')).toBe(1);
    expect(m.get('lakeside_upload_backlog_bytes{dataset=inspections}')).toBe(500);
    expect(m.get('lakeside_upload_backlog_oldest_age_seconds{dataset=inspections}')).toBe(120);
    expect(m.get('lakeside_tier_files{dataset=inspections,tier=warm}')).toBe(1);
    expect(m.get('lakeside_tier_size_bytes{dataset=inspections,tier=warm}')).toBe(1000);
    expect(m.get('lakeside_catalog_commit_lag_seconds{dataset=inspections}')).toBe(30);
    expect(m.get('lakeside_disk_watermark_state{state=high}')).toBe(1);
    expect(m.get('lakeside_disk_watermark_state{state=ok}')).toBe(0);
    catalog = false; // no catalog: uploaded counts as committed
    await feed.refresh();
    expect((await samples(metrics)).get('lakeside_catalog_commit_lag_seconds{dataset=inspections}')).toBe(0);

    // Committed: still warm, no lag; archived: cold; the blob uploaded empties its backlog.
    catalog = true;
    expect(f.map.markCommitted([tierA.id], f.clock.ms * 1000)).toBe(1);
    await feed.refresh();
    m = await samples(metrics);
    expect(m.get('lakeside_catalog_commit_lag_seconds{dataset=inspections}')).toBe(0);
    expect(m.get('lakeside_tier_files{dataset=inspections,tier=warm}')).toBe(1);
    expect(f.map.markArchived(tierA.id, f.clock.ms * 1000)).toBe(true);
    const blob = f.map.all().find((r) => r.kind === 'blob')!;
    f.map.markUploaded(blob.id, f.clock.ms * 1000);
    f.map.markCommitted([blob.id], f.clock.ms * 1000);
    await feed.refresh();
    m = await samples(metrics);
    expect(m.get('lakeside_tier_files{dataset=inspections,tier=warm}')).toBe(0);
    expect(m.get('lakeside_tier_files{dataset=inspections,tier=cold}')).toBe(1);
    expect(m.get('lakeside_tier_size_bytes{dataset=inspections,tier=cold}')).toBe(1000);
    expect(m.get('lakeside_upload_backlog_files{dataset=}')).toBe(0);
    expect(m.get('lakeside_upload_backlog_oldest_age_seconds{dataset=}')).toBe(0);
    expect(m.get('lakeside_tier_files{dataset=,tier=warm}')).toBe(1);
    expect(m.get('lakeside_tier_size_bytes{dataset=,tier=warm}')).toBe(2000);
    await feed.stop();
  });
});
