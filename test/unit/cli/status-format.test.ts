// `lakeside status` output: colour only on a terminal without NO_COLOR; problems and
// open alerts are spelled out.
import { describe, expect, it } from 'vitest';
import { formatStatus, type StatusReport } from '../../../agent/cli/status-format.ts';
import { COLOUR, PLAIN, styleFor } from '../../../agent/cli/style.ts';

const report: StatusReport = {
  plant: 'p1',
  agent_id: 'a1',
  version: '0.1.0',
  uptime_seconds: 3725,
  health: { ok: true, reasons: [] },
  ready: { ok: false, reasons: ['the landing log cannot commit (disk full or I/O error): sources are paused'] },
  landing: { blocked: true, depth_rows: { readings: 40, frames: 2 }, rows_inserted: 1000, quarantined: 3 },
  hot: { readings: { files: 12, bytes: 3 * 1024 * 1024 } },
  disk: { state_dir: '/var/lib/lakeside', size_bytes: 100 * 1024 ** 3, free_bytes: 1024 ** 3, watermark: 'critical' },
  sources: [{ name: 'mqtt:plant', connected: 0, received: 1003, acked: 1000 }],
  streams: { watched: 7, stalest_seconds: 95 },
  alerts: [{ code: 'FEED_GAP', message: 'feed gap: no rows from readings{line=l9} for 95 s', opened_at: '2026-11-21T10:00:00.000Z' }],
};

describe('status summary', () => {
  it('colours only a terminal without NO_COLOR', () => {
    expect(styleFor({ isTTY: true }, {})).toBe(COLOUR);
    expect(styleFor({ isTTY: true }, { NO_COLOR: '1' })).toBe(PLAIN);
    expect(styleFor({ isTTY: false }, {})).toBe(PLAIN);
    expect(styleFor({}, {})).toBe(PLAIN);
  });

  it('spells out problems and open alerts', () => {
    const text = formatStatus('http://127.0.0.1:7070', report, [{ name: 'readings', rows: 5000, max_time: '2026-11-21T10:00:00Z', streams: [1, 2] }], PLAIN);
    expect(text).toContain('lakeside 0.1.0 plant p1 (agent a1) at http://127.0.0.1:7070, up 1 h 2 min');
    expect(text).toMatch(/ready +not ready: the landing log cannot commit/);
    expect(text).toMatch(/landing +BLOCKED .*1000 rows landed since start, 42 waiting for a seal, 3 quarantined/);
    expect(text).toMatch(/disk +1.0 GiB free of 100.0 GiB \(99 % used\), watermark critical/);
    expect(text).toMatch(/source +mqtt:plant: NOT connected, received 1003, acked 1000/);
    expect(text).toMatch(/dataset +readings: 5000 rows, newest 2026-11-21T10:00:00Z, 2 streams, hot 12 files 3.0 MiB/);
    expect(text).toMatch(/streams +7 watched, stalest silent for 1 min 35 s/);
    expect(text).toMatch(/alerts +1 open\n +! FEED_GAP feed gap: no rows from readings\{line=l9\} for 95 s \(since 2026-11-21T10:00:00.000Z\)/);
    expect(text).not.toContain('\u001b[');
    expect(text).not.toContain('policy');
    const withPolicy = formatStatus('http://x', { ...report, policy: { source: 'https://centre/p.yaml', applied: { version: 4, expires_at: '2027-01-01T00:00:00Z', warnings: [] }, refused: { version: 5, code: 'POLICY_UNSAFE', reason: 'hot window under the floor' }, last_fetch: { at: '', ok: false, error: 'HTTP 503' } } }, [], PLAIN);
    expect(withPolicy).toMatch(/policy +version 4 \(expires 2027-01-01T00:00:00Z\)/);
    expect(withPolicy).toMatch(/policy +refused version 5: POLICY_UNSAFE: hot window under the floor/);
    expect(withPolicy).toMatch(/policy +fetch from https:\/\/centre\/p.yaml failing: HTTP 503/);
    const coloured = formatStatus('u', report, [], COLOUR);
    expect(coloured).toContain('\u001b[31mBLOCKED');
    expect(coloured).toContain('\u001b[33m1 open');
  });
});
