import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkConfigFile } from '../../../config/check.ts';
import { loadConfigFile, parseConfigText } from '../../../config/loader.ts';

const examples = resolve(dirname(fileURLToPath(import.meta.url)), '../../../config/examples');

describe('example configs', () => {
  it('local.yaml loads without any secret', async () => {
    const { config, datasets, warnings } = await loadConfigFile(join(examples, 'local.yaml'), { env: {} });
    expect(config.sources.mqtt[0]!.url).toBe('mqtt://127.0.0.1:1883');
    expect(config.state_dir).toBe(join(examples, 'var/lakeside'));
    expect(config.sources.folders[0]!.path).toBe(join(examples, 'var/drop'));
    expect(datasets.map((d) => d.name)).toEqual(['sensor_readings', 'inspections', 'camera_frames']);
    expect(warnings).toEqual([]);
  });

  it('plant.yaml loads once its password files exist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lakeside-plant-'));
    const secretFile = join(dir, 'mqtt-password');
    writeFileSync(secretFile, 'pw-from-file\n');
    chmodSync(secretFile, 0o600);
    const kafkaSecret = join(dir, 'kafka-password');
    writeFileSync(kafkaSecret, 'kafka-pw\n');
    chmodSync(kafkaSecret, 0o600);
    const text = readFileSync(join(examples, 'plant.yaml'), 'utf8');
    expect(text).toContain('${file:/etc/lakeside/credentials/mqtt-password}');
    expect(text).toContain('${file:/etc/lakeside/credentials/kafka-password}');
    const { config, datasets, warnings } = parseConfigText(
      text.replace('/etc/lakeside/credentials/mqtt-password', secretFile).replace('/etc/lakeside/credentials/kafka-password', kafkaSecret),
      join(examples, 'plant.yaml'),
    );
    expect(config.sources.mqtt[0]!.password).toBe('pw-from-file');
    const kafka = config.sources.kafka[0]!;
    expect(kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'lakeside', password: 'kafka-pw' });
    expect(kafka.routes.map((r) => r.topic)).toEqual(['ulm.machine-events', 'ulm.thermal-snapshots']);
    expect(config.sources.mqtt[0]!.url.startsWith('mqtts://')).toBe(true);
    expect(datasets.find((d) => d.name === 'inspections')!.dedupeKey).toEqual([1, 2]);
    expect(datasets.find((d) => d.name === 'camera_frames')!.blobColumn).toBe(4);
    expect(warnings).toEqual([]);
  });

  it('config check summarises a good file and lists the problems of a bad one', async () => {
    const good = await checkConfigFile(join(examples, 'local.yaml'));
    expect(good.ok).toBe(true);
    expect(good.lines).toContain('  sensor_readings: 5 columns (time ts), dedupe on line, sensor, ts, partitioned by line');
    expect(good.lines).toContain('    plant/demo/line/+/sensor/+ -> sensor_readings');

    const dir = mkdtempSync(join(tmpdir(), 'lakeside-check-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(join(examples, 'local.yaml'), 'utf8').replace('mqtt://127.0.0.1:1883', 'localhost').replace('log_level: debug', 'log_level: chatty'));
    const result = await checkConfigFile(bad);
    expect(result.ok).toBe(false);
    expect(result.lines.slice(1)).toEqual([
      'log_level: expected one of "fatal", "error", "warn", "info", "debug", "trace", got "chatty" (line 9)',
      'sources.mqtt[0].url: expected an mqtt:// or mqtts:// URL (line 49)',
    ]);
  });
});
