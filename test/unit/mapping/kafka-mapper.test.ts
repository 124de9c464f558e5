import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../config/loader.ts';
import { compileKafkaRoutes } from '../../../agent/mapping/kafka-mapper.ts';
import type { KafkaRecordMeta } from '../../../agent/mapping/mapper.ts';
import { recordMeta } from '../../../agent/sources/kafka-source.ts';

const NOW_US = 1_732_190_000_000_000;
const NOW_MS = NOW_US / 1000;

const { config, datasets } = parseConfigText(
  `
plant: ulm
datasets:
  - name: machine_events
    time_column: ts
    columns:
      - { name: machine, type: string, nullable: false }
      - { name: line, type: string }
      - { name: shift, type: int }
      - { name: state, type: string, nullable: false }
      - { name: produced_at, type: timestamp }
      - { name: topic, type: string }
      - { name: part, type: int }
      - { name: off, type: long }
  - name: snapshots
    time_column: ts
    columns:
      - { name: camera, type: string }
      - { name: image, type: blob, nullable: false }
sources:
  kafka:
    - name: plant_kafka
      brokers: [127.0.0.1:9092]
      group_id: g
      max_payload_bytes: 1000
      routes:
        - topic: machine.events
          dataset: machine_events
          fields:
            ts: { json: ts, format: epoch_ms }
            machine: { kafka_key: true }
            line: { kafka_header: line }
            shift: { kafka_header: shift }
            state: { json: state }
            produced_at: { kafka_timestamp: true }
            topic: { kafka_topic: true }
            part: { kafka_partition: true }
            off: { kafka_offset: true }
        - topic: thermal
          dataset: snapshots
          payload: binary
          fields:
            ts: { kafka_timestamp: true }
            camera: { kafka_key: true }
            image: { payload: true }
`,
  'kafka.yaml',
);
const mapper = compileKafkaRoutes(config.sources.kafka[0]!, datasets);

function meta(over: Partial<KafkaRecordMeta> = {}): KafkaRecordMeta {
  return { topic: 'machine.events', partition: 3, offset: 1042, key: 'press-7', timestampUs: (NOW_MS - 5) * 1000, headers: { line: 'l2', shift: '2' }, ...over };
}

describe('Kafka mapping', () => {
  it('maps key, headers, timestamp and coordinates to columns', () => {
    const out = mapper.map(meta(), Buffer.from(JSON.stringify({ ts: NOW_MS - 10, state: 'running' })), NOW_US);
    expect(out.kind).toBe('row');
    if (out.kind !== 'row') return;
    expect(out.row.dataset).toBe('machine_events');
    expect(out.row.values).toEqual([(NOW_MS - 10) * 1000, 'press-7', 'l2', 2, 'running', (NOW_MS - 5) * 1000, 'machine.events', 3, 1042]);
    expect(out.blobColumn).toBeNull();
  });

  it('absent key and header give nulls in nullable columns, and refuse a non-nullable one', () => {
    const noHeader = mapper.map(meta({ headers: {} }), Buffer.from(JSON.stringify({ ts: NOW_MS, state: 'idle' })), NOW_US);
    expect(noHeader.kind === 'row' && noHeader.row.values.slice(2, 4)).toEqual([null, null]);
    const noKey = mapper.map(meta({ key: null }), Buffer.from(JSON.stringify({ ts: NOW_MS, state: 'idle' })), NOW_US);
    expect(noKey).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'missing_field', reason: expect.stringContaining('column "machine" (kafka key)') } });
  });

  it('a header of the wrong type is quarantined with the header named', () => {
    const out = mapper.map(meta({ headers: { line: 'l2', shift: 'late' } }), Buffer.from(JSON.stringify({ ts: NOW_MS, state: 'x' })), NOW_US);
    expect(out).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'wrong_type', reason: expect.stringContaining('column "shift" (kafka header shift)') } });
  });

  it('poison values are quarantined with their coordinates and raw bytes', () => {
    const bad = mapper.map(meta(), Buffer.from('{"ts": 1, "state": '), NOW_US);
    expect(bad).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'malformed_json', source: 'plant_kafka', dataset: 'machine_events' } });
    if (bad.kind !== 'quarantine') return;
    expect(JSON.parse(bad.entry.coordinates)).toEqual({ topic: 'machine.events', partition: 3, offset: 1042 });
    expect(Buffer.from(bad.entry.payload).toString()).toBe('{"ts": 1, "state": ');
    expect(mapper.map(meta(), null, NOW_US)).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'no_value' } });
    const big = mapper.map(meta(), Buffer.alloc(5000, 0x20), NOW_US);
    expect(big).toMatchObject({ kind: 'quarantine', entry: { reasonCode: 'payload_too_large', payloadBytes: 5000 } });
  });

  it('a raw binary value leaves the blob column to the caller, sniffing its type', () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const out = mapper.map(meta({ topic: 'thermal', key: 'oven-1' }), png, NOW_US);
    expect(out).toMatchObject({ kind: 'row', blobColumn: 2, contentType: 'image/png' });
    expect(out.kind === 'row' && out.row.values).toEqual([(NOW_MS - 5) * 1000, 'oven-1', null]);
  });

  it('a topic without a route is unrouted', () => {
    expect(mapper.map(meta({ topic: 'other' }), Buffer.from('{}'), NOW_US)).toEqual({ kind: 'unrouted' });
  });

  it('recordMeta decodes a kafkajs message: UTF-8 key, first header value, ms timestamp, numeric offset', () => {
    const m = recordMeta('t', 1, {
      key: Buffer.from('k1'),
      value: Buffer.from('{}'),
      timestamp: '1732190000123',
      attributes: 0,
      offset: '77',
      headers: { line: Buffer.from('l1'), multi: [Buffer.from('a'), Buffer.from('b')], bin: Buffer.from([0xff, 0xfe]) },
    });
    expect(m).toEqual({ topic: 't', partition: 1, offset: 77, key: 'k1', timestampUs: 1_732_190_000_123_000, headers: { line: 'l1', multi: 'a' } });
    expect(recordMeta('t', 0, { key: null, value: null, timestamp: '0', attributes: 0, offset: '0', headers: {} }).key).toBeNull();
  });
});
