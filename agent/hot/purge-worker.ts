/**
 * The background purge thread (see purge.ts): one request at a time, each on a
 * connection of its own, opened and closed per request, so databases of finished
 * tests or closed agents are never held open.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { applyPragmas } from '../landing/schema.ts';
import { purgeSealed, type PurgeRequest } from './purge.ts';

const { finished, errors } = workerData as { finished: Int32Array; errors: MessagePort };

parentPort!.on('message', (request: PurgeRequest) => {
  try {
    // A database removed since the request (a closed test fixture) has nothing left to purge.
    if (!existsSync(request.dbPath)) return;
    const db = new Database(request.dbPath, { fileMustExist: true });
    try {
      applyPragmas(db);
      db.pragma('synchronous = NORMAL');
      purgeSealed(db, request.dataset);
    } finally {
      db.close();
    }
  } catch (error) {
    errors.postMessage(`purge of ${request.dataset}: ${(error as Error).message}`);
  } finally {
    Atomics.add(finished, 0, 1);
    Atomics.notify(finished, 0);
  }
});
