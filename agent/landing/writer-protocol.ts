/** Messages between the landing log (main thread) and its writer worker. */
import type { LandingItem, LandingItemResult } from './types.ts';

export type WriterRequest =
  | { type: 'commit'; id: number; items: LandingItem[] }
  | { type: 'prune'; id: number; retentionUs: number }
  | { type: 'close'; id: number };

export type WriterReply =
  | { type: 'ready'; id: 0 }
  | { type: 'committed'; id: number; results: LandingItemResult[]; commitMs: number }
  | { type: 'pruned'; id: number; removed: number }
  | { type: 'closed'; id: number }
  | { type: 'failed'; id: number; code: string; retriable: boolean; message: string };
