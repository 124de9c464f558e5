// The one lifecycle contract (agent/lifecycle.ts), checked for every component:
// - the constructor does no I/O (nothing is created, nothing connects);
// - start() resolves when the component is ready to work;
// - stop() is safe to call twice and concurrently, and afterwards nothing the component
//   started (worker threads, watchers, sockets, ref'd timers) keeps the process alive.
// Then the same at the daemon level: start, ingest, stop, restart on the same state,
// and the state lock that keeps a second daemon off a state directory in use.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveDataset } from '../../../config/dataset.ts';
import { parseConfigText } from '../../../config/loader.ts';
import { datasetSchema, mqttSourceSchema, type DatasetConfig } from '../../../config/schema.ts';
import { AlertManager } from '../../../agent/alerts/alert-manager.ts';
import { BlobStore } from '../../../agent/blobs/blob-store.ts';
import { LakesideMetrics } from '../../../agent/metrics/metrics.ts';
import { Daemon } from '../../../agent/daemon.ts';
import { HealthLoop } from '../../../agent/health-loop.ts';
import { Sealer } from '../../../agent/hot/sealer.ts';
import type { LandingLog } from '../../../agent/landing/landing-log.ts';
import { applyPragmas, ensureSchema, landedRowsWhere } from '../../../agent/landing/schema.ts';
import type { Component } from '../../../agent/lifecycle.ts';
import { silentLogger } from '../../../agent/log.ts';
import { MqttMapper } from '../../../agent/mapping/mapper.ts';
import type { FolderSource } from '../../../agent/sources/folder-source.ts';
import type { Notifier } from '../../../agent/sd-notify.ts';
import { MqttSource } from '../../../agent/sources/mqtt-source.ts';
import { tieringSchema } from '../../../config/tiering-schema.ts';
import { ensureTierSchema } from '../../../tiering/tier-map.ts';
import { Tiering } from '../../../tiering/tiering.ts';
import { agentPolicyConfigSchema } from '../../../config/policy-schema.ts';
import { validatorChecker } from '../../../sync/policy/check.ts';
import { PolicyAgent } from '../../../sync/policy/policy-agent.ts';
import { encodeSignatureFile, generateSigningKeyPair, signDocument } from '../../../sync/policy/signature.ts';
import { StatusReporter } from '../../../sync/policy/status-report.ts';
import { cameraFolderConfig, framesDaemonConfigText, framesDataset, newFolderSource, testLandingLog } from '../../support/folder-source.ts';
import { waitFor } from '../../support/wait-for.ts';

const REPO_ROOT = new URL('../../../', import.meta.url);
const POLICY_KEY = generateSigningKeyPair();

const frames = framesDataset();
const readings: DatasetConfig = datasetSchema.parse({
  name: 'readings',
  time_column: 'ts',
  columns: [
    { name: 'line', type: 'string', nullable: false },
    { name: 'value', type: 'double' },
  ],
});
const hot = {
  seal_interval_ms: 50,
  compaction_window_minutes: 10,
  compaction_grace_seconds: 60,
  compaction_interval_ms: 100,
  row_group_rows: 1000,
  seal_max_rows: 1000,
};

/** OS threads of this process: a worker thread that was not terminated shows here. */
const threadCount = (): number => readdirSync('/proc/self/task').length;

function countByType(resources: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Resources (ref'd handles, timers, requests) beyond those of the baseline. */
function extraResources(baseline: string[]): string[] {
  const base = countByType(baseline);
  const extra: string[] = [];
  for (const [type, n] of countByType(process.getActiveResourcesInfo())) {
    if (n > (base.get(type) ?? 0)) extra.push(`${type}×${n - (base.get(type) ?? 0)}`);
  }
  return extra;
}

interface Baseline {
  threads: number;
  resources: string[];
}

function baseline(): Baseline {
  return { threads: threadCount(), resources: process.getActiveResourcesInfo() };
}

/** Nothing the component started is left: back to the baseline's threads and handles. */
async function expectNothingLeft(before: Baseline): Promise<void> {
  await waitFor(
    () => threadCount() <= before.threads && extraResources(before.resources).length === 0,
    () => `threads ${threadCount()} (baseline ${before.threads}), extra resources [${extraResources(before.resources).join(', ')}]`,
    5_000,
  );
}

/** stop() twice at once, then once more: every call resolves, and all calls share one stop. */
async function stopTwiceConcurrently(component: Component): Promise<void> {
  const first = component.stop();
  const second = component.stop();
  expect(second).toBe(first);
  await Promise.all([first, second]);
  await component.stop();
}

interface Case {
  name: string;
  /** Builds the component over paths that do not exist yet. */
  build(dir: string): Component;
  /** Paths the component may create once started, but never when only constructed. */
  paths(dir: string): string[];
  /** Proves the component does its work once start() has resolved. */
  ready(component: Component, dir: string): Promise<void>;
  /** Anything the case needs around it (a landing log for sources), started before and stopped after. */
  around?: (dir: string) => { start(): Promise<void>; stop(): Promise<void> };
}

// A landing log (and blob store) for the sources, in its own directory so the source's
// own I/O is what the no-I/O check looks at.
function landingFor(dir: string): { landing: LandingLog; blobs: BlobStore } {
  return {
    landing: testLandingLog(join(dir, 'support', 'landing.db'), [frames, readings]),
    blobs: new BlobStore(join(dir, 'support', 'blobs')),
  };
}
const support = new Map<string, { landing: LandingLog; blobs: BlobStore }>();
function supportOf(dir: string): { landing: LandingLog; blobs: BlobStore } {
  let s = support.get(dir);
  if (!s) support.set(dir, (s = landingFor(dir)));
  return s;
}
const withLanding = (dir: string) => ({
  async start() {
    await mkdir(join(dir, 'support'), { recursive: true });
    const s = supportOf(dir);
    await s.landing.start();
    await s.blobs.start();
  },
  async stop() {
    await supportOf(dir).landing.stop();
  },
});

// The landing schema exists before the sealer and tiering start, as in the daemon.
const withLandingSchema = (dir: string) => ({
  async start() {
    await mkdir(join(dir, 'state'), { recursive: true });
    const db = new Database(join(dir, 'state', 'landing.db'));
    applyPragmas(db);
    ensureSchema(db, [resolveDataset(frames)]);
    ensureTierSchema(db);
    db.close();
  },
  async stop() {},
});

let broker: Aedes;
let server: Server;
let brokerUrl = '';

const cases: Case[] = [
  {
    name: 'LandingLog',
    build: (dir) => testLandingLog(join(dir, 'state', 'landing.db'), [frames]),
    paths: (dir) => [join(dir, 'state', 'landing.db')],
    async ready(component) {
      const log = component as LandingLog;
      const result = await log.append({ rows: [{ dataset: 'frames', values: [Date.now() * 1000, 'l1', 'c1', null] }], quarantine: [], blobs: [] });
      expect(result.inserted).toBe(1);
    },
    around: (dir) => ({ start: () => mkdir(join(dir, 'state'), { recursive: true }).then(() => {}), stop: async () => {} }),
  },
  {
    name: 'Sealer',
    build: (dir) => new Sealer({ dbPath: join(dir, 'state', 'landing.db'), stateDir: join(dir, 'state'), datasets: [frames], hot, logger: silentLogger() }),
    paths: (dir) => [join(dir, 'state', 'hot')],
    async ready(component) {
      const sealer = component as Sealer;
      expect(sealer.lastRecovery).not.toBeNull(); // start-up recovery has run
      const result = await sealer.sealNow();
      expect(result.failures).toEqual([]);
    },
    around: withLandingSchema,
  },
  {
    name: 'Tiering',
    build: (dir) =>
      new Tiering({
        config: tieringSchema.parse({ warm: { url: pathToFileURL(join(dir, 'warm')).href }, scan_interval_ms: 50 }),
        dbPath: join(dir, 'state', 'landing.db'),
        stateDir: join(dir, 'state'),
        context: { plant: 'p', agentId: 'p' },
        logger: silentLogger(),
      }),
    paths: (dir) => [join(dir, 'warm')],
    async ready(component, dir) {
      // A blob registered by the landing writer is uploaded by the running component.
      const db = new Database(join(dir, 'state', 'landing.db'));
      try {
        const bytes = Buffer.from('frame');
        const sha = createHash('sha256').update(bytes).digest('hex');
        await mkdir(join(dir, 'state', 'blobs', sha.slice(0, 2)), { recursive: true });
        await writeFile(join(dir, 'state', 'blobs', sha.slice(0, 2), sha), bytes);
        db.prepare('INSERT INTO blobs (sha256, size_bytes, content_type, first_seen_us) VALUES (?, 5, NULL, 0)').run(sha);
        await waitFor(() => (component as Tiering).map!.all()[0]?.state === 'committed', 'the blob to be uploaded and committed');
        expect(existsSync(join(dir, 'warm', 'p', 'blobs', sha.slice(0, 2), sha))).toBe(true);
      } finally {
        db.close();
      }
    },
    around: withLandingSchema,
  },
  {
    name: 'PolicyAgent',
    build: (dir) =>
      new PolicyAgent({
        config: agentPolicyConfigSchema.parse({ url: pathToFileURL(join(dir, 'centre', 'policy.yaml')).href, poll_interval_seconds: 1, trusted_keys: [{ id: 'k1', public_key: POLICY_KEY.publicKeyRaw }] }),
        plant: 'p',
        stateDir: join(dir, 'state'),
        datasets: ['frames'],
        base: { tiering: tieringSchema.parse({}), hot },
        check: validatorChecker,
        apply: () => {},
        hot: { applyDatasetSettings: (settings) => settings },
        logger: silentLogger(),
      }),
    paths: (dir) => [join(dir, 'state', 'policy')],
    async ready(component, dir) {
      // A policy published after start is fetched by the running component and applied.
      const doc = Buffer.from(`version: 1\nissued_at: "2026-01-01T00:00:00Z"\nexpires_at: "2099-01-01T00:00:00Z"\nplants: ["*"]\n`);
      await mkdir(join(dir, 'centre'), { recursive: true });
      await writeFile(join(dir, 'centre', 'policy.yaml.sig'), encodeSignatureFile(signDocument(doc, POLICY_KEY.privateKeyPem, 'k1')));
      await writeFile(join(dir, 'centre', 'policy.yaml'), doc);
      await waitFor(() => (component as PolicyAgent).status.applied?.version === 1, 'the published policy to be applied', 10_000);
    },
  },
  {
    name: 'StatusReporter',
    build: (dir) =>
      new StatusReporter({
        config: { url: pathToFileURL(join(dir, 'reports')).href, interval_seconds: 1 },
        plant: 'p',
        agentId: 'p',
        dbPath: join(dir, 'state', 'landing.db'),
        policy: () => null,
        snapshot: async () => ({ disk: { size_bytes: null, free_bytes: null, watermark: 'ok' }, alerts: [] }),
        logger: silentLogger(),
      }),
    paths: (dir) => [join(dir, 'reports')],
    async ready(_component, dir) {
      await waitFor(() => existsSync(join(dir, 'reports', 'status', 'p.json')), 'the first status report', 10_000);
    },
    around: withLandingSchema,
  },
  {
    name: 'FolderSource',
    build(dir) {
      const config = cameraFolderConfig(join(dir, 'drop'), frames, { done_dir: join(dir, 'done'), stable_ms: 100 });
      const { landing, blobs } = supportOf(dir);
      return newFolderSource(config, frames, landing, blobs);
    },
    paths: (dir) => [join(dir, 'drop'), join(dir, 'done')],
    async ready(component, dir) {
      const source = component as FolderSource;
      await mkdir(join(dir, 'drop', 'l1', 'c1'), { recursive: true });
      await writeFile(join(dir, 'drop', 'l1', 'c1', 'a.jpg'), 'frame');
      // The move to done_dir follows the count by an await: wait for both.
      const done = join(dir, 'done', 'l1', 'c1', 'a.jpg');
      await waitFor(() => source.stats.ingested === 1 && existsSync(done), 'the dropped file to be ingested and moved to done_dir');
      expect(existsSync(join(dir, 'drop', 'l1', 'c1', 'a.jpg'))).toBe(false);
    },
    around: withLanding,
  },
  {
    name: 'MqttSource',
    build(dir) {
      // aedes speaks MQTT 3.1.1 without $share: one plain connection.
      const config = mqttSourceSchema.parse({
        name: 'broker',
        url: brokerUrl,
        protocol_version: 4,
        client_id: `conformance-${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`,
        share_group: null,
        connections: 1,
        routes: [{ filter: 'plant/+/reading', dataset: 'readings', fields: { ts: { received_at: true }, line: { topic_level: 1 }, value: { json: 'value' } } }],
      });
      const { landing, blobs } = supportOf(dir);
      return new MqttSource({ config, mapper: new MqttMapper(config, [resolveDataset(readings)]), landing, blobs, logger: silentLogger() });
    },
    paths: () => [],
    async ready(component) {
      const source = component as MqttSource;
      expect(source.stats.connected).toBeGreaterThanOrEqual(1);
      const publisher = await mqtt.connectAsync(brokerUrl, { protocolVersion: 4 });
      try {
        await waitFor(() => broker.connectedClients >= 2, 'the publisher to connect');
        // The subscription may be a moment behind the CONNACK: publish until it lands.
        await waitFor(async () => {
          await publisher.publishAsync('plant/l1/reading', JSON.stringify({ value: 1.5 }), { qos: 1 });
          return source.stats.acked >= 1;
        }, 'a message to be landed and acknowledged');
      } finally {
        await publisher.endAsync();
      }
    },
    around: withLanding,
  },
  {
    name: 'AlertManager',
    build(dir) {
      const { landing } = supportOf(dir);
      const gap = { enabled: true, k: 5, floor_seconds: 30, ceiling_seconds: 3600, min_samples: 5, check_interval_ms: 20, max_streams: 100 };
      return new AlertManager({
        config: { plant: 'p', agent_id: 'a', alerts: { feed_gap: gap, mqtt: { url: brokerUrl, topic: 'alerts', client_id: `alerts-${dir.slice(-6)}`, retain: false } } },
        activity: () => landing.activity(),
        metrics: new LakesideMetrics({ defaultMetrics: false }),
        logger: silentLogger(),
      });
    },
    paths: () => [],
    async ready(component, dir) {
      const alerts = component as AlertManager;
      await supportOf(dir).landing.append({ rows: [{ dataset: 'readings', values: [Date.now() * 1000, 'l1', 1] }], quarantine: [], blobs: [] });
      await waitFor(() => alerts.detector.size === 1, 'the stream to be watched');
      await waitFor(() => broker.connectedClients >= 1, 'the alert publisher to connect');
    },
    around: withLanding,
  },
  {
    name: 'HealthLoop',
    build: () => {
      const pings: number[] = [];
      const notifier: Notifier = { enabled: true, watchdogMs: 30, ready() {}, watchdog: () => void pings.push(Date.now()), stopping() {}, status() {}, flush: async () => {} };
      return Object.assign(new HealthLoop({ liveness: () => ({ ok: true, reasons: [] }), notifier, intervalMs: 10, logger: silentLogger() }), { pings });
    },
    paths: () => [],
    async ready(component) {
      const { pings } = component as HealthLoop & { pings: number[] };
      await waitFor(() => pings.length >= 2, () => `watchdog pings: ${pings.length}`, 5_000);
    },
  },
];

describe('lifecycle conformance', () => {
  let dir: string;

  beforeAll(async () => {
    broker = await Aedes.createBroker();
    server = createServer(broker.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    brokerUrl = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conformance-'));
  });
  afterEach(async () => {
    support.delete(dir);
    await rm(dir, { recursive: true, force: true });
  });

  describe.each(cases)('$name', (c) => {
    it('does no I/O in its constructor', async () => {
      const clientsBefore = broker.connectedClients;
      const component = c.build(dir);
      expect(component.name).toEqual(expect.any(String));
      // Give anything started behind our back a chance to show.
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (const path of [join(dir, 'state'), join(dir, 'support'), ...c.paths(dir)]) expect(existsSync(path), path).toBe(false);
      expect(broker.connectedClients).toBe(clientsBefore);
    });

    it('stop() before start() is safe', async () => {
      const component = c.build(dir);
      await stopTwiceConcurrently(component);
      for (const path of c.paths(dir)) expect(existsSync(path), path).toBe(false);
    });

    it('is ready when start() resolves; stop() twice and concurrently leaves nothing running', async () => {
      const env = c.around?.(dir);
      await env?.start();
      const before = baseline();
      const component = c.build(dir);
      try {
        await component.start();
        await c.ready(component, dir);
      } finally {
        await stopTwiceConcurrently(component);
      }
      await expectNothingLeft(before);
      await env?.stop();
    });
  });

  describe('Daemon', () => {

    /** Rows of `frames` anywhere in the hot path: still landed, or sealed into registered files. */
    function framesStored(stateDir: string): number {
      const db = new Database(join(stateDir, 'landing.db'), { readonly: true });
      try {
        const landed = db.prepare(`SELECT count(*) FROM landed_frames WHERE ${landedRowsWhere('frames')}`).pluck().get() as number;
        const sealed = db.prepare("SELECT coalesce(sum(record_count), 0) FROM hot_files WHERE dataset = 'frames' AND level = 0").pluck().get() as number;
        return landed + sealed;
      } finally {
        db.close();
      }
    }

    async function dropFile(drop: string, name: string, body: string): Promise<string> {
      await mkdir(join(drop, 'l1', 'c1'), { recursive: true });
      const path = join(drop, 'l1', 'c1', name);
      await writeFile(path, body);
      return path;
    }

    it('constructs without I/O, ingests, stops, restarts on the same state, and leaves nothing running', async () => {
      const stateDir = join(dir, 'state');
      const drop = join(dir, 'drop');
      const text = framesDaemonConfigText(stateDir, drop);
      const before = baseline();

      const first = new Daemon(parseConfigText(text, join(dir, 'lakeside.yaml')), silentLogger());
      expect(existsSync(stateDir)).toBe(false);
      expect(existsSync(drop)).toBe(false);
      await first.start();
      expect(existsSync(join(stateDir, 'lakeside.lock'))).toBe(true);
      const a = await dropFile(drop, 'a.jpg', 'frame a');
      await waitFor(() => !existsSync(a), 'a.jpg to be ingested');
      await stopTwiceConcurrently(first as unknown as Component);
      expect(existsSync(join(stateDir, 'lakeside.lock'))).toBe(false);
      expect(framesStored(stateDir)).toBe(1);
      await expectNothingLeft(before);

      const second = new Daemon(parseConfigText(text, join(dir, 'lakeside.yaml')), silentLogger());
      await second.start();
      try {
        expect(framesStored(stateDir)).toBe(1);
        const b = await dropFile(drop, 'b.jpg', 'frame b');
        await waitFor(() => !existsSync(b), 'b.jpg to be ingested after the restart');
      } finally {
        await second.stop();
      }
      expect(framesStored(stateDir)).toBe(2);
      await expectNothingLeft(before);
    });

    it('refuses a second daemon (another process) on a state directory in use, with STATE_DIR_LOCKED', async () => {
      const stateDir = join(dir, 'state');
      const drop = join(dir, 'drop');
      const text = framesDaemonConfigText(stateDir, drop);
      await writeFile(join(dir, 'lakeside.yaml'), text);
      const daemon = new Daemon(parseConfigText(text, join(dir, 'lakeside.yaml')), silentLogger());
      await daemon.start();
      try {
        const script = `
          const { loadConfigFile } = await import(${JSON.stringify(new URL('config/loader.ts', REPO_ROOT).href)});
          const { Daemon } = await import(${JSON.stringify(new URL('agent/daemon.ts', REPO_ROOT).href)});
          const { silentLogger } = await import(${JSON.stringify(new URL('agent/log.ts', REPO_ROOT).href)});
          const daemon = new Daemon(await loadConfigFile(${JSON.stringify(join(dir, 'lakeside.yaml'))}), silentLogger());
          try { await daemon.start(); await daemon.stop(); console.log('STARTED'); }
          catch (error) { console.log('FAILED ' + error.code); }
        `;
        const out = await new Promise<string>((resolve, reject) =>
          execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: pathToFileURL(REPO_ROOT.pathname).pathname, timeout: 60_000 }, (error, stdout, stderr) =>
            error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout.trim()),
          ),
        );
        expect(out).toBe('FAILED STATE_DIR_LOCKED');
        // The running daemon still works.
        const c = await dropFile(drop, 'c.jpg', 'frame c');
        await waitFor(() => !existsSync(c), 'c.jpg to be ingested');
      } finally {
        await daemon.stop();
      }
      // Once released, the directory can be taken again.
      const again = new Daemon(parseConfigText(text, join(dir, 'lakeside.yaml')), silentLogger());
      await again.start();
      await again.stop();
    });
  });
});
