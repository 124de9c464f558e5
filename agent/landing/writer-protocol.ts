/** Messages between the landing log (main thread) and its writer worker. */
import type { ActivityReport, IngestTally } from './ingest-tally.ts';
import type { MessagePort } from 'node:worker_threads';
import type { CommitWire, LoweredOffsets } from './commit-wire.ts';
import type { HeldBatch, HoldSpan } from './source-holds.ts';

export type WriterRequest =
  /** The items of one transaction, encoded (commit-wire.ts), their buffers transferred. */
  /** `holds`: item ranges landed held (source-holds.ts), in item order. */
  | { type: 'commit'; id: number; batch: CommitWire; holds?: HoldSpan[] }
  /** The stream's holds whose batches end at or before `nextOffset` are committed at the source. */
  | { type: 'holds-release'; id: number; source: string; stream: string; nextOffset: number }
  | { type: 'holds-list'; id: number; source?: string }
  /** Kept holds go; dropped holds take their rows with them and lower their stream's watermark. */
  | { type: 'holds-settle'; id: number; keep: string[]; drop: string[] }
  | { type: 'prune'; id: number; retentionUs: number }
  | { type: 'activity'; id: number }
  /** From now on, every commit's new rows go to `port` (agent/reads/landed-batch.ts); replaces an earlier port. */
  | { type: 'attach-landed'; id: number; port: MessagePort }
  | { type: 'close'; id: number };

export type WriterReply =
  | { type: 'ready'; id: 0 }
  /** `landedError`: the commit is durable, but its rows could not be handed to the reads worker. */
  /** `results`: one per item, packed (commit-wire.ts encodeResults), its buffer transferred. */
  /** `lowered`: the items that lowered their stream's watermark (a recreated stream), with the old watermark. */
  | { type: 'committed'; id: number; results: Int32Array; lowered?: LoweredOffsets; commitMs: number; tally: IngestTally; landedError?: string }
  | { type: 'pruned'; id: number; removed: number }
  | { type: 'holds-released'; id: number; released: number }
  | { type: 'holds'; id: number; holds: HeldBatch[] }
  | { type: 'holds-settled'; id: number; rowsDropped: number; quarantineDropped: number }
  | { type: 'activity'; id: number; report: ActivityReport }
  | { type: 'attached'; id: number }
  | { type: 'closed'; id: number }
  | { type: 'failed'; id: number; code: string; retriable: boolean; message: string };
