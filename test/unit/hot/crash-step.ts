/**
 * Child process for the crash tests: runs one seal or compaction step on a state
 * dir and kills itself with SIGKILL between publishing the files and committing them.
 *   node crash-step.ts <stateDir> seal|compact <nowUs>
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { resolveDataset } from '../../../config/dataset.ts';
import { applyPragmas } from '../../../agent/landing/schema.ts';
import { compactDataset } from '../../../agent/hot/compact.ts';
import { sealDataset } from '../../../agent/hot/seal.ts';
import { compactOptions, sealOptions, sensorsConfig } from './fixture.ts';

const [stateDir, step, now] = process.argv.slice(2) as [string, string, string];
const db = new Database(join(stateDir, 'landing.db'));
applyPragmas(db);
const dataset = resolveDataset(sensorsConfig);
const die = (): void => {
  process.kill(process.pid, 'SIGKILL');
};
if (step === 'seal') sealDataset(db, dataset, stateDir, { ...sealOptions, sealMaxRows: 7, beforeCommit: (() => { let n = 0; return () => { if (++n === 2) die(); }; })() });
else compactDataset(db, dataset, stateDir, { ...compactOptions, beforeCommit: die }, Number(now));
console.log('not killed');
