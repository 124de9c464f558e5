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
}

export interface LandingItemResult {
  inserted: number;
  /** Rows dropped because their dedupe key had already landed. */
  duplicates: number;
  /** True when the item's source key had already landed (nothing was written). */
  sourceDuplicate: boolean;
  quarantined: number;
}
