import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../../config/loader.ts';

const BASE = `plant: ulm
datasets:
  - name: inspections
    time_column: ts
    columns:
      - { name: line, type: string }
  - name: frames
    time_column: ts
    columns:
      - { name: image, type: blob }
`;

function load(tiering: string, env: Record<string, string> = {}) {
  return parseConfigText(`${BASE}tiering:\n${tiering}`, '/etc/lakeside/lakeside.yaml', { env });
}

function issues(tiering: string): string[] {
  try {
    load(tiering);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}

describe('tiering config', () => {
  it('has defaults: 72 h hot, 90 days warm, watermarks 85/95, no cap, nothing uploaded without warm', () => {
    const { config } = parseConfigText(BASE, '/etc/lakeside/lakeside.yaml', { env: {} });
    expect(config.tiering).toMatchObject({
      hot_retention_hours: 72,
      warm_retention_days: 90,
      disk_budget: { high_watermark_percent: 85, critical_watermark_percent: 95 },
      max_attempts: 8,
      blobs: { priority: 0, upload_windows: [], overflow: 'keep' },
    });
    expect(config.tiering.warm).toBeUndefined();
    expect(config.tiering.bandwidth_bytes_per_second).toBeUndefined();
  });

  it('loads stores, policies and resolves a relative file: store against the config directory', () => {
    const { config } = load(
      `  warm: { url: "file:warm" }
  cold: { url: "s3://plant-archive/ulm", endpoint: "http://127.0.0.1:9000", force_path_style: true, storage_class: GLACIER_IR,
          credentials: { access_key_id: "\${env:AK}", secret_access_key: "\${env:SK}" } }
  bandwidth_bytes_per_second: 2000000
  datasets:
    inspections: { priority: 10 }
    frames: { priority: -5, upload_windows: ["* 22-23,0-5 * * *"], overflow: drop_oldest }
`,
      { AK: 'AKIDEXAMPLE', SK: 'secret-key-value' },
    );
    expect(config.tiering.warm!.url).toBe('file:///etc/lakeside/warm');
    expect(config.tiering.cold!.credentials!.secret_access_key).toBe('secret-key-value');
    expect(JSON.stringify(config)).not.toContain('secret-key-value');
    expect(config.tiering.datasets.frames!.upload_windows).toEqual(['* 22-23,0-5 * * *']);
  });

  it('names the field of every mistake', () => {
    expect(
      issues(`  warm: { url: "http://bucket" }
  cold: { url: "file:///x", storage_class: GLACIER }
  disk_budget: { high_watermark_percent: 96 }
  datasets:
    frames: { upload_windows: ["at night"], overflow: delete }
`),
    ).toEqual([
      'tiering.warm.url: expected file:///absolute/dir, file:relative/dir or s3://bucket[/prefix]',
      'tiering.cold.storage_class: applies to s3:// stores only',
      'tiering.disk_budget.high_watermark_percent: must be below critical_watermark_percent',
      'tiering.datasets.frames.upload_windows[0]: expected a 5-field cron expression (minute hour day month weekday)',
      expect.stringMatching(/^tiering\.datasets\.frames\.overflow: /),
    ]);
    expect(issues(`  datasets:\n    inspectionz: { priority: 1 }\n`)).toEqual(['tiering.datasets.inspectionz: unknown dataset "inspectionz"']);
  });

  it('refuses inline keys and a bad cron field', () => {
    const found = issues(`  warm: { url: "s3://b-1/p", credentials: { access_key_id: AKIDEXAMPLE, secret_access_key: "\${env:SK}" } }
  blobs: { upload_windows: ["* 25 * * *"] }
`);
    expect(found[0]).toMatch(/^tiering\.warm\.credentials\.access_key_id: secrets must be a reference/);
    expect(found[1]).toMatch(/^tiering\.blobs\.upload_windows\[0\]: not a valid cron expression/);
    expect(found.join('\n')).not.toContain('AKIDEXAMPLE');
  });
});
