/** What sources hand to the landing log, and what they get back once it is durable. */
import type { RowValues } from '../../config/dataset.ts';

export interface LandingRow {
  dataset: string;
  values: RowValues;
}

export interface QuarantineEntry {
  source: string;
  /** JSON of where the message came from: topic, file path, partition/offset. */
  coordinates: string;
  dataset: string | null;
  /** Stable code, e.g. `malformed_json`, `wrong_type`, `payload_too_large`. */
  reasonCode: string;
  reason: string;
  /** Raw bytes (capped by the caller). */
  payload: Uint8Array;
  payloadBytes: number;
  receivedAtUs: number;
}

export interface BlobRef {
  sha256: string;
  sizeBytes: number;
  contentType: string | null;
}

/** One source unit (an MQTT message, a file, a Kafka record): all of it lands in one commit or none of it. */
export interface LandingItem {
  rows: LandingRow[];
  quarantine: QuarantineEntry[];
  /** Blobs already durable on disk that the rows reference. */
  blobs: BlobRef[];
  /** Exactly-once intake: the item is skipped whole if this key already landed. */
  sourceKey?: { source: string; key: string };
  /** The source's name, for per-source metrics (ingest-tally.ts). */
  source?: string;
  /**
   * Exactly-once intake for ordered streams (a Kafka partition): the item is skipped
   * whole if `offset` is below the stream's landed watermark, else it lands and the
   * watermark becomes `offset + 1`, in the same transaction. One row per stream, so the
   * state stays small at any rate (unlike one source key per record).
   */
  sourceOffset?: SourceOffset;
}

export interface SourceOffset {
  source: string;
  /** e.g. `<topic>/<partition>`. */
  stream: string;
  offset: number;
  /**
   * The stream's end when the item was read (Kafka: the partition's high watermark in
   * the fetch response), if the source knows it. A stream's end never goes down, so a
   * landed watermark above it means the stream was recreated (a Kafka topic deleted and
   * created again under its name, its offsets restarting at 0): the writer then lowers
   * the watermark to this item's offset, in the item's transaction, instead of skipping
   * the new stream's records as already landed.
   */
  logEnd?: number;
}

export interface LandingItemResult {
  inserted: number;
  /** Rows dropped because their dedupe key had already landed. */
  duplicates: number;
  /** True when the item's source key had already landed (nothing was written). */
  sourceDuplicate: boolean;
  quarantined: number;
  /**
   * Set when this item found its stream's landed watermark above the stream's end
   * (`SourceOffset.logEnd`): the watermark it lowered (to the item's offset).
   */
  offsetLoweredFrom?: number;
}
