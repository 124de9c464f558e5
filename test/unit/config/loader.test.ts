import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText, redactConfig } from '../../../config/loader.ts';

const SECRET = 's3cr3t-Value-42';

/** A small valid config; `patch` edits the YAML text to make one mistake. */
function configText(patch: (text: string) => string = (t) => t): string {
  return patch(`plant: ulm
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: value, type: double }
    dedupe_key: [line, ts]
sources:
  mqtt:
    - name: broker
      url: mqtt://127.0.0.1:1883
      client_id: lakeside
      password: \${env:MQTT_PASSWORD}
      routes:
        - filter: plant/+/line/+/sensor/+
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 3 }
            value: { json: value }
`);
}

function issuesOf(text: string, env: Record<string, string> = { MQTT_PASSWORD: SECRET }): ConfigError {
  try {
    parseConfigText(text, '/etc/lakeside/test.yaml', { env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfigText', () => {
  it('loads a valid config with defaults, agent id and resolved secret', () => {
    const loaded = parseConfigText(configText(), '/etc/lakeside/test.yaml', { env: { MQTT_PASSWORD: SECRET } });
    expect(loaded.config.agent_id).toBe('ulm');
    expect(loaded.config.state_dir).toBe('/var/lib/lakeside');
    expect(loaded.config.sources.mqtt[0]!.password).toBe(SECRET);
    expect(loaded.config.sources.mqtt[0]!.connections).toBe(4);
    expect(loaded.datasets.map((d) => d.name)).toEqual(['readings']);
    expect(loaded.datasets[0]!.columns.map((c) => c.name)).toEqual(['ts', 'line', 'value']);
    expect(loaded.warnings).toEqual([]);
  });

  it('resolves a relative state_dir against the config file directory', () => {
    const loaded = parseConfigText(configText((t) => `state_dir: ./var/lakeside\n${t}`), '/opt/plant/lakeside.yaml', {
      env: { MQTT_PASSWORD: SECRET },
    });
    expect(loaded.config.state_dir).toBe('/opt/plant/var/lakeside');
  });

  it('resolves relative file: policy and status locations, and checks the policy store keys', () => {
    const policy = `policy:\n  url: file:centre/policy.yaml\n  trusted_keys: [{ id: k1, public_key: abc }]\n  status: { url: file:reports }\n  store: { region: eu-central-1 }\n`;
    const loaded = parseConfigText(configText((t) => `${policy}${t}`), '/opt/plant/lakeside.yaml', { env: { MQTT_PASSWORD: SECRET } });
    expect(loaded.config.policy?.url).toBe('file:///opt/plant/centre/policy.yaml');
    expect(loaded.config.policy?.status?.url).toBe('file:///opt/plant/reports');
    expect(loaded.config.policy?.store?.region).toBe('eu-central-1');
    const error = issuesOf(configText((t) => `${policy.replace('region: eu-central-1', 'url: s3://x')}${t}`));
    expect(error.message).toMatch(/policy\.store\.url: unknown key/);
  });

  it('names a bad URL by its path', () => {
    const error = issuesOf(configText((t) => t.replace('mqtt://127.0.0.1:1883', 'http://broker')));
    expect(error.issues).toEqual([{ path: 'sources.mqtt[0].url', message: 'expected an mqtt:// or mqtts:// URL', line: 12 }]);
    expect(error.message).toContain('sources.mqtt[0].url: expected an mqtt:// or mqtts:// URL');
  });

  it('names an unknown key', () => {
    const error = issuesOf(configText((t) => t.replace('client_id: lakeside', 'client_id: lakeside\n      keep_alive: 30')));
    expect(error.issues).toEqual([{ path: 'sources.mqtt[0].keep_alive', message: 'unknown key', line: 14 }]);
  });

  it('names an unknown dataset in a route', () => {
    const error = issuesOf(configText((t) => t.replace('dataset: readings', 'dataset: readingz')));
    expect(error.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(['sources.mqtt[0].routes[0].dataset: unknown dataset "readingz"']);
  });

  it('names an unknown column in dedupe_key', () => {
    const error = issuesOf(configText((t) => t.replace('dedupe_key: [line, ts]', 'dedupe_key: [line, sensor]')));
    expect(error.issues.map((i) => `${i.path}: ${i.message}`)).toEqual(['datasets[0].dedupe_key[1]: unknown column "sensor"']);
  });

  it('rejects an inline password without echoing it', () => {
    const error = issuesOf(configText((t) => t.replace('${env:MQTT_PASSWORD}', SECRET)));
    expect(error.issues[0]!.path).toBe('sources.mqtt[0].password');
    expect(error.issues[0]!.message).toMatch(/never written inline/);
    expect(error.message).not.toContain(SECRET);
  });

  it('names the variable and the path of a missing env secret, never a value', () => {
    const error = issuesOf(configText(), {});
    expect(error.issues).toEqual([{ path: 'sources.mqtt[0].password', message: 'environment variable MQTT_PASSWORD is not set', line: 14 }]);
  });

  it('reports YAML syntax errors with line and column', () => {
    const error = issuesOf(configText((t) => t.replace('plant: ulm', `plant: ulm\nbroken: [1, 2\n  password: "${SECRET}`)));
    expect(error.issues.length).toBeGreaterThan(0);
    expect(error.issues[0]!.path).toMatch(/^line \d+:\d+$/);
    expect(error.message).toMatch(/YAML syntax error/);
    expect(error.message).not.toContain(SECRET);
  });

  it('makes type errors read well', () => {
    const error = issuesOf(configText((t) => t.replace('nullable: false }', 'nullable: 3 }')));
    expect(error.issues).toEqual([{ path: 'datasets[0].columns[0].nullable', message: 'expected true or false, got a number', line: 6 }]);
    const missing = issuesOf(configText((t) => t.replace('plant: ulm\n', '')));
    expect(missing.issues[0]).toMatchObject({ path: 'plant', message: 'is required' });
    const wrongEnum = issuesOf(configText((t) => t.replace('type: double', 'type: float')));
    expect(wrongEnum.issues[0]!.message).toMatch(/^expected one of "string", "int", .*got "float"$/);
  });

  it('lists several problems at once', () => {
    const error = issuesOf(
      configText((t) => t.replace('mqtt://127.0.0.1:1883', 'broker:1883').replace('client_id: lakeside', 'client_id: ""\n      colour: red')),
    );
    expect(error.issues.map((i) => i.path)).toEqual(['sources.mqtt[0].url', 'sources.mqtt[0].client_id', 'sources.mqtt[0].colour']);
    expect(error.issues[1]!.message).toBe('must not be empty');
  });
});

describe('file secrets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lakeside-secret-'));

  it('reads the file, trims the trailing newline, warns when others can read it', () => {
    const file = join(dir, 'pw');
    writeFileSync(file, `${SECRET}\n`);
    chmodSync(file, 0o640);
    const loaded = parseConfigText(configText((t) => t.replace('${env:MQTT_PASSWORD}', `\${file:${file}}`)), join(dir, 'c.yaml'));
    expect(loaded.config.sources.mqtt[0]!.password).toBe(SECRET);
    expect(loaded.warnings).toEqual([`sources.mqtt[0].password: secret file ${file} is readable by group or others (mode 640); chmod 600 it`]);
    chmodSync(file, 0o600);
    expect(parseConfigText(configText((t) => t.replace('${env:MQTT_PASSWORD}', `\${file:${file}}`)), join(dir, 'c.yaml')).warnings).toEqual([]);
  });

  it('names the path of an unreadable file', () => {
    const error = (() => {
      try {
        parseConfigText(configText((t) => t.replace('${env:MQTT_PASSWORD}', '${file:/nonexistent/pw}')), join(dir, 'c.yaml'));
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(error.issues[0]).toMatchObject({ path: 'sources.mqtt[0].password', message: 'cannot read secret file /nonexistent/pw (ENOENT)' });
  });
});

describe('redaction', () => {
  it('keeps resolved secrets out of JSON, toString, inspect and redactConfig', () => {
    const { config } = parseConfigText(configText(), '/etc/lakeside/test.yaml', { env: { MQTT_PASSWORD: SECRET } });
    expect(config.sources.mqtt[0]!.password).toBe(SECRET);
    expect(JSON.stringify(config)).not.toContain(SECRET);
    expect(JSON.stringify(config.sources)).not.toContain(SECRET);
    expect(JSON.stringify(config.sources.mqtt[0])).not.toContain(SECRET);
    expect(String(config)).not.toContain(SECRET);
    expect(inspect(config, { depth: 10 })).not.toContain(SECRET);
    const redacted = redactConfig(config);
    expect(redacted.sources.mqtt[0]!.password).toBe('<redacted>');
    expect(redacted.sources.mqtt[0]!.url).toBe('mqtt://127.0.0.1:1883');
    expect(config.sources.mqtt[0]!.password).toBe(SECRET);
  });
});

describe('schema checks the mapper relies on', () => {
  it.each([
    [(t: string) => t.replace('filter: plant/+/line/+/sensor/+', 'filter: plant/#/sensor'), 'sources.mqtt[0].routes[0].filter: # is only allowed as the last level'],
    [(t: string) => t.replace('{ json: ts, format: epoch_ms }', '{ json: ts }'), 'sources.mqtt[0].routes[0].fields.ts: a time column read from the message needs a format (epoch_s, epoch_ms, epoch_us or iso8601)'],
    [(t: string) => t.replace('value: { json: value }', 'value: { json: "value..x" }'), 'sources.mqtt[0].routes[0].fields.value.json: expected a JSON path like reading.value or defects[0].label'],
    [(t: string) => t.replace('value: { json: value }', 'value: { const: "high" }'), 'sources.mqtt[0].routes[0].fields.value.const: a double column needs a numeric const'],
    [(t: string) => t.replace('line: { topic_level: 3 }', 'line: { path_field: line }'), 'sources.mqtt[0].routes[0].fields.line: MQTT fields come from topic_level, json, const, received_at or payload'],
    [(t: string) => t.replace('protocol_version', 'x').replace('client_id: lakeside', 'client_id: lakeside\n      protocol_version: 3'), 'sources.mqtt[0].protocol_version: expected one of 5, 4, got 3'],
  ])('%#', (patch, expected) => {
    const error = issuesOf(configText(patch));
    expect(error.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([expected]);
  });

  it('checks folder sources: path pattern placeholders and a blob column', () => {
    const folder = (pattern: string, datasetColumns: string, image = '        image: { payload: true }\n') =>
      configText((t) =>
        t
          .replace('    dedupe_key: [line, ts]', `    dedupe_key: [line, ts]\n  - name: frames\n    time_column: ts\n    columns:\n${datasetColumns}`)
          .concat(`  folders:\n    - name: drop\n      path: ./drop\n      dataset: frames\n      path_pattern: "${pattern}"\n      fields:\n        ts: { file_mtime: true }\n        line: { path_field: line }\n${image}`),
      );
    const withBlob = '      - { name: line, type: string }\n      - { name: image, type: blob }\n';
    const loaded = parseConfigText(folder('{line}/{file}', withBlob), '/opt/c.yaml', { env: { MQTT_PASSWORD: SECRET } });
    expect(loaded.config.sources.folders[0]!.path).toBe('/opt/drop');
    expect(issuesOf(folder('{line}/{line}', withBlob)).issues.map((i) => i.message)).toContain('placeholder {line} appears twice');
    expect(issuesOf(folder('{camera}/{file}', withBlob)).issues.map((i) => i.message)).toContain('path_pattern has no {line}');
    expect(issuesOf(folder('{line}/{file}', '      - { name: line, type: string }\n')).issues.map((i) => i.message)).toContain('dataset "frames" has no blob column to hold the files');
    expect(issuesOf(folder('{line}/{file}', withBlob, '')).issues.map((i) => i.message)).toContain('the file goes into the blob column: add image: { payload: true }');
  });
});
