/**
 * Messages between the daemon's main thread (agent/on-site-reads.ts) and the reads
 * worker (reads-worker.ts). Everything the API needs from the main thread crosses as
 * one of these small messages; committed rows do not: they come from the landing
 * writer on their own port (landed-batch.ts).
 */
import type { MessagePort } from 'node:worker_threads';
import type { LakesideConfig } from '../../config/schema.ts';
import type { HealthStatus } from '../api/ports.ts';

export interface ReadsWorkerData {
  /** The loaded config (secrets resolved: token values are needed to check requests). */
  config: LakesideConfig & { agent_id: string };
  dbPath: string;
  blobsDir: string;
  /** The main logger's level: the worker only forwards lines the main logger would write. */
  logLevel: string;
  /** Port to listen on: api.listen_port at first, the port actually bound on a restart (the URL stays the same). */
  listenPort: number;
  /** Receives LandedBatch messages from the landing writer. */
  landed: MessagePort;
  /** Routes served here but answered by the main thread (metrics and status live there). */
  bridged: Record<BridgedPort, boolean>;
}

/** API ports whose data lives on the main thread: the worker asks with 'port-call'. */
export type BridgedPort = 'metrics' | 'status' | 'blob' | 'warm';

export type ToReadsWorker =
  | { type: 'health'; health: HealthStatus; ready: HealthStatus }
  /** The sealer registered or removed hot-tier files: refresh the SQL views. */
  | { type: 'files-changed'; added: number; removed: number }
  | { type: 'stop' }
  /** Refresh the SQL views from the registry now and answer 'refreshed' (before tiering unlinks evicted files). */
  | { type: 'refresh'; id: number }
  | { type: 'port-reply'; id: number; ok: true; value: unknown }
  | { type: 'port-reply'; id: number; ok: false; error: SerializedError }
  /** Honoured only with the `reads.crash` failpoint armed (crash tests): an uncaught error in the worker. */
  | { type: 'crash' };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export type FromReadsWorker =
  | { type: 'listening'; url: string; port: number }
  | { type: 'start-failed'; error: SerializedError }
  /** One pino JSON line, for the main logger. */
  | { type: 'log'; line: string }
  /**
   * `arg`: the sha256 for 'blob' (an evicted blob fetched back; answered with its local
   * path or null); for 'warm', a JSON `{ fromUs, toUs, dataset? }` (the evicted data files
   * of that range fetched into the read cache; answered once they are there).
   */
  | { type: 'port-call'; id: number; port: BridgedPort; arg?: string }
  /** `error`: the views could not be refreshed (tiering must not unlink then). */
  | { type: 'refreshed'; id: number; error?: string }
  | { type: 'stopped' };
