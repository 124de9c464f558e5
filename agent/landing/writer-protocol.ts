/** Messages between the landing log (main thread) and its writer worker. */
import type { ActivityReport, IngestTally } from './ingest-tally.ts';
import type { LandingItem, LandingItemResult } from './types.ts';

export type WriterRequest =
  | { type: 'commit'; id: number; items: LandingItem[] }
  | { type: 'prune'; id: number; retentionUs: number }
  | { type: 'activity'; id: number }
  | { type: 'close'; id: number };

export type WriterReply =
  | { type: 'ready'; id: 0 }
  | { type: 'committed'; id: number; results: LandingItemResult[]; commitMs: number; tally: IngestTally }
  | { type: 'pruned'; id: number; removed: number }
  | { type: 'activity'; id: number; report: ActivityReport }
  | { type: 'closed'; id: number }
  | { type: 'failed'; id: number; code: string; retriable: boolean; message: string };
