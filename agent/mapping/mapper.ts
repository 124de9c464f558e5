/**
 * Mapping: one raw message (an MQTT publish, a dropped file) becomes one row of its
 * dataset, or one quarantine entry saying why not. Nothing here throws at run time or
 * does I/O; configs are compiled once (`compile*`), before the source starts.
 *
 * Invariants:
 * - `row.values` is aligned with `dataset.columns`; values[0] is the event time in µs.
 *   Absent nullable columns are null; booleans stay booleans.
 * - The blob column is left null: the caller stores the payload (content-addressed)
 *   and writes its sha256 at `blobColumn`.
 * - Quarantine reason codes are stable (see `ReasonCode`); the reason text names the
 *   column, where its value came from, and the value (cut short).
 * - Event time outside [now - max_past_age, now + max_future_skew] is quarantined,
 *   "now" being the message's arrival time.
 */
import type { Dataset, DatasetColumn, RowValues } from '../../config/dataset.ts';
import type { FieldSource, FolderSourceConfig, MqttSourceConfig, TimeFormat } from '../../config/schema.ts';
import type { LandingRow, QuarantineEntry } from '../landing/types.ts';
import { INVALID, coercerFor, expectation, preview, type Coerced } from './coerce.ts';
import { compileJsonPath, type CompiledJsonPath } from './json-path.ts';
import { compilePathPattern, type CompiledPathPattern, type PathMatch } from './path-pattern.ts';
import { formatTimeUs } from './time.ts';
import { TopicRouter } from './topic-filter.ts';

export type ReasonCode =
  | 'payload_too_large'
  | 'invalid_utf8'
  | 'malformed_json'
  | 'not_an_object'
  | 'missing_field'
  | 'wrong_type'
  | 'bad_time'
  | 'time_out_of_bounds'
  | 'path_mismatch'
  | 'no_value';

/** Raw bytes kept of a payload refused for its size. */
export const QUARANTINE_PREFIX_BYTES = 4096;

export type MqttMapResult =
  | { kind: 'row'; row: LandingRow; blobColumn: number | null; contentType: string | null }
  | { kind: 'quarantine'; entry: QuarantineEntry }
  | { kind: 'unrouted' };

export type FolderMapResult = { kind: 'row'; row: LandingRow; blobColumn: number } | { kind: 'quarantine'; entry: QuarantineEntry };

export type Reader =
  | { kind: 'json'; path: CompiledJsonPath }
  | { kind: 'topic_level'; level: number }
  | { kind: 'path_field'; name: string }
  | { kind: 'const'; value: Coerced }
  | { kind: 'received_at' }
  | { kind: 'file_mtime' }
  | { kind: 'kafka'; part: 'key' | 'timestamp' | 'topic' | 'partition' | 'offset' }
  | { kind: 'kafka_header'; name: string };

/** What a Kafka record offers besides its value; decoded by the source. */
export interface KafkaRecordMeta {
  topic: string;
  partition: number;
  offset: number;
  /** The key as UTF-8 text; null when absent or not valid UTF-8. */
  key: string | null;
  /** Record timestamp in µs. */
  timestampUs: number;
  /** Header name → its first value as UTF-8 text. */
  headers: Record<string, string>;
}

export interface ColumnPlan {
  index: number;
  column: DatasetColumn;
  reader: Reader;
  format: TimeFormat | undefined;
  coerce: (raw: unknown) => Coerced;
  /** Where the value comes from, for reasons: `json value.x`, `topic level 3`. */
  origin: string;
}

export interface Refusal {
  code: ReasonCode;
  reason: string;
}

/** One dataset's compiled field sources (shared by MQTT routes and folders). */
export class RowPlan {
  readonly dataset: Dataset;
  readonly plans: ColumnPlan[];
  /** Index of the blob column filled from the payload, or null. */
  readonly blobColumn: number | null;
  /** The root kind JSON paths need: an object, an array, or either. */
  readonly jsonRoot: 'object' | 'array' | 'any' | null;

  constructor(dataset: Dataset, fields: Record<string, FieldSource>, where: string) {
    this.dataset = dataset;
    this.plans = [];
    let blob: number | null = null;
    const roots = new Set<boolean>();
    for (const [name, source] of Object.entries(fields)) {
      const index = dataset.columnIndex.get(name);
      if (index === undefined) throw new Error(`${where}: dataset ${dataset.name} has no column ${name}`);
      const column = dataset.columns[index]!;
      if (source.payload) {
        if (column.type !== 'blob') throw new Error(`${where}: payload can only fill a blob column`);
        blob = index;
        continue;
      }
      const reader = readerOf(source, column, where);
      if (reader.kind === 'json') roots.add(reader.path.rootIsArray);
      this.plans.push({ index, column, reader, format: source.format, coerce: coercerFor(column.type, source.format), origin: originOf(reader) });
    }
    if (!this.plans.some((p) => p.index === 0)) throw new Error(`${where}: the time column ${dataset.columns[0]!.name} needs a source`);
    for (const [index, column] of dataset.columns.entries()) {
      if (!column.nullable && index !== blob && !this.plans.some((p) => p.index === index)) {
        throw new Error(`${where}: non-nullable column ${column.name} needs a source`);
      }
    }
    this.blobColumn = blob;
    this.jsonRoot = roots.size === 0 ? null : roots.size === 2 ? 'any' : roots.has(true) ? 'array' : 'object';
  }

  /** Fills `values`; returns why the message does not fit, or null. */
  fill(
    values: RowValues,
    json: unknown,
    levels: readonly string[] | null,
    pathFields: Record<string, string> | null,
    receivedAtUs: number,
    fileMtimeUs: number,
    record: KafkaRecordMeta | null = null,
  ): Refusal | null {
    for (let i = 0; i < this.plans.length; i++) {
      const plan = this.plans[i]!;
      const reader = plan.reader;
      let raw: unknown;
      switch (reader.kind) {
        case 'json':
          raw = reader.path.get(json);
          break;
        case 'topic_level':
          raw = levels === null ? undefined : levels[reader.level];
          break;
        case 'path_field':
          raw = pathFields === null ? undefined : pathFields[reader.name];
          break;
        case 'const':
          values[plan.index] = reader.value as RowValues[number];
          continue;
        case 'received_at':
          values[plan.index] = receivedAtUs;
          continue;
        case 'file_mtime':
          values[plan.index] = fileMtimeUs;
          continue;
        case 'kafka':
          if (record === null) raw = undefined;
          else if (reader.part === 'timestamp') {
            values[plan.index] = record.timestampUs;
            continue;
          } else raw = record[reader.part];
          break;
        case 'kafka_header':
          raw = record === null ? undefined : record.headers[reader.name];
          break;
      }
      if (raw === undefined || raw === null) {
        if (plan.column.nullable) continue;
        return { code: 'missing_field', reason: `column "${plan.column.name}" (${plan.origin}): no value, and the column is not nullable` };
      }
      const value = plan.coerce(raw);
      if (value === INVALID) {
        const code = plan.column.type === 'timestamp' ? 'bad_time' : 'wrong_type';
        return { code, reason: `column "${plan.column.name}" (${plan.origin}): ${expectation(plan.column.type, plan.format, raw)}, got ${preview(raw)}` };
      }
      values[plan.index] = value;
    }
    const time = values[0] as number;
    const { maxFutureSkewUs, maxPastAgeUs } = this.dataset;
    if (time > receivedAtUs + maxFutureSkewUs || time < receivedAtUs - maxPastAgeUs) {
      const ahead = time > receivedAtUs;
      const limit = ahead ? `max_future_skew_seconds ${maxFutureSkewUs / 1e6}` : `max_past_age_hours ${maxPastAgeUs / 3.6e9}`;
      const by = humanDuration(Math.abs(time - receivedAtUs));
      return { code: 'time_out_of_bounds', reason: `event time ${formatTimeUs(time)} is ${by} ${ahead ? 'ahead of' : 'behind'} the agent clock (${limit})` };
    }
    return null;
  }

  newValues(): RowValues {
    return new Array<RowValues[number]>(this.dataset.columns.length).fill(null);
  }
}

function readerOf(source: FieldSource, column: DatasetColumn, where: string): Reader {
  if (source.json !== undefined) return { kind: 'json', path: compileJsonPath(source.json) };
  if (source.topic_level !== undefined) return { kind: 'topic_level', level: source.topic_level };
  if (source.path_field !== undefined) return { kind: 'path_field', name: source.path_field };
  if (source.received_at) return { kind: 'received_at' };
  if (source.file_mtime) return { kind: 'file_mtime' };
  if (source.kafka_key) return { kind: 'kafka', part: 'key' };
  if (source.kafka_timestamp) return { kind: 'kafka', part: 'timestamp' };
  if (source.kafka_topic) return { kind: 'kafka', part: 'topic' };
  if (source.kafka_partition) return { kind: 'kafka', part: 'partition' };
  if (source.kafka_offset) return { kind: 'kafka', part: 'offset' };
  if (source.kafka_header !== undefined) return { kind: 'kafka_header', name: source.kafka_header };
  if (source.const !== undefined) {
    const value = coercerFor(column.type, source.format)(source.const);
    if (value === INVALID) throw new Error(`${where}: const for column ${column.name}: ${expectation(column.type, source.format, source.const)}`);
    return { kind: 'const', value };
  }
  throw new Error(`${where}: column ${column.name} has no value source`);
}

function originOf(reader: Reader): string {
  switch (reader.kind) {
    case 'json':
      return `json ${reader.path.text}`;
    case 'topic_level':
      return `topic level ${reader.level}`;
    case 'path_field':
      return `path field {${reader.name}}`;
    case 'kafka':
      return `kafka ${reader.part}`;
    case 'kafka_header':
      return `kafka header ${reader.name}`;
    default:
      return reader.kind.replace('_', ' ');
  }
}

function humanDuration(us: number): string {
  const s = us / 1e6;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} days`;
}

export function datasetNamed(datasets: readonly Dataset[], name: string, where: string): Dataset {
  const dataset = datasets.find((d) => d.name === name);
  if (!dataset) throw new Error(`${where}: unknown dataset ${name}`);
  return dataset;
}

// Strips a BOM like JSON senders on Windows write; fatal: invalid UTF-8 is refused, not replaced.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a JSON payload whose root must be `root`; a refusal when it is not UTF-8, not JSON or the wrong kind. */
export function parseJsonPayload(payload: Uint8Array, root: 'object' | 'array' | 'any'): { json: unknown } | Refusal {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { code: 'invalid_utf8', reason: 'payload is not valid UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    return { code: 'malformed_json', reason: `payload is not JSON: ${message.length > 160 ? `${message.slice(0, 160)}…` : message}` };
  }
  const isArray = Array.isArray(json);
  if (json === null || typeof json !== 'object' || (root === 'object' && isArray) || (root === 'array' && !isArray)) {
    const wanted = root === 'array' ? 'a JSON array' : root === 'any' ? 'a JSON object or array' : 'a JSON object';
    return { code: 'not_an_object', reason: `expected ${wanted}, got ${preview(json)}` };
  }
  return { json };
}

// ---------------------------------------------------------------- MQTT

interface CompiledRoute {
  filter: string;
  binary: boolean;
  plan: RowPlan;
  usesLevels: boolean;
}


export class MqttMapper {
  readonly source: string;
  readonly routes: readonly CompiledRoute[];
  private readonly router: TopicRouter<CompiledRoute>;
  private readonly maxPayloadBytes: number;

  constructor(config: MqttSourceConfig, datasets: readonly Dataset[]) {
    this.source = config.name;
    this.maxPayloadBytes = config.max_payload_bytes;
    this.routes = config.routes.map((route, i) => {
      const where = `source ${config.name} route ${i} (${route.filter})`;
      const plan = new RowPlan(datasetNamed(datasets, route.dataset, where), route.fields, where);
      if (route.payload === 'binary' && plan.jsonRoot !== null) throw new Error(`${where}: a binary payload has no JSON fields`);
      const usesLevels = plan.plans.some((p) => p.reader.kind === 'topic_level');
      return { filter: route.filter, binary: route.payload === 'binary', plan, usesLevels };
    });
    this.router = new TopicRouter(this.routes.map((route) => ({ filter: route.filter, target: route })));
  }

  map(topic: string, payload: Uint8Array, receivedAtUs: number): MqttMapResult {
    const route = this.router.route(topic);
    if (route === undefined) return { kind: 'unrouted' };
    if (payload.byteLength > this.maxPayloadBytes) {
      return this.quarantine(route, topic, payload, receivedAtUs, 'payload_too_large', `payload of ${payload.byteLength} bytes is over max_payload_bytes (${this.maxPayloadBytes})`, QUARANTINE_PREFIX_BYTES);
    }
    let json: unknown = null;
    if (!route.binary && route.plan.jsonRoot !== null) {
      const parsed = parseJsonPayload(payload, route.plan.jsonRoot);
      if ('code' in parsed) return this.quarantine(route, topic, payload, receivedAtUs, parsed.code, parsed.reason);
      json = parsed.json;
    }
    const values = route.plan.newValues();
    const levels = route.usesLevels ? topic.split('/') : null;
    const refusal = route.plan.fill(values, json, levels, null, receivedAtUs, 0);
    if (refusal) return this.quarantine(route, topic, payload, receivedAtUs, refusal.code, refusal.reason);
    return {
      kind: 'row',
      row: { dataset: route.plan.dataset.name, values },
      blobColumn: route.plan.blobColumn,
      contentType: route.plan.blobColumn === null ? null : sniffContentType(payload),
    };
  }

  private quarantine(route: CompiledRoute, topic: string, payload: Uint8Array, receivedAtUs: number, code: ReasonCode, reason: string, keep = payload.byteLength): MqttMapResult {
    return {
      kind: 'quarantine',
      entry: {
        source: this.source,
        coordinates: JSON.stringify({ topic }),
        dataset: route.plan.dataset.name,
        reasonCode: code,
        reason,
        // A copy: the caller's buffer may be a view into a much larger one.
        payload: payload.slice(0, keep),
        payloadBytes: payload.byteLength,
        receivedAtUs,
      },
    };
  }
}

/** Image types the plant's cameras send; anything else stays unlabelled. */
export function sniffContentType(bytes: Uint8Array): string | null {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  return null;
}

export function compileMqttRoutes(config: MqttSourceConfig, datasets: readonly Dataset[]): MqttMapper {
  return new MqttMapper(config, datasets);
}

// ---------------------------------------------------------------- folders

export class FolderMapper {
  readonly source: string;
  readonly dataset: Dataset;
  /** The blob column the caller fills with the file's sha256. */
  readonly blobColumn: number;
  private readonly plan: RowPlan;
  private readonly pattern: CompiledPathPattern;

  constructor(config: FolderSourceConfig, datasets: readonly Dataset[]) {
    const where = `folder source ${config.name}`;
    this.source = config.name;
    this.dataset = datasetNamed(datasets, config.dataset, where);
    this.plan = new RowPlan(this.dataset, config.fields, where);
    if (this.plan.blobColumn === null) throw new Error(`${where}: the dataset needs a blob column filled from the payload (payload: true)`);
    if (this.plan.jsonRoot !== null || this.plan.plans.some((p) => p.reader.kind === 'topic_level')) {
      throw new Error(`${where}: folder fields come from path_field, const, received_at, file_mtime or payload`);
    }
    this.blobColumn = this.plan.blobColumn;
    this.pattern = compilePathPattern(config.path_pattern);
    for (const plan of this.plan.plans) {
      if (plan.reader.kind === 'path_field' && !this.pattern.names.includes(plan.reader.name)) {
        throw new Error(`${where}: path_pattern has no {${plan.reader.name}}`);
      }
    }
  }

  /** The path pattern's fields of a `/`-separated path relative to the folder. */
  match(relativePath: string): PathMatch {
    return this.pattern.match(relativePath);
  }

  map(relativePath: string, receivedAtUs: number, fileMtimeUs: number): FolderMapResult {
    const quarantine = (code: ReasonCode, reason: string): FolderMapResult => ({
      kind: 'quarantine',
      entry: {
        source: this.source,
        coordinates: JSON.stringify({ path: relativePath }),
        dataset: this.dataset.name,
        reasonCode: code,
        reason: `${relativePath}: ${reason}`,
        // The file itself is stored as a blob by the caller; the entry does not copy it.
        payload: new Uint8Array(0),
        payloadBytes: 0,
        receivedAtUs,
      },
    });
    const matched = this.pattern.match(relativePath);
    if (!matched.ok) return quarantine(matched.reasonCode, matched.reason);
    const values = this.plan.newValues();
    const refusal = this.plan.fill(values, null, null, matched.fields, receivedAtUs, fileMtimeUs);
    if (refusal) return quarantine(refusal.code, refusal.reason);
    return { kind: 'row', row: { dataset: this.dataset.name, values }, blobColumn: this.blobColumn };
  }
}

export function compileFolderMapping(config: FolderSourceConfig, datasets: readonly Dataset[]): FolderMapper {
  return new FolderMapper(config, datasets);
}
