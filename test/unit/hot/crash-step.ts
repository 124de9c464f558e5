/**
 * Child process for the crash tests: runs one seal or compaction step on a state
 * dir and kills itself with SIGKILL between publishing the files and committing them.
 *   node crash-step.ts <stateDir> seal|compact <nowUs>
 * `merge` runs one merge step (merge.ts) of the dataset named by argv[5] (default
 * the sensors dataset) and stops at the failpoint armed in LAKESIDE_FAILPOINTS,
 * frozen until the test kills it.
 *   node crash-step.ts <stateDir> merge <nowUs> [metrics]
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { resolveDataset } from '../../../config/dataset.ts';
import { applyPragmas } from '../../../agent/landing/schema.ts';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { mergeDataset } from '../../../agent/hot/merge.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { compactOptions, sealOptions, sensorsConfig } from './fixture.ts';
import { metricsConfig } from './rollup-fixture.ts';

const [stateDir, step, now, name] = process.argv.slice(2) as [string, string, string, string | undefined];
const db = new Database(join(stateDir, 'landing.db'));
applyPragmas(db);
const dataset = resolveDataset(name === 'metrics' ? metricsConfig : sensorsConfig);
const die = (): void => {
  process.kill(process.pid, 'SIGKILL');
};
if (step === 'seal') sealDataset(db, dataset, stateDir, { ...sealOptions, sealMaxRows: 7, beforeCommit: (() => { let n = 0; return () => { if (++n === 2) die(); }; })() });
else if (step === 'merge') mergeDataset(db, dataset, stateDir, compactOptions, Number(now));
else compactDataset(db, dataset, stateDir, { ...compactOptions, beforeCommit: die }, Number(now));
console.log('not killed');
