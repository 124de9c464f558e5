/**
 * Avro object container files (the format of Iceberg manifests and manifest lists),
 * encoded and decoded in memory with avsc's types.
 *
 * Invariants:
 * - Every Avro `long` is a `bigint`, read and written exactly over the whole int64
 *   range: snapshot ids written by other engines are random 63-bit numbers, and a JS
 *   number would silently change them.
 * - The header carries the schema exactly as given (with Iceberg's `field-id`,
 *   `element-id` and `logicalType: map` attributes, which avsc's own schema export
 *   drops), then the caller's metadata in the caller's key order.
 * - Output is a pure function of (schema, metadata, records): codec `null`, one data
 *   block, and a sync marker derived from a hash of everything else. Iceberg files are
 *   written write-once-or-verify-same-bytes, so a retry must produce the same bytes.
 * - Reading uses the writer schema found in the file (other engines add fields) and
 *   accepts the codecs `null`, `deflate` and `zstandard`.
 *
 * The container framing (magic, header, blocks ending in the sync marker) is done
 * here rather than with avsc's stream encoder, which takes its sync marker from a
 * random generator by default and cannot write a schema with custom attributes.
 */
import { createHash } from 'node:crypto';
import { inflateRawSync, zstdDecompressSync } from 'node:zlib';
import avro from 'avsc';

/** int64 as bigint: avsc hands over / takes the 8 little-endian two's-complement bytes. */
const bigintLong = avro.types.LongType.__with(
  {
    fromBuffer: (buf: Buffer) => buf.readBigInt64LE(0),
    toBuffer: (n: bigint) => {
      const buf = Buffer.alloc(8);
      buf.writeBigInt64LE(n);
      return buf;
    },
    fromJSON: (v: unknown) => BigInt(v as string | number | bigint),
    toJSON: (n: bigint) => n.toString(),
    isValid: (v: unknown) => typeof v === 'bigint' && v >= -(2n ** 63n) && v < 2n ** 63n,
    compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
  },
  false,
);

export type AvroSchema = Record<string, unknown>;

/** An optional Avro type as Iceberg writes it: a union with null first (default null). */
export const optional = (type: unknown): unknown[] => ['null', type];

/** An avsc type for a schema whose longs are bigints. */
export function avroType(schema: AvroSchema): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, { registry: { long: bigintLong } });
}

const MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]); // "Obj" 1
const metaType = avro.Type.forSchema({ type: 'map', values: 'bytes' });
/** Block counts and sizes: avsc's own long, for numbers (they are small). */
const plainLong = avro.Type.forSchema('long');

export interface AvroFile {
  schema: AvroSchema;
  /** Header metadata other than `avro.schema` / `avro.codec`, as text. */
  metadata: Map<string, string>;
  records: unknown[];
}

/** avsc's own message names no field; this one names the first wrong one. */
function checkRecord(type: avro.Type, record: unknown): void {
  let problem: string | null = null;
  type.isValid(record, {
    errorHook: (path: string[], value: unknown, expected: avro.Type) => {
      problem ??= `${path.join('.')} = ${typeof value === 'bigint' ? `${value}n` : JSON.stringify(value)} is not a valid ${JSON.stringify(expected.schema())}`;
    },
  });
  if (problem !== null) throw new Error(`avro: ${problem}`);
}

export function encodeAvroFile(schema: AvroSchema, metadata: Record<string, string>, records: unknown[]): Buffer {
  const type = avroType(schema);
  const meta: Record<string, Buffer> = { 'avro.schema': Buffer.from(JSON.stringify(schema)), 'avro.codec': Buffer.from('null') };
  for (const [key, value] of Object.entries(metadata)) meta[key] = Buffer.from(value);
  const metaBytes = metaType.toBuffer(meta);
  for (const record of records) checkRecord(type, record);
  const body = Buffer.concat(records.map((record) => type.toBuffer(record)));
  const sync = createHash('sha256').update(metaBytes).update(body).digest().subarray(0, 16);
  const parts = [MAGIC, metaBytes, sync];
  if (records.length > 0) parts.push(plainLong.toBuffer(records.length), plainLong.toBuffer(body.length), body, sync);
  return Buffer.concat(parts);
}

function decompress(codec: string, block: Buffer): Buffer {
  switch (codec) {
    case 'null':
      return block;
    case 'deflate':
      return inflateRawSync(block);
    case 'zstandard':
      return zstdDecompressSync(block);
    default:
      throw new Error(`avro: unsupported codec ${codec}`);
  }
}

export function decodeAvroFile(bytes: Uint8Array): AvroFile {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 4 || !buf.subarray(0, 4).equals(MAGIC)) throw new Error('not an Avro container file (bad magic)');
  const header = metaType.decode(buf, 4);
  if (header.offset < 0) throw new Error('avro: truncated header');
  const meta = header.value as Record<string, Buffer>;
  const schemaText = meta['avro.schema']?.toString('utf8');
  if (schemaText === undefined) throw new Error('avro: no avro.schema in the header');
  const schema = JSON.parse(schemaText) as AvroSchema;
  const codec = meta['avro.codec']?.toString('utf8') ?? 'null';
  const type = avroType(schema);
  let pos = header.offset;
  const sync = buf.subarray(pos, pos + 16);
  pos += 16;
  const records: unknown[] = [];
  while (pos < buf.length) {
    const count = plainLong.decode(buf, pos);
    const size = plainLong.decode(buf, count.offset);
    if (count.offset < 0 || size.offset < 0) throw new Error('avro: truncated block header');
    const start = size.offset;
    const end = start + (size.value as number);
    if (end + 16 > buf.length) throw new Error('avro: truncated block');
    if (!buf.subarray(end, end + 16).equals(sync)) throw new Error('avro: block does not end in the sync marker');
    const block = decompress(codec, buf.subarray(start, end));
    let at = 0;
    for (let i = 0; i < (count.value as number); i++) {
      const record = type.decode(block, at);
      if (record.offset < 0) throw new Error('avro: truncated record');
      records.push(record.value);
      at = record.offset;
    }
    pos = end + 16;
  }
  const metadata = new Map<string, string>();
  for (const [key, value] of Object.entries(meta)) if (!key.startsWith('avro.')) metadata.set(key, value.toString('utf8'));
  return { schema, metadata, records };
}
