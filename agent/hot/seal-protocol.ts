/**
 * Messages between `Sealer` (main thread) and `seal-worker.ts`. Plain structured-
 * cloneable data only: datasets travel as their config and are resolved in the worker.
 */
import type { DatasetConfig } from '../../config/schema.ts';
import type { CompactResult } from './compact.ts';
import type { DatasetHotSettings } from './dataset-settings.ts';
import type { MergeResult } from './merge.ts';
import type { RecoveryReport } from './recovery.ts';
import type { SealResult } from './seal.ts';

export interface SealWorkerData {
  dbPath: string;
  stateDir: string;
  datasets: DatasetConfig[];
  compactionWindowMinutes: number;
  compactionGraceSeconds: number;
  rowGroupRows: number;
  sealMaxRows: number;
  l1MaxRows: number;
  /** Per-dataset settings in force when the worker starts (a respawn keeps them); absent: the defaults above. */
  datasetSettings: Record<string, DatasetHotSettings>;
  /** How long merge inputs stay on disk after they were unregistered (running queries). */
  retiredUnlinkDelayMs: number;
}

export type SealRequest =
  | { id: number; op: 'recover' }
  | { id: number; op: 'seal' }
  | { id: number; op: 'compact'; nowUs: number }
  /** Replaces the per-dataset settings (a dataset not named: the defaults) from the next step on. */
  | { id: number; op: 'settings'; datasets: Record<string, DatasetHotSettings> }
  | { id: number; op: 'close' };

export interface DatasetFailure {
  dataset: string;
  message: string;
}

export interface SealAllResult {
  results: SealResult[];
  failures: DatasetFailure[];
}

export interface CompactAllResult {
  results: CompactResult[];
  /** The merges that ran in the same step, after compaction (merge.ts). */
  merges: MergeResult[];
  failures: DatasetFailure[];
}

export type SealResponse =
  | { id: number; ok: true; result: RecoveryReport | SealAllResult | CompactAllResult | null }
  | { id: number; ok: false; message: string; stack?: string };
