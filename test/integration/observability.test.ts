// Observability end to end: the real daemon as a child process, a real Mosquitto.
// - /metrics needs the read token, exposes every documented metric, and its counters
//   move under load (scraped twice around a second burst of messages);
// - a stream that stops raises a feed-gap alert on the configured MQTT alert topic and
//   in `lakeside status`, and the alert clears when the stream sends again.
// No timing assertions: the test waits for conditions.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakesideMetrics } from '../../agent/metrics/metrics.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { nodeBinary, REPO_ROOT, startDaemon, type ChildDaemon } from '../support/child-daemon.ts';
import { waitFor } from '../support/wait-for.ts';

const TOKEN = 'obs-read-token-123';

/** `name{labels}` → value of every sample in a text exposition. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

function configYaml(dir: string, broker: string): string {
  return `
plant: obs
state_dir: ${join(dir, 'state')}
api:
  listen_port: 0
  tokens:
    - { name: scraper, role: read, token: '\${env:OBS_READ_TOKEN}' }
hot: { seal_interval_ms: 200 }
metrics: { max_stream_series: 2 }
alerts:
  feed_gap: { k: 3, floor_seconds: 1, ceiling_seconds: 60, min_samples: 3, check_interval_ms: 200 }
  mqtt: { url: '${broker}', topic: obs/alerts, client_id: lakeside-obs-alerts }
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: value, type: double }
    stream_key: [line, sensor]
sources:
  mqtt:
    - name: plant
      url: '${broker}'
      client_id: lakeside-obs
      share_group: obs
      connections: 2
      routes:
        - filter: obs/+/+/reading
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 1 }
            sensor: { topic_level: 2 }
            value: { json: value }
`;
}

describe('observability: /metrics, feed-gap alerts, lakeside status', () => {
  let broker: Mosquitto;
  let dir: string;
  let daemon: ChildDaemon;
  let api: string;
  let publisher: MqttClient;
  let seq = 0;

  const scrape = async (): Promise<Map<string, number>> => {
    const response = await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    return parseExposition(await response.text());
  };
  const publish = async (line: string, sensor: string, count: number, payload?: string) => {
    for (let i = 0; i < count; i++) {
      await publisher.publishAsync(`obs/${line}/${sensor}/reading`, payload ?? JSON.stringify({ ts: Date.now(), value: seq++ }), { qos: 1 });
    }
  };
  const rows = 'lakeside_ingest_rows_total{dataset="readings",source="mqtt:plant"}';

  beforeAll(async () => {
    broker = await startMosquitto();
    dir = await mkdtemp(join(tmpdir(), 'lakeside-obs-'));
    await writeFile(join(dir, 'lakeside.yaml'), configYaml(dir, broker.url));
    daemon = await startDaemon({ config: join(dir, 'lakeside.yaml'), env: { OBS_READ_TOKEN: TOKEN } });
    api = String(daemon.lines.find((l) => l.msg === 'lakeside ready')!.json!.api);
    publisher = await mqtt.connectAsync(broker.url, { clientId: 'obs-publisher' });
  }, 90_000);

  afterAll(async () => {
    await publisher?.endAsync();
    if (daemon && !daemon.exit) expect((await daemon.stop()).code).toBe(0);
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves every documented metric to a read token only, and the counters move under load', async () => {
    expect((await fetch(`${api}/metrics`)).status).toBe(401);
    const response = await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    for (const { name, type } of new LakesideMetrics({ defaultMetrics: false }).catalog) {
      expect(text, name).toContain(`# HELP ${name} `);
      expect(text, name).toContain(`# TYPE ${name} ${type}`);
    }
    expect(text).toContain('process_cpu_user_seconds_total');

    await publish('l1', 'humidity', 100);
    await publish('l1', 'temp', 100);
    await publish('l2', 'temp', 100);
    await publish('l1', 'humidity', 5, '{"ts": ');
    const first = await waitFor(async () => {
      const m = await scrape();
      return m.get(rows) === 300 && m.get('lakeside_quarantine_messages_total{dataset="readings",reason="malformed_json"}') === 5 ? m : null;
    }, 'the first 300 rows and 5 quarantined messages counted');

    await publish('l2', 'temp', 200);
    const second = await waitFor(async () => {
      const m = await scrape();
      return m.get(rows) === 500 && m.get('lakeside_seal_rows_total{dataset="readings"}') === 500 ? m : null;
    }, 'all 500 rows landed and sealed');

    const moved = (name: string) => [first.get(name) ?? 0, second.get(name) ?? 0];
    expect(moved(rows)).toEqual([300, 500]);
    const [commitsBefore, commitsAfter] = moved('lakeside_landing_commits_total');
    expect(commitsAfter).toBeGreaterThan(commitsBefore!);
    const [receivedBefore, receivedAfter] = moved('lakeside_source_received_messages_total{source="mqtt:plant"}');
    expect(receivedAfter! - receivedBefore!).toBeGreaterThanOrEqual(200);
    expect(second.get('lakeside_landing_commit_duration_seconds_count')).toBe(commitsAfter);
    expect(second.get('lakeside_seal_duration_seconds_count')).toBeGreaterThan(0);
    expect(second.get('lakeside_tier_files{dataset="readings",tier="hot_l0"}')).toBeGreaterThan(0);
    expect(second.get('lakeside_tier_size_bytes{dataset="readings",tier="hot_l0"}')).toBeGreaterThan(0);
    expect(second.get('lakeside_landing_depth_rows{dataset="readings"}')).toBe(0);
    expect(second.get('lakeside_disk_size_bytes')).toBeGreaterThan(0);
    expect(second.get('lakeside_disk_watermark_state{state="ok"}')).toBe(1);
    expect(second.get('lakeside_landing_blocked')).toBe(0);
    expect(second.get('lakeside_source_connections{source="mqtt:plant"}')).toBe(2);
    // Three streams, two series (metrics.max_stream_series), the third counted.
    await waitFor(async () => (await scrape()).get('lakeside_stream_watched_streams{dataset="readings"}') === 3, 'three streams watched');
    const streams = await scrape();
    expect([...streams.keys()].filter((k) => k.startsWith('lakeside_stream_freshness_seconds{'))).toHaveLength(2);
    expect(streams.get('lakeside_stream_series_omitted_streams')).toBe(1);
    expect(streams.get('lakeside_stream_freshness_max_seconds{dataset="readings"}')).toBeGreaterThanOrEqual(0);
  });

  it('raises a feed-gap alert on the MQTT topic and in lakeside status when a stream stops, and clears it when it resumes', async () => {
    const watcher = await mqtt.connectAsync(broker.url, { clientId: 'obs-alert-watcher' });
    const events: { event: string; alert: { id: string; stream: Record<string, string> } }[] = [];
    watcher.on('message', (_topic, payload) => events.push(JSON.parse(payload.toString())));
    await watcher.subscribeAsync('obs/alerts', { qos: 1 });
    const gapId = 'feed_gap:readings:["l9","vibration"]';
    try {
      for (let i = 0; i < 15; i++) {
        await publish('l9', 'vibration', 1);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Silent now: the alert comes after k x cadence, at least floor_seconds (1 s).
      await waitFor(() => events.some((e) => e.event === 'opened' && e.alert.id === gapId), 'the feed-gap alert on obs/alerts', 20_000);
      const opened = events.find((e) => e.alert.id === gapId)!;
      expect(opened.alert.stream).toEqual({ line: 'l9', sensor: 'vibration' });
      // The log line is written before the publish, but stdout reaches us on its own schedule.
      await waitFor(() => daemon.logs().some((l) => l.code === 'FEED_GAP' && (l.alert as { id: string }).id === gapId), 'the FEED_GAP log line');
      expect((await scrape()).get('lakeside_feed_gap_alerts_total{dataset="readings"}')).toBeGreaterThanOrEqual(1);

      const status = await runCli(['status', '--url', api], { LAKESIDE_TOKEN: TOKEN, NO_COLOR: '1' });
      expect(status.stdout).toMatch(/alerts +\d+ open/);
      expect(status.stdout).toMatch(/FEED_GAP feed gap: no rows from readings\{line=l9,sensor=vibration\}/);
      expect(status.stdout).not.toContain('\u001b['); // no colour outside a terminal

      // The stream resumes at its old cadence (and keeps going, or it would be late again).
      let resumed = true;
      const resuming = (async () => {
        while (resumed) {
          await publish('l9', 'vibration', 1);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      try {
        await waitFor(() => events.some((e) => e.event === 'cleared' && e.alert.id === gapId), 'the clearance on obs/alerts', 20_000);
        await waitFor(() => daemon.logs().some((l) => l.code === 'FEED_GAP_CLEARED' && (l.alert as { id: string }).id === gapId), 'the FEED_GAP_CLEARED log line');
        const after = await runCli(['status', '--url', api, '--json'], { LAKESIDE_TOKEN: TOKEN });
        expect((JSON.parse(after.stdout) as { alerts: { id: string }[] }).alerts.map((a) => a.id)).not.toContain(gapId);
      } finally {
        resumed = false;
        await resuming;
      }
    } finally {
      await watcher.endAsync();
    }
  });

  it('lakeside doctor reaches the configured brokers (source and alert topic)', async () => {
    const result = await runCli(['doctor', '--config', join(dir, 'lakeside.yaml')], { OBS_READ_TOKEN: TOKEN, NO_COLOR: '1' });
    expect(result.stdout).toMatch(new RegExp(`ok +mqtt +source plant: ${broker.url.replace(/[.]/g, '\\.')} accepts a connection`));
    expect(result.stdout).toMatch(/ok +mqtt +alerts: .* accepts a connection/);
    expect(result.stdout).toMatch(/ok +config +valid: plant obs/);
  });

  it('lakeside verify, on the stopped daemon\'s state, finds a deleted hot file and a leftover temp file; --repair removes the temp file and says what it cannot fix', async () => {
    expect((await daemon.stop()).code).toBe(0);
    const db = new Database(join(dir, 'state', 'landing.db'), { readonly: true });
    const file = db.prepare('SELECT path FROM hot_files WHERE level = 0 ORDER BY id LIMIT 1').pluck().get() as string;
    db.close();
    await unlink(join(dir, 'state', file));
    await writeFile(join(dir, 'state', 'hot', '.tmp-cut-short.parquet'), 'half');
    const config = join(dir, 'lakeside.yaml');

    const found = await runCli(['verify', '--config', config], { NO_COLOR: '1' });
    expect(found.code).toBe(1);
    expect(found.stdout).toContain(`CANNOT FIX hot_file_missing ${file}: registered`);
    expect(found.stdout).toMatch(/found temp_file hot\/\.tmp-cut-short\.parquet/);

    const repaired = await runCli(['verify', '--config', config, '--repair'], { NO_COLOR: '1' });
    expect(repaired.code).toBe(1); // the lost file is still there to act on
    expect(repaired.stdout).toMatch(/fixed {2}temp_file hot\/\.tmp-cut-short\.parquet/);
    expect(repaired.stdout).toContain(`CANNOT FIX hot_file_missing ${file}`);
    expect(repaired.stdout).toMatch(/restore the file from a backup/);
  });
});

function runCli(args: string[], env: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(nodeBinary(), [join(REPO_ROOT, 'bin', 'lakeside.js'), ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ stdout, stderr, code: error ? Number((error as { code?: number }).code ?? 1) : 0 }),
    );
  });
}
