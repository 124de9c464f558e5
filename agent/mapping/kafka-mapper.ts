/**
 * Kafka mapping: one record (its value, key, headers, timestamp and coordinates)
 * becomes one row of its route's dataset, or one quarantine entry saying why not.
 * Routes are by exact topic. Same rules as the MQTT mapper (mapper.ts): no throwing at
 * run time, no I/O, the blob column left for the caller to fill.
 *
 * A record with no value (a tombstone) is quarantined with `no_value`. Quarantine
 * coordinates are `{ topic, partition, offset }`, so an operator can find the record.
 */
import type { Dataset } from '../../config/dataset.ts';
import type { KafkaSourceConfig } from '../../config/schema.ts';
import type { LandingRow, QuarantineEntry } from '../landing/types.ts';
import { QUARANTINE_PREFIX_BYTES, RowPlan, datasetNamed, parseJsonPayload, sniffContentType, type KafkaRecordMeta, type ReasonCode } from './mapper.ts';

export type KafkaMapResult =
  | { kind: 'row'; row: LandingRow; blobColumn: number | null; contentType: string | null }
  | { kind: 'quarantine'; entry: QuarantineEntry }
  | { kind: 'unrouted' };

interface KafkaRoute {
  topic: string;
  binary: boolean;
  plan: RowPlan;
}

export class KafkaMapper {
  readonly source: string;
  readonly topics: readonly string[];
  /** Whether any route reads record keys or headers (the source decodes them only then). */
  readonly reads: { key: boolean; headers: boolean };
  private readonly routes = new Map<string, KafkaRoute>();
  private readonly maxPayloadBytes: number;

  constructor(config: KafkaSourceConfig, datasets: readonly Dataset[]) {
    this.source = config.name;
    this.maxPayloadBytes = config.max_payload_bytes;
    config.routes.forEach((route, i) => {
      const where = `kafka source ${config.name} route ${i} (${route.topic})`;
      const plan = new RowPlan(datasetNamed(datasets, route.dataset, where), route.fields, where);
      if (route.payload === 'binary' && plan.jsonRoot !== null) throw new Error(`${where}: a binary payload has no JSON fields`);
      if (plan.plans.some((p) => p.reader.kind === 'topic_level' || p.reader.kind === 'path_field' || p.reader.kind === 'file_mtime')) {
        throw new Error(`${where}: Kafka fields come from json, kafka_*, const, received_at or payload`);
      }
      this.routes.set(route.topic, { topic: route.topic, binary: route.payload === 'binary', plan });
    });
    this.topics = [...this.routes.keys()];
    const readers = [...this.routes.values()].flatMap((route) => route.plan.plans.map((p) => p.reader));
    this.reads = {
      key: readers.some((r) => r.kind === 'kafka' && r.part === 'key'),
      headers: readers.some((r) => r.kind === 'kafka_header'),
    };
  }

  map(record: KafkaRecordMeta, value: Uint8Array | null, receivedAtUs: number): KafkaMapResult {
    const route = this.routes.get(record.topic);
    if (route === undefined) return { kind: 'unrouted' };
    const bytes = value ?? new Uint8Array(0);
    if (value === null) return this.quarantine(route, record, bytes, receivedAtUs, 'no_value', 'the record has no value (a tombstone)');
    if (value.byteLength > this.maxPayloadBytes) {
      return this.quarantine(route, record, value, receivedAtUs, 'payload_too_large', `value of ${value.byteLength} bytes is over max_payload_bytes (${this.maxPayloadBytes})`, QUARANTINE_PREFIX_BYTES);
    }
    let json: unknown = null;
    if (!route.binary && route.plan.jsonRoot !== null) {
      const parsed = parseJsonPayload(value, route.plan.jsonRoot);
      if ('code' in parsed) return this.quarantine(route, record, value, receivedAtUs, parsed.code, parsed.reason);
      json = parsed.json;
    }
    const values = route.plan.newValues();
    const refusal = route.plan.fill(values, json, null, null, receivedAtUs, 0, record);
    if (refusal) return this.quarantine(route, record, value, receivedAtUs, refusal.code, refusal.reason);
    return {
      kind: 'row',
      row: { dataset: route.plan.dataset.name, values },
      blobColumn: route.plan.blobColumn,
      contentType: route.plan.blobColumn === null ? null : sniffContentType(value),
    };
  }

  private quarantine(route: KafkaRoute, record: KafkaRecordMeta, value: Uint8Array, receivedAtUs: number, code: ReasonCode, reason: string, keep = value.byteLength): KafkaMapResult {
    return {
      kind: 'quarantine',
      entry: {
        source: this.source,
        coordinates: JSON.stringify({ topic: record.topic, partition: record.partition, offset: record.offset }),
        dataset: route.plan.dataset.name,
        reasonCode: code,
        reason,
        payload: value.slice(0, keep),
        payloadBytes: value.byteLength,
        receivedAtUs,
      },
    };
  }
}

export function compileKafkaRoutes(config: KafkaSourceConfig, datasets: readonly Dataset[]): KafkaMapper {
  return new KafkaMapper(config, datasets);
}
