// The alert manager end to end on an injected clock: arrivals drained from a fake
// landing writer, an alert opened after the silence, a real webhook (a local HTTP
// server) receiving it with retries, the metrics and the status view following.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertManager } from '../../../agent/alerts/alert-manager.ts';
import { WebhookNotifier, type AlertEvent } from '../../../agent/alerts/notifiers.ts';
import type { ActivityReport, StreamArrival } from '../../../agent/landing/ingest-tally.ts';
import { silentLogger } from '../../../agent/log.ts';
import { LakesideMetrics } from '../../../agent/metrics/metrics.ts';
import { waitFor } from '../../support/wait-for.ts';

interface Hook {
  url: string;
  received: AlertEvent[];
  attempts: number;
  authorizations: (string | undefined)[];
  server: Server;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A webhook receiver; `respond` decides each attempt's status (or 'hang' to never answer). */
async function webhook(respond: (attempt: number) => number | 'hang'): Promise<Hook> {
  const hook = { received: [] as AlertEvent[], attempts: 0, authorizations: [] } as unknown as Hook;
  hook.server = createServer(async (request: IncomingMessage, response) => {
    const attempt = hook.attempts++;
    let body = '';
    for await (const chunk of request) body += chunk;
    hook.authorizations.push(request.headers.authorization);
    const status = respond(attempt);
    if (status === 'hang') return;
    if (status === 200) hook.received.push(JSON.parse(body) as AlertEvent);
    response.writeHead(status).end();
  });
  servers.push(hook.server);
  await new Promise<void>((resolve) => hook.server.listen(0, '127.0.0.1', resolve));
  hook.url = `http://127.0.0.1:${(hook.server.address() as AddressInfo).port}/alerts`;
  return hook;
}

function manager(url: string, timeoutMs = 5000, paused = { now: false }, cadencePath?: string) {
  const clock = { now: Date.parse('2026-11-21T10:00:00Z') };
  const pending: StreamArrival[] = [];
  const metrics = new LakesideMetrics({ defaultMetrics: false });
  const config = {
    plant: 'p1',
    agent_id: 'a1',
    alerts: {
      feed_gap: { enabled: true, k: 4, floor_seconds: 1, ceiling_seconds: 600, min_samples: 3, check_interval_ms: 60_000, max_streams: 100 },
    },
  };
  const notifier = new WebhookNotifier({ url, timeout_ms: timeoutMs, retries: 2, retry_initial_ms: 10, bearer_token: 'hook-secret' }, silentLogger(), (channel, outcome) =>
    metrics.alertDeliveries.inc({ channel, outcome }),
  );
  const alerts = new AlertManager({
    config,
    activity: async (): Promise<ActivityReport> => ({ nowMs: clock.now, streams: pending.splice(0), untrackedRows: 0 }),
    metrics,
    logger: silentLogger(),
    now: () => clock.now,
    notifiers: [notifier],
    feedsPaused: () => paused.now,
    ...(cadencePath ? { cadencePath } : {}),
  });
  const arrive = () => pending.push(['sensors', 'coat3', { line: 'coat3' }, clock.now, 1]);
  return { clock, alerts, metrics, arrive };
}

async function metricValue(metrics: LakesideMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value;
}

describe('AlertManager', () => {
  it('raises a feed-gap alert after k x cadence of silence, delivers it to the webhook, and clears it when data returns', async () => {
    const hook = await webhook((attempt) => (attempt === 0 ? 503 : 200)); // the first POST fails: retried
    const { clock, alerts, metrics, arrive } = manager(hook.url);
    await alerts.start();
    for (let i = 0; i < 6; i++) {
      arrive();
      await alerts.check();
      clock.now += 5000; // cadence 5 s → threshold 20 s
    }
    clock.now += 10_000; // 15 s since the last row
    await alerts.check();
    expect(alerts.openAlerts()).toEqual([]);
    clock.now += 5001; // 20.001 s
    await alerts.check();
    const [open] = alerts.openAlerts();
    expect(open).toMatchObject({ code: 'FEED_GAP', dataset: 'sensors', stream: { line: 'coat3' }, cadence_seconds: 5, threshold_seconds: 20 });
    expect(open!.message).toMatch(/no rows from sensors\{line=coat3\}/);
    expect(await metricValue(metrics, 'lakeside_alerts_active', { kind: 'feed_gap' })).toBe(1);
    expect(await metricValue(metrics, 'lakeside_feed_gap_alerts_total', { dataset: 'sensors' })).toBe(1);

    await waitFor(() => hook.received.length === 1, 'the webhook got the alert');
    expect(hook.attempts).toBe(2);
    expect(hook.authorizations).toEqual(['Bearer hook-secret', 'Bearer hook-secret']);
    expect(hook.received[0]).toMatchObject({ event: 'opened', plant: 'p1', agent_id: 'a1', alert: { id: 'feed_gap:sensors:coat3', code: 'FEED_GAP' } });

    clock.now += 30_000;
    arrive();
    await alerts.check();
    expect(alerts.openAlerts()).toEqual([]);
    expect(await metricValue(metrics, 'lakeside_alerts_active', { kind: 'feed_gap' })).toBe(0);
    await waitFor(() => hook.received.length === 2, 'the webhook got the clearance');
    expect(hook.received[1]).toMatchObject({ event: 'cleared', alert: { id: 'feed_gap:sensors:coat3', silent_seconds: 50.001 } });
    expect(await metricValue(metrics, 'lakeside_alert_deliveries_total', { channel: 'webhook', outcome: 'sent' })).toBe(2);
    await alerts.stop();
  });

  it('a webhook that never answers costs a timeout per attempt in the background, never the caller', async () => {
    const hook = await webhook(() => 'hang');
    const { clock, alerts, metrics, arrive } = manager(hook.url, 200);
    await alerts.start();
    for (let i = 0; i < 5; i++) {
      arrive();
      await alerts.check();
      clock.now += 1000;
    }
    clock.now += 10_000;
    await alerts.check(); // returns while the webhook hangs
    expect(alerts.openAlerts()).toHaveLength(1);
    await waitFor(async () => (await metricValue(metrics, 'lakeside_alert_deliveries_total', { channel: 'webhook', outcome: 'failed' })) === 1, 'the delivery given up');
    expect(hook.attempts).toBe(3); // 1 + 2 retries
    await alerts.stop();
  });

  it('opens no gap alert while the agent itself pauses the feeds, nor for floor_seconds after', async () => {
    const hook = await webhook(() => 200);
    const paused = { now: false };
    const { clock, alerts, arrive } = manager(hook.url, 5000, paused);
    await alerts.start();
    for (let i = 0; i < 5; i++) {
      arrive();
      await alerts.check();
      clock.now += 1000; // threshold: max(floor 1 s, 4 x 1 s) = 4 s
    }
    paused.now = true; // the landing log is blocked: sources paused
    clock.now += 60_000;
    await alerts.check();
    expect(alerts.openAlerts()).toEqual([]);
    paused.now = false;
    clock.now += 500; // within floor_seconds of the pause ending
    await alerts.check();
    expect(alerts.openAlerts()).toEqual([]);
    clock.now += 600;
    await alerts.check(); // the stream did not come back: now it is a gap
    expect(alerts.openAlerts()).toHaveLength(1);
    await alerts.stop();
  });

  it('keeps learned cadences across a restart: a stream silent since before it alerts k x cadence after the start, the downtime not counted', async () => {
    const hook = await webhook(() => 200);
    const dir = mkdtempSync(join(tmpdir(), 'lakeside-cadences-'));
    try {
      const path = join(dir, 'alerts', 'cadences.json');
      const first = manager(hook.url, 5000, { now: false }, path);
      await first.alerts.start();
      for (let i = 0; i < 6; i++) {
        first.arrive();
        await first.alerts.check();
        first.clock.now += 5000; // cadence 5 s -> threshold 20 s
      }
      await first.alerts.stop();
      expect(existsSync(path)).toBe(true);

      // Down for 10 minutes; the feed died meanwhile and never sends again.
      const restarted = async (cadencePath: string) => {
        const next = manager(hook.url, 5000, { now: false }, cadencePath);
        next.clock.now = first.clock.now + 600_000;
        await next.alerts.start();
        await next.alerts.check();
        const atStart = next.alerts.openAlerts();
        next.clock.now += 20_001;
        await next.alerts.check();
        const later = next.alerts.openAlerts();
        await next.alerts.stop();
        return { atStart, later };
      };
      const kept = await restarted(path);
      expect(kept.atStart).toEqual([]); // the agent's own downtime is no feed gap
      expect(kept.later).toHaveLength(1);
      expect(kept.later[0]).toMatchObject({ code: 'FEED_GAP', dataset: 'sensors', stream: { line: 'coat3' }, cadence_seconds: 5, threshold_seconds: 20 });

      // Without the file the stream is unknown after the restart and never alerts.
      expect((await restarted(join(dir, 'none', 'cadences.json'))).later).toEqual([]);
      // An unreadable file is ignored (learning starts again); the start does not fail.
      writeFileSync(path, '{"version": 1, "streams": "garbled');
      expect(await restarted(path)).toEqual({ atStart: [], later: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
