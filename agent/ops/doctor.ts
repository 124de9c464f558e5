/**
 * `lakeside doctor`: is this machine ready to run the agent with this config?
 *
 * The checks are a list (`DOCTOR_CHECKS`): each says whether it applies to a config and
 * returns results (ok / warn / fail with a sentence). A new subsystem adds its check
 * to the list. MQTT brokers get a real MQTT connect; the other remote services
 * (`remoteEndpoints`: S3 stores, the Iceberg REST catalog and its token endpoint, the
 * policy locations, Kafka brokers, the webhook) a TCP connection that must open; S3
 * stores are then listed and the REST catalog asked for its config (doctor-services.ts).
 *
 * Doctor never changes anything and never disturbs a running daemon: MQTT checks
 * connect with a clean session under their own client id (the daemon's persistent
 * sessions are left alone) and disconnect at once; nothing is published.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat, statfs } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions } from 'mqtt';
import { ConfigError, loadConfigFile, type LoadedConfig } from '../../config/loader.ts';
import type { LakesideConfig } from '../../config/schema.ts';
import { mqttTlsOptions, type MqttTlsConfig } from '../sources/mqtt-tls.ts';
import { servicesCheck } from './doctor-services.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
}

export interface DoctorContext {
  loaded: LoadedConfig;
  timeoutMs: number;
}

export interface DoctorCheck {
  name: string;
  applies(loaded: LoadedConfig): boolean;
  run(context: DoctorContext): Promise<CheckResult[]>;
}

const GiB = 1024 ** 3;

function result(check: string, status: CheckStatus, detail: string): CheckResult {
  return { check, status, detail };
}

/** Opens (and closes) a TCP connection to host:port. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (problem: string | null) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done(null));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'mqtt:': 1883, 'tcp:': 1883, 'mqtts:': 8883, 'ssl:': 8883, 'ws:': 80, 'wss:': 443 };

export interface RemoteEndpoint {
  /** The check it is reported under: s3, catalog, policy, kafka, webhook. */
  check: string;
  /** Where the config names it. */
  path: string;
  url: string;
}

/** What an s3:// location connects to: the store's custom endpoint, or AWS S3 in the store's region. */
function s3Endpoint(store: { endpoint?: string | undefined; region: string } | undefined): string {
  return store?.endpoint ?? `https://s3.${store?.region ?? 'us-east-1'}.amazonaws.com`;
}

/** Every remote service this config talks to besides its MQTT brokers; `file:` locations are local and left out. */
export function remoteEndpoints(config: LakesideConfig): RemoteEndpoint[] {
  const endpoints: RemoteEndpoint[] = [];
  const location = (check: string, path: string, url: string, store: { endpoint?: string | undefined; region: string } | undefined) => {
    if (url.startsWith('s3://')) endpoints.push({ check, path, url: s3Endpoint(store) });
    else if (/^https?:\/\//.test(url)) endpoints.push({ check, path, url });
  };
  for (const tier of ['warm', 'cold'] as const) {
    const store = config.tiering[tier];
    if (store) location('s3', `tiering.${tier}`, store.url, store);
  }
  const rest = config.catalog.type === 'rest' ? config.catalog.rest : undefined;
  if (rest) {
    endpoints.push({ check: 'catalog', path: 'catalog.rest.uri', url: rest.uri });
    if (rest.oauth2) endpoints.push({ check: 'catalog', path: 'catalog.rest.oauth2.token_endpoint', url: rest.oauth2.token_endpoint });
  }
  const policy = config.policy;
  if (policy) {
    location('policy', 'policy.url', policy.url, policy.store);
    if (policy.signature_url) location('policy', 'policy.signature_url', policy.signature_url, policy.store);
    if (policy.status) location('policy', 'policy.status.url', policy.status.url, policy.store);
    if (policy.mqtt_nudge) endpoints.push({ check: 'policy', path: 'policy.mqtt_nudge.url', url: policy.mqtt_nudge.url });
  }
  for (const source of config.sources.kafka) {
    source.brokers.forEach((broker, i) => endpoints.push({ check: 'kafka', path: `sources.kafka ${source.name} brokers[${i}]`, url: `tcp://${broker}` }));
  }
  if (config.alerts.webhook) endpoints.push({ check: 'webhook', path: 'alerts.webhook.url', url: config.alerts.webhook.url });
  return endpoints;
}

const configCheck: DoctorCheck = {
  name: 'config',
  applies: () => true,
  async run({ loaded }) {
    const { config } = loaded;
    const results = [result('config', 'ok', `valid: plant ${config.plant}, ${loaded.datasets.length} dataset(s), ${config.sources.mqtt.length} MQTT and ${config.sources.folders.length} folder source(s)`)];
    for (const warning of loaded.warnings) results.push(result('config', 'warn', warning));
    return results;
  },
};

const stateDirCheck: DoctorCheck = {
  name: 'state directory',
  applies: () => true,
  async run({ loaded }) {
    const dir = loaded.config.state_dir;
    const info = await stat(dir).catch(() => null);
    if (!info) {
      const parent = dirname(dir);
      const writable = await access(parent, constants.W_OK | constants.X_OK).then(() => true, () => false);
      return [result('state directory', writable ? 'warn' : 'fail', writable ? `${dir} does not exist yet; it will be created` : `${dir} does not exist and ${parent} is not writable by this user`)];
    }
    if (!info.isDirectory()) return [result('state directory', 'fail', `${dir} is not a directory`)];
    const results: CheckResult[] = [];
    const writable = await access(dir, constants.R_OK | constants.W_OK | constants.X_OK).then(() => true, () => false);
    results.push(result('state directory', writable ? 'ok' : 'fail', `${dir} ${writable ? 'is' : 'is NOT'} readable and writable by uid ${process.getuid?.() ?? '?'}`));
    const mode = info.mode & 0o777;
    if (mode & 0o007) results.push(result('state directory', 'warn', `${dir} has mode ${mode.toString(8)}: others can read it (plant data); chmod o-rwx`));
    if (process.getuid && info.uid !== process.getuid()) results.push(result('state directory', 'warn', `${dir} is owned by uid ${info.uid}, not by this user (${process.getuid()})`));
    return results;
  },
};

const diskCheck: DoctorCheck = {
  name: 'disk',
  applies: () => true,
  async run({ loaded }) {
    let dir = loaded.config.state_dir;
    while (!(await stat(dir).catch(() => null)) && dirname(dir) !== dir) dir = dirname(dir);
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    const size = fs.blocks * fs.bsize;
    const ratio = size > 0 ? free / size : 0;
    const detail = `${(free / GiB).toFixed(1)} GiB free of ${(size / GiB).toFixed(1)} GiB (${Math.round(ratio * 100)} % free) at ${dir}`;
    const status: CheckStatus = ratio < 0.02 || free < 256 * 1024 ** 2 ? 'fail' : ratio < 0.1 || free < GiB ? 'warn' : 'ok';
    return [result('disk', status, detail)];
  },
};

function ntpSynchronized(): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 2000 }, (error, stdout) => resolve(error ? null : stdout.trim()));
  });
}

const clockCheck: DoctorCheck = {
  name: 'clock',
  applies: () => true,
  async run() {
    const now = new Date();
    const results: CheckResult[] = [];
    // Event times are checked against this clock (max_future_skew_seconds); a clock in
    // the past or far future quarantines good rows.
    if (now.getUTCFullYear() < 2025 || now.getUTCFullYear() > 2100) results.push(result('clock', 'fail', `the system clock reads ${now.toISOString()}: set it (NTP) before ingesting`));
    else results.push(result('clock', 'ok', `system clock ${now.toISOString()}`));
    const synced = await ntpSynchronized();
    if (synced === 'no') results.push(result('clock', 'warn', 'timedatectl says the clock is not NTP-synchronised: event-time checks and file windows depend on it'));
    else if (synced === 'yes') results.push(result('clock', 'ok', 'NTP-synchronised (timedatectl)'));
    return results;
  },
};

interface MqttTarget {
  what: string;
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  tls?: MqttTlsConfig | undefined;
}

/** Connects the way the agent would (credentials, TLS files) and disconnects; the problem, or null. */
async function mqttConnects(target: MqttTarget, timeoutMs: number): Promise<string | null> {
  let tls: IClientOptions;
  try {
    tls = await mqttTlsOptions(target.tls);
  } catch (error) {
    return `cannot read a TLS file: ${(error as Error).message}`;
  }
  const client = mqtt.connect(target.url, {
    ...tls,
    clientId: `lakeside-doctor-${randomBytes(4).toString('hex')}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
  });
  try {
    return await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(`no CONNACK within ${timeoutMs} ms`), timeoutMs + 500);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve(null);
      });
      client.once('error', (error) => {
        clearTimeout(timer);
        resolve(error.message);
      });
      client.once('close', () => {
        clearTimeout(timer);
        resolve('connection closed before CONNACK');
      });
    });
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

const mqttCheck: DoctorCheck = {
  name: 'mqtt',
  applies: (loaded) => loaded.config.sources.mqtt.length > 0 || loaded.config.alerts.mqtt !== undefined,
  async run({ loaded, timeoutMs }) {
    const targets: MqttTarget[] = loaded.config.sources.mqtt.map((s) => ({ what: `source ${s.name}`, url: s.url, username: s.username, password: s.password, tls: s.tls }));
    const alerts = loaded.config.alerts.mqtt;
    if (alerts) targets.push({ what: 'alerts', url: alerts.url, username: alerts.username, password: alerts.password, tls: alerts.tls });
    return Promise.all(
      targets.map(async (target) => {
        const problem = await mqttConnects(target, timeoutMs);
        const { what, url } = target;
        return result('mqtt', problem ? 'fail' : 'ok', problem ? `${what}: ${url} refused or unreachable: ${problem}` : `${what}: ${url} accepts a connection`);
      }),
    );
  },
};

async function urlReachable({ check, path, url }: RemoteEndpoint, timeoutMs: number): Promise<CheckResult> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return result(check, 'fail', `${path}: ${url} is not a URL`);
  }
  const port = parsed.port ? Number(parsed.port) : DEFAULT_PORTS[parsed.protocol];
  if (!port) return result(check, 'warn', `${path}: ${url}: unknown scheme, not checked`);
  const problem = await tcpReachable(parsed.hostname.replace(/^\[|\]$/g, ''), port, timeoutMs);
  return result(check, problem ? 'fail' : 'ok', problem ? `${path}: ${parsed.host} unreachable (${problem})` : `${path}: ${parsed.host} reachable`);
}

const endpointsCheck: DoctorCheck = {
  name: 'remote endpoints',
  applies: () => true,
  async run({ loaded, timeoutMs }) {
    const endpoints = remoteEndpoints(loaded.config);
    if (endpoints.length === 0) return [result('endpoints', 'ok', 'no S3, catalog, policy, Kafka or webhook endpoint configured')];
    return Promise.all(endpoints.map((endpoint) => urlReachable(endpoint, timeoutMs)));
  },
};

/** In order; add a subsystem's check here. */
export const DOCTOR_CHECKS: DoctorCheck[] = [configCheck, stateDirCheck, diskCheck, clockCheck, mqttCheck, endpointsCheck, servicesCheck];

export async function runDoctor(configPath: string, options: { timeoutMs?: number; checks?: DoctorCheck[] } = {}): Promise<CheckResult[]> {
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfigFile(configPath);
  } catch (error) {
    if (error instanceof ConfigError) return [result('config', 'fail', error.message)];
    throw error;
  }
  const context: DoctorContext = { loaded, timeoutMs: options.timeoutMs ?? 5000 };
  const results: CheckResult[] = [];
  for (const check of options.checks ?? DOCTOR_CHECKS) {
    if (!check.applies(loaded)) continue;
    try {
      results.push(...(await check.run(context)));
    } catch (error) {
      results.push(result(check.name, 'fail', `the check itself failed: ${(error as Error).message}`));
    }
  }
  return results;
}
