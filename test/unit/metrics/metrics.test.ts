// The metric catalog keeps its naming scheme, and the writer-side tally and stream
// activity count what a commit landed (so the main thread only adds per batch).
import { describe, expect, it } from 'vitest';
import { StreamActivity, tallyCommit } from '../../../agent/landing/ingest-tally.ts';
import type { LandingItem, LandingItemResult } from '../../../agent/landing/types.ts';
import { LakesideMetrics, metricsTable } from '../../../agent/metrics/metrics.ts';
import { inspections, sensors } from '../latest/fixture.ts';

const row = (line: string, sensor: string) => ({ dataset: 'sensors', values: [1, line, sensor, 1.5, 'pct', true] });
const ok = (inserted: number, extra: Partial<LandingItemResult> = {}): LandingItemResult => ({ inserted, duplicates: 0, sourceDuplicate: false, quarantined: 0, ...extra });

describe('metric catalog', () => {
  it('follows lakeside_<subsystem>_<name>_<unit>, counters end in _total, names are unique', () => {
    const metrics = new LakesideMetrics({ defaultMetrics: false });
    const names = metrics.catalog.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of metrics.catalog) {
      expect(m.name).toMatch(/^lakeside_[a-z0-9]+(_[a-z0-9]+)+$/);
      expect(m.name.endsWith('_total')).toBe(m.type === 'counter');
      expect(m.help.length).toBeGreaterThan(10);
    }
    expect(metrics.unfed().sort()).toEqual(['lakeside_catalog_errors_total']);
    const table = metricsTable(metrics);
    expect(table.split('\n')).toHaveLength(names.length + 2);
    expect(table).toContain('| `lakeside_ingest_rows_total` | counter | `dataset`, `source` |');
  });
});

describe('tallyCommit', () => {
  it('sums rows per source and dataset and quarantine per dataset and reason', () => {
    const items: LandingItem[] = [
      { rows: [row('l1', 'h')], quarantine: [], blobs: [], source: 'mqtt:a' },
      { rows: [row('l1', 't')], quarantine: [], blobs: [], source: 'mqtt:a' },
      { rows: [row('l1', 't')], quarantine: [], blobs: [], source: 'mqtt:a' },
      { rows: [row('l2', 't')], quarantine: [], blobs: [], sourceKey: { source: 'folder:cam', key: 'x' } },
      {
        rows: [],
        quarantine: [{ source: 'a', coordinates: '{}', dataset: 'sensors', reasonCode: 'malformed_json', reason: '', payload: new Uint8Array(), payloadBytes: 0, receivedAtUs: 0 }],
        blobs: [],
        source: 'mqtt:a',
      },
      { rows: [row('l3', 'x')], quarantine: [], blobs: [], source: 'mqtt:a' },
    ];
    const results = [ok(1), ok(0, { duplicates: 1 }), ok(1), ok(1), ok(0, { quarantined: 1 }), ok(0, { quarantined: 1 })];
    expect(tallyCommit(items, results)).toEqual({
      rows: [
        ['mqtt:a', 'sensors', 2, 1],
        ['folder:cam', 'sensors', 1, 0],
      ],
      quarantined: [
        ['sensors', 'malformed_json', 1],
        ['sensors', 'landing_rejected', 1],
      ],
    });
  });
});

describe('StreamActivity', () => {
  it('reports streams with rows since the last drain, and stops watching past its cap', () => {
    const activity = new StreamActivity(new Map([['sensors', sensors]]), 2);
    activity.record([{ rows: [row('l1', 'h'), row('l1', 'h'), row('l1', 't')], quarantine: [], blobs: [] }], [ok(3)], 1000);
    activity.record([{ rows: [row('l2', 'x')], quarantine: [], blobs: [] }], [ok(1)], 2000); // a third stream: over the cap
    activity.record([{ rows: [row('l1', 't')], quarantine: [], blobs: [] }], [ok(0, { duplicates: 1 })], 3000); // a redelivery: no arrival
    expect(activity.drain(5000)).toEqual({
      nowMs: 5000,
      streams: [
        ['sensors', '["l1","h"]', { line: 'l1', sensor: 'h' }, 1000, 2],
        ['sensors', '["l1","t"]', { line: 'l1', sensor: 't' }, 1000, 1],
      ],
      untrackedRows: 1,
    });
    expect(activity.drain(6000).streams).toEqual([]);
    activity.record([{ rows: [row('l1', 't')], quarantine: [], blobs: [] }], [ok(1)], 7000);
    expect(activity.drain(8000).streams).toEqual([['sensors', '["l1","t"]', { line: 'l1', sensor: 't' }, 7000, 1]]);
  });

  it('treats a dataset without a stream key as one stream', () => {
    const activity = new StreamActivity(new Map([['inspections', inspections]]), 10);
    const frame = { dataset: 'inspections', values: [1, 'ok', 'ab'.repeat(32)] };
    activity.record([{ rows: [frame, frame], quarantine: [], blobs: [] }], [ok(2)], 1000);
    expect(activity.drain(2000).streams).toEqual([['inspections', '', {}, 1000, 2]]);
  });
});
