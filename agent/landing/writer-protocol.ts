/** Messages between the landing log (main thread) and its writer worker. */
import type { ActivityReport, IngestTally } from './ingest-tally.ts';
import type { MessagePort } from 'node:worker_threads';
import type { CommitWire, LoweredOffsets } from './commit-wire.ts';

export type WriterRequest =
  /** The items of one transaction, encoded (commit-wire.ts), their buffers transferred. */
  | { type: 'commit'; id: number; batch: CommitWire }
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
  | { type: 'activity'; id: number; report: ActivityReport }
  | { type: 'attached'; id: number }
  | { type: 'closed'; id: number }
  | { type: 'failed'; id: number; code: string; retriable: boolean; message: string };
