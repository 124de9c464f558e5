import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText, redactConfig } from '../../../config/loader.ts';

const SECRET = 'kafka-Secret-99';

/** A valid config with one Kafka source; `patch` edits the YAML to make one mistake. */
function configText(patch: (text: string) => string = (t) => t): string {
  return patch(`plant: ulm
datasets:
  - name: events
    time_column: ts
    columns:
      - { name: machine, type: string, nullable: false }
      - { name: state, type: string }
      - { name: part, type: int }
  - name: frames
    time_column: ts
    columns:
      - { name: image, type: blob, nullable: false }
sources:
  kafka:
    - name: plant_kafka
      brokers: [kafka-1:9093, kafka-2:9093]
      group_id: lakeside-ulm
      tls: { ca_file: tls/ca.pem }
      sasl:
        mechanism: scram-sha-512
        username: lakeside
        password: \${env:KAFKA_PASSWORD}
      routes:
        - topic: machine.events
          dataset: events
          fields:
            ts: { kafka_timestamp: true }
            machine: { kafka_key: true }
            state: { json: state }
            part: { kafka_partition: true }
        - topic: frames
          dataset: frames
          payload: binary
          fields:
            ts: { received_at: true }
            image: { payload: true }
`);
}

function issuesOf(text: string, env: Record<string, string> = { KAFKA_PASSWORD: SECRET }): { path: string; message: string }[] {
  try {
    parseConfigText(text, '/etc/lakeside/test.yaml', { env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('expected a ConfigError');
}

describe('Kafka source config', () => {
  it('loads with defaults, the secret resolved and redacted, TLS paths made absolute', () => {
    const { config } = parseConfigText(configText(), '/etc/lakeside/test.yaml', { env: { KAFKA_PASSWORD: SECRET } });
    const kafka = config.sources.kafka[0]!;
    expect(kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'lakeside', password: SECRET });
    expect(kafka.tls!.ca_file).toBe('/etc/lakeside/tls/ca.pem');
    expect(kafka).toMatchObject({ client_id: 'lakeside', from_beginning: true, partitions_consumed_concurrently: 8, session_timeout_ms: 30_000 });
    expect(JSON.stringify(redactConfig(config))).not.toContain(SECRET);
  });

  it('names the field of each mistake', () => {
    const cases: [string, (t: string) => string, { path: string; message: string }][] = [
      ['broker without a port', (t) => t.replace('kafka-2:9093', 'kafka-2'), { path: 'sources.kafka[0].brokers[1]', message: 'expected host:port' }],
      ['missing group_id', (t) => t.replace('      group_id: lakeside-ulm\n', ''), { path: 'sources.kafka[0].group_id', message: expect.stringContaining('') as unknown as string }],
      ['inline password', (t) => t.replace('${env:KAFKA_PASSWORD}', 'hunter2'), { path: 'sources.kafka[0].sasl.password', message: 'secrets must be a reference, ${env:NAME} or ${file:/path}, never written inline' }],
      ['unknown mechanism', (t) => t.replace('scram-sha-512', 'plain'), { path: 'sources.kafka[0].sasl.mechanism', message: expect.stringContaining('scram-sha-256') as unknown as string }],
      ['oauthbearer without a token', (t) => t.replace('mechanism: scram-sha-512', 'mechanism: oauthbearer'), { path: 'sources.kafka[0].sasl.token', message: 'oauthbearer needs a token (${env:NAME} or ${file:/path})' }],
      ['SCRAM without a password', (t) => t.replace('        password: ${env:KAFKA_PASSWORD}\n', ''), { path: 'sources.kafka[0].sasl.password', message: 'scram-sha-512 needs a password (${env:NAME} or ${file:/path})' }],
      ['bad topic name', (t) => t.replace('topic: machine.events', 'topic: machine/events'), { path: 'sources.kafka[0].routes[0].topic', message: expect.stringContaining('Kafka topic name') as unknown as string }],
      ['kafka_timestamp into a string column', (t) => t.replace('state: { json: state }', 'state: { kafka_timestamp: true }'), { path: 'sources.kafka[0].routes[0].fields.state', message: 'received_at, file_mtime and kafka_timestamp fill time columns only' }],
      ['kafka_key into the time column without a format', (t) => t.replace('ts: { kafka_timestamp: true }', 'ts: { kafka_key: true }'), { path: 'sources.kafka[0].routes[0].fields.ts', message: expect.stringContaining('needs a format') as unknown as string }],
      ['topic_level on Kafka', (t) => t.replace('state: { json: state }', 'state: { topic_level: 1 }'), { path: 'sources.kafka[0].routes[0].fields.state', message: expect.stringContaining('Kafka fields come from') as unknown as string }],
      ['blob without payload: binary', (t) => t.replace('          payload: binary\n', ''), { path: 'sources.kafka[0].routes[1].payload', message: 'a route that stores the value as a blob needs payload: binary' }],
      ['heartbeat above the session timeout', (t) => t.replace('      group_id: lakeside-ulm\n', '      group_id: lakeside-ulm\n      heartbeat_interval_ms: 40000\n'), { path: 'sources.kafka[0].heartbeat_interval_ms', message: 'must be below session_timeout_ms' }],
      ['two routes for one topic', (t) => t.replace('topic: frames', 'topic: machine.events'), { path: 'sources.kafka[0].routes[1].topic', message: 'topic "machine.events" has two routes' }],
      ['unknown key', (t) => t.replace('      group_id: lakeside-ulm\n', '      group_id: lakeside-ulm\n      auto_commit: true\n'), { path: 'sources.kafka[0].auto_commit', message: 'unknown key' }],
    ];
    for (const [what, patch, expected] of cases) {
      const issues = issuesOf(configText(patch));
      expect(issues, what).toContainEqual(expected.message === '' ? { path: expected.path, message: expect.any(String) } : expected);
    }
  });

  it('names the environment variable of a missing secret, never a value', () => {
    const issues = issuesOf(configText(), {});
    expect(issues).toEqual([{ path: 'sources.kafka[0].sasl.password', message: 'environment variable KAFKA_PASSWORD is not set' }]);
  });

  it('Kafka field sources are refused on MQTT routes and folders', () => {
    const text = configText((t) =>
      t.replace(
        'sources:\n',
        `sources:
  mqtt:
    - name: broker
      url: mqtt://127.0.0.1:1883
      client_id: x
      routes:
        - filter: a/+
          dataset: events
          fields:
            ts: { received_at: true }
            machine: { kafka_key: true }
`,
      ),
    );
    expect(issuesOf(text)).toContainEqual({ path: 'sources.mqtt[0].routes[0].fields.machine', message: 'MQTT fields come from topic_level, json, const, received_at or payload' });
  });
});
