// MQTT over TLS with a client certificate and a username/password, against a real
// Mosquitto that requires both (require_certificate, allow_anonymous false,
// password_file). A throwaway CA, server certificate (SAN IP:127.0.0.1) and client
// certificate are made with openssl, the password file with mosquitto_passwd.
// Proves: the source verifies the broker against ca_file, presents cert_file/key_file,
// logs in with username and a `${file:...}` password, and its messages land; with a
// wrong password it never connects, warns MQTT_CONNECT_ERROR and the daemon still
// starts after connect_timeout_ms; the password is in neither the log nor the config JSON.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../config/loader.ts';
import { Daemon } from '../../agent/daemon.ts';
import { createLogger } from '../../agent/log.ts';
import type { MqttSource } from '../../agent/sources/mqtt-source.ts';
import { startMosquitto, type Mosquitto } from '../services/mosquitto.ts';
import { readHotTier } from '../support/hot-tier-reader.ts';
import { waitFor } from '../support/wait-for.ts';

const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;

let dir: string;
let broker: Mosquitto;
const pem = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by the test CA, with the given X.509v3 extensions. */
function issue(name: string, cn: string, extensions: string): void {
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(pem(`${name}.ext`), extensions + '\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lakeside-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=lakeside test CA');
  issue('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  issue('client', 'lakeside', 'extendedKeyUsage=clientAuth');
  execFileSync('mosquitto_passwd', ['-c', '-b', pem('passwd'), 'lakeside', PASSWORD], { stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(pem('mqtt-password'), PASSWORD + '\n', { mode: 0o600 });
  writeFileSync(pem('wrong-password'), WRONG_PASSWORD + '\n', { mode: 0o600 });

  broker = await startMosquitto({
    tls: true,
    extraConfig: [
      `cafile ${pem('ca.crt')}`,
      `certfile ${pem('server.crt')}`,
      `keyfile ${pem('server.key')}`,
      'require_certificate true',
      'allow_anonymous false',
      `password_file ${pem('passwd')}`,
    ],
    probeOptions: { ...clientTls(), username: 'lakeside', password: PASSWORD },
  });
});
afterAll(async () => {
  await broker?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function clientTls() {
  return { ca: readFileSync(pem('ca.crt')), cert: readFileSync(pem('client.crt')), key: readFileSync(pem('client.key')) };
}

function config(stateDir: string, passwordFile: string): string {
  return `
plant: tlstest
api: { listen_port: 0 }
state_dir: ${stateDir}
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: seq, type: long, nullable: false }
      - { name: value, type: double, nullable: false }
    dedupe_key: [seq]
sources:
  mqtt:
    - name: secure_broker
      url: ${broker.url}
      client_id: lakeside-tls
      connections: 1
      connect_timeout_ms: 1000
      username: lakeside
      password: \${file:${passwordFile}}
      tls:
        ca_file: ${pem('ca.crt')}
        cert_file: ${pem('client.crt')}
        key_file: ${pem('client.key')}
      routes:
        - filter: tls/reading
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            seq: { json: seq }
            value: { json: value }
`;
}

/** A pino logger writing into a string, so tests can search what the daemon logged. */
function capturedLogger() {
  const out = { text: '' };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.text += chunk.toString();
      done();
    },
  });
  return { logger: createLogger('debug', sink), out };
}

/** One connection attempt, no retries; rejects if the broker refuses. */
async function connectOnce(options: mqtt.IClientOptions): Promise<void> {
  const client = await mqtt.connectAsync(broker.url, { ...options, reconnectPeriod: 0, connectTimeout: 3000, clientId: `probe-${randomBytes(4).toString('hex')}` });
  await client.endAsync();
}

describe('MQTT source over TLS with client certificate and password', () => {
  it('connects, lands QoS 1 messages, and never shows the password', async () => {
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    // The broker demands both: it refuses a client without a certificate, or without the password.
    const { ca } = clientTls();
    await expect(connectOnce({ ca, username: 'lakeside', password: PASSWORD })).rejects.toThrow();
    await expect(connectOnce({ ...clientTls(), username: 'lakeside' })).rejects.toThrow(/not authori[sz]ed|bad user ?name or password/i);
    await connectOnce({ ...clientTls(), username: 'lakeside', password: PASSWORD });
    const stateDir = await mkdtemp(join(tmpdir(), 'lakeside-tls-state-'));
    const loaded = parseConfigText(config(stateDir, pem('mqtt-password')), 'test.yaml');
    expect(loaded.config.sources.mqtt[0]!.password).toBe(PASSWORD); // resolved for the client
    expect(JSON.stringify(loaded.config)).not.toContain(PASSWORD);
    expect(loaded.warnings.join('\n')).not.toMatch(/readable by group or others/);

    const { logger, out } = capturedLogger();
    const daemon = new Daemon(loaded, logger);
    await daemon.start();
    const source = daemon.sources[0] as MqttSource;
    await waitFor(() => source.stats.connected === 1, 'the TLS connection');

    const publisher = await mqtt.connectAsync(broker.url, { ...clientTls(), username: 'lakeside', password: PASSWORD, clientId: 'tls-pub' });
    const now = Date.now();
    for (let seq = 1; seq <= 5; seq++) {
      await publisher.publishAsync('tls/reading', JSON.stringify({ ts: now, seq, value: seq / 2 }), { qos: 1 });
    }
    await waitFor(() => source.stats.acked >= 5, () => `5 messages acked (acked ${source.stats.acked})`);
    await publisher.endAsync();
    await daemon.stop();

    const seqColumn = 1;
    expect(readHotTier(stateDir, 'readings').rows.map((r) => r[seqColumn]).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(source.stats.quarantined).toBe(0);
    // The broker saw our client log in as user "lakeside".
    expect(broker.logTail(200)).toMatch(/as lakeside-tls-0 \(.*u'lakeside'\)/);
    expect(out.text).toMatch(/mqtt connected/);
    expect(out.text).not.toContain(PASSWORD);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('with a wrong password: no connection, MQTT_CONNECT_ERROR, the daemon still starts', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'lakeside-tls-state-'));
    const loaded = parseConfigText(config(stateDir, pem('wrong-password')), 'test.yaml');
    expect(JSON.stringify(loaded.config)).not.toContain(WRONG_PASSWORD);
    const { logger, out } = capturedLogger();
    const daemon = new Daemon(loaded, logger);
    const started = Date.now();
    await daemon.start(); // returns after connect_timeout_ms, not never
    const elapsed = Date.now() - started;
    const source = daemon.sources[0] as MqttSource;
    await daemon.stop();

    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(10_000);
    expect(source.stats.connected).toBe(0);
    expect(source.stats.received).toBe(0);
    const records = out.text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const warnings = records.filter((r) => r.level === 40 && r.code === 'MQTT_CONNECT_ERROR');
    expect(warnings.some((r) => /bad user ?name or password|not authori[sz]ed/i.test(String(r.err)))).toBe(true);
    expect(warnings.some((r) => /starting anyway/.test(String(r.msg)))).toBe(true);
    expect(records.some((r) => r.msg === 'lakeside ready')).toBe(true);
    expect(records.some((r) => r.msg === 'mqtt connected')).toBe(false);
    expect(out.text).not.toContain(WRONG_PASSWORD);
    expect(out.text).not.toContain(PASSWORD);
    await rm(stateDir, { recursive: true, force: true });
  });
});
