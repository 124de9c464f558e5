/**
 * Reads the footer of a Parquet file (Thrift compact protocol) without any reader
 * library, for two things parquet-wasm does not hand back from `writeParquet`: the
 * compressed size of each column chunk (Iceberg `column_sizes`) and the schema
 * elements themselves, so tests can prove the Iceberg `field_id`s are really in the
 * Parquet schema and not only in the embedded Arrow schema.
 *
 * A Parquet file ends with: footer (FileMetaData), 4-byte LE footer length, "PAR1".
 * Only the fields used here are decoded by name; everything else is skipped.
 */

export interface ParquetSchemaElement {
  name: string;
  /** Physical type (0 BOOLEAN, 1 INT32, 2 INT64, 4 FLOAT, 5 DOUBLE, 6 BYTE_ARRAY, …); absent for groups. */
  type: number | null;
  /** 0 REQUIRED, 1 OPTIONAL, 2 REPEATED. */
  repetition: number | null;
  numChildren: number | null;
  fieldId: number | null;
  convertedType: number | null;
  /** The logical type union: which member is set (e.g. `STRING`, `TIMESTAMP`) and its fields. */
  logicalType: { kind: string; isAdjustedToUTC?: boolean; unit?: string } | null;
}

export interface ParquetColumnChunk {
  path: string[];
  numValues: number;
  uncompressedSize: number;
  compressedSize: number;
}

export interface ParquetFooter {
  numRows: number;
  schema: ParquetSchemaElement[];
  /** `startOffset`: where the row group's first column chunk starts (dictionary page, else first data page): Iceberg's split offset. */
  rowGroups: { numRows: number; startOffset: number; columns: ParquetColumnChunk[] }[];
  keyValue: Map<string, string>;
}

type Thrift = Map<number, unknown>;

class CompactReader {
  pos = 0;
  private readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) throw new Error('parquet footer: truncated');
    return this.bytes[this.pos++] as number;
  }

  private varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  }

  private zigzag(): number {
    const n = this.varint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }

  private value(type: number): unknown {
    switch (type) {
      case 1:
        return true;
      case 2:
        return false;
      case 3:
        return this.byte();
      case 4:
      case 5:
      case 6:
        return this.zigzag();
      case 7: {
        const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 8);
        this.pos += 8;
        return view.getFloat64(0, true);
      }
      case 8: {
        const length = this.varint();
        const out = this.bytes.subarray(this.pos, this.pos + length);
        this.pos += length;
        return out;
      }
      case 9:
      case 10: {
        const header = this.byte();
        let size = header >> 4;
        if (size === 15) size = this.varint();
        const elementType = header & 0x0f;
        const list: unknown[] = [];
        for (let i = 0; i < size; i++) list.push(elementType === 1 || elementType === 2 ? this.byte() === 1 : this.value(elementType));
        return list;
      }
      case 11: {
        const size = this.varint();
        const map = new Map<unknown, unknown>();
        if (size === 0) return map;
        const kinds = this.byte();
        for (let i = 0; i < size; i++) map.set(this.value(kinds >> 4), this.value(kinds & 0x0f));
        return map;
      }
      case 12:
        return this.struct();
      default:
        throw new Error(`parquet footer: unknown thrift type ${type}`);
    }
  }

  struct(): Thrift {
    const fields: Thrift = new Map();
    let lastId = 0;
    for (;;) {
      const header = this.byte();
      if (header === 0) return fields;
      const delta = header >> 4;
      const id = delta === 0 ? this.zigzag() : lastId + delta;
      fields.set(id, this.value(header & 0x0f));
      lastId = id;
    }
  }
}

const utf8 = new TextDecoder();
const text = (v: unknown): string => (v instanceof Uint8Array ? utf8.decode(v) : '');
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

const LOGICAL_KINDS: Record<number, string> = {
  1: 'STRING', 2: 'MAP', 3: 'LIST', 4: 'ENUM', 5: 'DECIMAL', 6: 'DATE', 7: 'TIME', 8: 'TIMESTAMP',
  10: 'INTEGER', 11: 'UNKNOWN', 12: 'JSON', 13: 'BSON', 14: 'UUID', 15: 'FLOAT16',
};
const TIME_UNITS: Record<number, string> = { 1: 'MILLIS', 2: 'MICROS', 3: 'NANOS' };

function logicalType(v: unknown): ParquetSchemaElement['logicalType'] {
  if (!(v instanceof Map)) return null;
  const [[kindId, body]] = [...(v as Thrift).entries()] as [[number, unknown]];
  const kind = LOGICAL_KINDS[kindId] ?? `#${kindId}`;
  if (kind === 'TIMESTAMP' && body instanceof Map) {
    const unit = body.get(2);
    const unitId = unit instanceof Map ? ([...unit.keys()][0] as number) : 0;
    return { kind, isAdjustedToUTC: body.get(1) === true, unit: TIME_UNITS[unitId] ?? '?' };
  }
  return { kind };
}

/** A column chunk's first byte: its dictionary page if it has one, else its first data page. */
function chunkStart(chunk: Thrift | undefined): number {
  const m = chunk?.get(3);
  if (!(m instanceof Map)) return 0;
  const data = num(m.get(9)) ?? 0;
  const dictionary = num(m.get(11));
  return dictionary !== null && dictionary > 0 && dictionary < data ? dictionary : data;
}

export function readParquetFooter(bytes: Uint8Array): ParquetFooter {
  const n = bytes.length;
  const magic = utf8.decode(bytes.subarray(n - 4));
  if (magic !== 'PAR1') throw new Error('not a Parquet file (no PAR1 trailer)');
  const length = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 4).getUint32(0, true);
  const meta = new CompactReader(bytes.subarray(n - 8 - length, n - 8)).struct();
  const schema = ((meta.get(2) as Thrift[] | undefined) ?? []).map(
    (e): ParquetSchemaElement => ({
      name: text(e.get(4)),
      type: num(e.get(1)),
      repetition: num(e.get(3)),
      numChildren: num(e.get(5)),
      convertedType: num(e.get(6)),
      fieldId: num(e.get(9)),
      logicalType: logicalType(e.get(10)),
    }),
  );
  const rowGroups = ((meta.get(4) as Thrift[] | undefined) ?? []).map((g) => ({
    numRows: num(g.get(3)) ?? 0,
    startOffset: chunkStart(((g.get(1) as Thrift[] | undefined) ?? [])[0]),
    columns: ((g.get(1) as Thrift[] | undefined) ?? []).map((chunk): ParquetColumnChunk => {
      const m = (chunk.get(3) as Thrift | undefined) ?? new Map();
      return {
        path: ((m.get(3) as unknown[] | undefined) ?? []).map(text),
        numValues: num(m.get(5)) ?? 0,
        uncompressedSize: num(m.get(6)) ?? 0,
        compressedSize: num(m.get(7)) ?? 0,
      };
    }),
  }));
  const keyValue = new Map<string, string>();
  for (const kv of (meta.get(5) as Thrift[] | undefined) ?? []) keyValue.set(text(kv.get(1)), text(kv.get(2)));
  return { numRows: num(meta.get(3)) ?? 0, schema, rowGroups, keyValue };
}
