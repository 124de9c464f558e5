/**
 * The config the MQTT benchmarks run lakeside with: one `readings` dataset (line and
 * sensor from the topic, seq and value from 100-byte JSON, dedupe on seq) fed from
 * `plant/bench/line/<line>/sensor/<sensor>`, the API on a free port, logs at warn.
 * BENCH_EXTRA_CONFIG is appended at the top level (e.g. a `hot:` section).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ReadingsConfigOptions {
  brokerUrl: string;
  clientId: string;
  /** Shared-subscription connections; the config default when left out. */
  connections?: number;
  /** Adds `stream_key: [line, sensor]` (latest values and windows per sensor). */
  streamKey?: boolean;
}

export function writeReadingsConfig(dir: string, options: ReadingsConfigOptions): string {
  const path = join(dir, 'lakeside.yaml');
  writeFileSync(
    path,
    `plant: bench
api: { listen_port: 0 }
state_dir: ${join(dir, 'state')}
log_level: warn
${process.env.BENCH_EXTRA_CONFIG ?? ''}
datasets:
  - name: readings
    time_column: ts
    columns:
      - { name: line, type: string, nullable: false }
      - { name: sensor, type: string, nullable: false }
      - { name: seq, type: long, nullable: false }
      - { name: value, type: double }
    dedupe_key: [seq]
${options.streamKey ? '    stream_key: [line, sensor]\n' : ''}    partition_by: [line]
sources:
  mqtt:
    - name: bench_broker
      url: ${options.brokerUrl}
      client_id: ${options.clientId}
${options.connections ? `      connections: ${options.connections}\n` : ''}      share_group: bench
      routes:
        - filter: plant/bench/line/+/sensor/+
          dataset: readings
          fields:
            ts: { json: ts, format: epoch_ms }
            line: { topic_level: 3 }
            sensor: { topic_level: 5 }
            seq: { json: seq }
            value: { json: value }
`,
  );
  return path;
}
