/**
 * The seal/compaction thread: owns its own connection to the landing database and
 * runs one request at a time (the handler is synchronous, so requests cannot
 * overlap). A failure of one dataset is reported and does not stop the others.
 * Per-dataset settings (dataset-settings.ts) change between requests (`settings`),
 * never during a step; each step reads the dataset's values in force when it starts.
 * Loaded by `sealer.ts` as a Worker; Node ≥ 22.18 strips the types itself.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { deprioritizeThisThread } from '../thread-priority.ts';
import { resolveDataset } from '../../config/dataset.ts';
import { applyPragmas, ensureSchema } from '../landing/schema.ts';
import { compactDataset } from './compact.ts';
import { datasetHotOptions, type DatasetHotOptions, type DatasetHotSettings } from './dataset-settings.ts';
import { mergeDataset, RetiredFiles } from './merge.ts';
import { recoverHotTier, type RecoveryReport } from './recovery.ts';
import { awaitPurges } from './purge.ts';
import { sealDataset } from './seal.ts';
import type { CompactAllResult, SealAllResult, SealRequest, SealResponse, SealWorkerData } from './seal-protocol.ts';

const config = workerData as SealWorkerData;
const datasets = config.datasets.map(resolveDataset);
const db = new Database(config.dbPath);
applyPragmas(db);
ensureSchema(db, datasets);

let settings: Record<string, DatasetHotSettings> = config.datasetSettings;
const defaults: DatasetHotOptions = { compactionWindowMinutes: config.compactionWindowMinutes, l1MaxRows: config.l1MaxRows };
const hotOptions = (name: string): DatasetHotOptions => datasetHotOptions(db, name, settings[name], defaults);

function sealAll(): SealAllResult {
  const out: SealAllResult = { results: [], failures: [] };
  for (const dataset of datasets) {
    try {
      out.results.push(sealDataset(db, dataset, config.stateDir, { ...config, compactionWindowMinutes: settings[dataset.name]?.compactionWindowMinutes ?? config.compactionWindowMinutes }));
    } catch (error) {
      out.failures.push({ dataset: dataset.name, message: (error as Error).message });
    }
  }
  return out;
}

const retired = new RetiredFiles(config.stateDir, config.retiredUnlinkDelayMs);
// ≈ 1 s of merging per compaction step at most, so a seal waits at most that long behind it.
const MERGE_ROWS_PER_STEP = 1_000_000;
// The memory bound of a merge stays the configured one whatever a dataset's target size
// makes of its L1 row cap (a policy must not make merges decode more rows at once).
const mergeOptions = { ...config, retire: (paths: string[]) => retired.add(paths), mergeRowsPerStep: MERGE_ROWS_PER_STEP, mergeMaxRows: 2 * config.l1MaxRows };

/** Compaction, then the merges of closed hours and days (merge.ts), dataset by dataset. */
function compactAll(nowUs: number): CompactAllResult {
  const out: CompactAllResult = { results: [], merges: [], failures: [] };
  retired.unlinkDue();
  for (const dataset of datasets) {
    try {
      const own = hotOptions(dataset.name);
      const compacted = compactDataset(db, dataset, config.stateDir, { ...config, ...own }, nowUs);
      out.results.push(compacted);
      out.merges.push(mergeDataset(db, dataset, config.stateDir, { ...mergeOptions, ...own }, nowUs, new Set(compacted.added.map((f) => f.path))));
    } catch (error) {
      out.failures.push({ dataset: dataset.name, message: (error as Error).message });
    }
  }
  return out;
}

deprioritizeThisThread(); // reads first when the CPU is saturated (thread-priority.ts)
parentPort!.on('message', (request: SealRequest) => {
  let response: SealResponse;
  try {
    let result: RecoveryReport | SealAllResult | CompactAllResult | null;
    if (request.op === 'recover') result = recoverHotTier(db, config.stateDir);
    else if (request.op === 'seal') result = sealAll();
    else if (request.op === 'compact') result = compactAll(request.nowUs);
    else if (request.op === 'settings') {
      settings = request.datasets;
      result = null;
    }
    else {
      awaitPurges(); // leave no sealed row behind on a clean stop (recovery would purge it anyway)
      retired.unlinkAll(); // the query engine stops first: nothing reads them any more
      db.close();
      result = null;
    }
    response = { id: request.id, ok: true, result };
  } catch (error) {
    response = { id: request.id, ok: false, message: (error as Error).message, stack: (error as Error).stack };
  }
  parentPort!.postMessage(response);
});
