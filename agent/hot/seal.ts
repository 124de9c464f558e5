/**
 * Seal: landed rows of one dataset → L0 Parquet files, one per event-time window.
 *
 * Invariants:
 * - Every landed row is, at every instant, in exactly one place: landed (id above
 *   the dataset's `sealed_through` watermark, landing/schema.ts) or a registered L0
 *   file. The files are published (atomic rename, fsynced) first; then ONE
 *   transaction registers them in `hot_files` and raises the watermark to exactly
 *   the rows they hold (`lastId`: ids only go up and only the seal retires rows, so
 *   every id in (watermark, lastId] was read). A crash before that commit leaves
 *   unregistered files, which recovery deletes; the rows are still landed and the
 *   next seal rewrites them.
 * - Steps are registered in id order, each exactly once. A seal of more than one
 *   step is pipelined: step k is encoded on the encoder thread (seal-encoder.ts)
 *   while this thread reads step k+1, then published and committed here before step
 *   k+1 is handed over. At most two steps are in memory (one encoding, one read).
 *   Reading ahead needs no commit: the next step starts after the last id read, and
 *   if step k fails, the steps read after it are dropped unregistered (still landed).
 * - The physical delete of sealed rows is not part of that transaction (it cost as
 *   much as reading them): it is queued after each commit on the purge thread
 *   (purge.ts), which runs while this thread reads the next step.
 * - The ingest writer owns the other write transactions: ours is short (an insert
 *   per file and one watermark update), reads run outside it (WAL snapshot reads).
 * - Held rows (a Kafka batch whose offset commit is not yet known: landing/source-holds.ts)
 *   are never sealed: a seal stops below the dataset's lowest held id.
 * - Column 0 (event time) is never null: the landing log refuses such rows.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Dataset } from '../../config/dataset.ts';
import { heldFloor, landedTable, sealedThrough, type HotFileRecord } from '../landing/schema.ts';
import { failpoint } from '../failpoint.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { RowColumnizer, type ColumnBatch } from './columns.ts';
import { l0Path } from './paths.ts';
import { purgeSealed, requestPurge } from './purge.ts';
import { encodeStep, type EncodedPart } from './seal-encode.ts';
import { awaitEncode, startEncoder, stopEncoder, submitEncode } from './seal-encoder.ts';
import { insertHotFiles, newHotFile, nowUs, withCleanup, type NewHotFile } from './registry.ts';

// Small `.all()` pages beat `.iterate()` by half and 64k-row pages by a fifth (measured,
// 1M rows): few native crossings, and each page dies young in the new space.
const READ_PAGE_ROWS = 5000;

/**
 * Rows per step at most, whatever `sealMaxRows` allows: the unit of the read/encode
 * pipeline. Smaller steps overlap better (the first read and the last encode are not
 * overlapped) but cost a file per window and a commit each. A steady-state seal (a
 * few seconds of ingest) is one step and keeps its one file per window.
 */
export const SEAL_STEP_ROWS = 131_072;

export interface SealOptions {
  compactionWindowMinutes: number;
  rowGroupRows: number;
  /** Rows read and sealed per step at most (one step = one commit); also capped by SEAL_STEP_ROWS. */
  sealMaxRows: number;
  /** Test hook: runs after the files are published, before the commit that registers them. */
  beforeCommit?: (files: NewHotFile[]) => void;
  /** Clock for `created_at_us` (tests). */
  nowUs?: () => number;
}

export interface SealResult {
  dataset: string;
  rows: number;
  files: HotFileRecord[];
  /** Where the time went (ms). On the seal thread, summing to its wall time: SQLite
   *  reads, waiting for the encoder thread, file publication, the commit (register +
   *  watermark). `encodeMs` is the Parquet encoding itself: on this thread for a
   *  one-step seal (then `encodeWaitMs` is 0), else on the encoder thread, overlapping
   *  the reads. The purge of the sealed rows runs on another thread afterwards
   *  (`awaitPurges` waits for it). */
  timings: { readMs: number; encodeMs: number; encodeWaitMs: number; publishMs: number; commitMs: number };
}

/** Rows (firstId..lastId] read for one step, and how their encoding is obtained. */
interface Step {
  firstId: number;
  lastId: number;
  rows: number;
  /** Encoder-thread job, or the parts when encoded inline. */
  job: number | EncodedPart[];
}

export function sealDataset(db: Database.Database, dataset: Dataset, stateDir: string, options: SealOptions): SealResult {
  const table = landedTable(dataset.name);
  const columns = dataset.columns.map((c) => `"${c.name}"`).join(', ');
  // The highest id first, then the holds: a hold is written with its rows, so a row
  // below that id is either seen held here or was released before.
  const newest = db.prepare(`SELECT max(id) FROM "${table}"`).pluck().get() as number | null;
  const floor = heldFloor(db, dataset.name);
  const maxId = newest === null || floor === null ? newest : Math.min(newest, floor - 1);
  const sealedAt = sealedThrough(db, dataset.name);
  const timings = { readMs: 0, encodeMs: 0, encodeWaitMs: 0, publishMs: 0, commitMs: 0 };
  const result: SealResult = { dataset: dataset.name, rows: 0, files: [], timings };
  if (maxId === null) return result;
  const purge = (): void => {
    // In-memory databases have no other connection to purge them: do it here.
    if (db.memory) purgeSealed(db, dataset.name);
    else requestPurge({ dbPath: db.name, dataset: dataset.name });
  };
  if (maxId <= sealedAt) {
    purge(); // only sealed rows are left in the table: retry a purge that failed
    return result;
  }
  const select = db.prepare(`SELECT id, ${columns} FROM "${table}" WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`).raw();
  const raise = db.prepare(`INSERT INTO sealed_through (dataset, id) VALUES (?, ?) ON CONFLICT (dataset) DO UPDATE SET id = excluded.id`);
  const stepRows = Math.min(options.sealMaxRows, SEAL_STEP_ROWS);
  const encodeOptions = { windowUs: options.compactionWindowMinutes * 60_000_000, rowGroupRows: options.rowGroupRows };
  const clock = options.nowUs ?? nowUs;
  // Ids are unique, so the id range bounds the row count: more than a step's worth is
  // worth the encoder thread, a single step could not overlap with anything.
  const pipelined = maxId - sealedAt > stepRows;
  if (pipelined) startEncoder(); // its start-up (Arrow, parquet-wasm) overlaps the first read
  let mark = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const elapsed = now - mark;
    mark = now;
    return elapsed;
  };

  /** Reads the rows after `readThrough` (up to a step's worth) into columns; null when none are left. */
  const readStep = (readThrough: number): { batch: ColumnBatch; firstId: number; lastId: number } | null => {
    const builder = new RowColumnizer(dataset, Math.min(stepRows, maxId - readThrough), 1);
    let firstId = -1;
    let lastId = readThrough;
    while (builder.length < stepRows) {
      const page = select.all(lastId, maxId, Math.min(READ_PAGE_ROWS, stepRows - builder.length)) as unknown[][];
      if (page.length === 0) break;
      if (firstId < 0) firstId = (page[0] as unknown[])[0] as number;
      lastId = (page[page.length - 1] as unknown[])[0] as number;
      builder.pushRows(page);
    }
    timings.readMs += lap();
    return builder.length === 0 ? null : { batch: builder.finish(), firstId, lastId };
  };

  /** Publishes a step's files and registers them, retiring its rows, in one transaction. */
  const registerStep = (step: Step): void => {
    let parts: EncodedPart[];
    if (typeof step.job === 'number') {
      const encoded = awaitEncode(step.job);
      timings.encodeWaitMs += lap();
      timings.encodeMs += encoded.encodeMs;
      parts = encoded.parts;
    } else {
      parts = step.job;
    }
    const pending: NewHotFile[] = [];
    const registered = withCleanup(stateDir, pending, () => {
      for (const part of parts) {
        const path = l0Path(dataset.name, part.windowStartUs, step.firstId, step.lastId);
        writeFileAtomic(join(stateDir, path), part.bytes);
        pending.push(
          newHotFile(
            { dataset: dataset.name, level: 0, path, window_start_us: part.windowStartUs, partition_json: '{}', file_size_bytes: part.bytes.length, created_at_us: clock() },
            part.stats,
            part.minTsUs,
            part.maxTsUs,
          ),
        );
      }
      timings.publishMs += lap();
      options.beforeCommit?.(pending);
      failpoint('seal.after-publish', pending); // crash tests: published, not registered
      return db.transaction(() => {
        const records = insertHotFiles(db, pending);
        raise.run(dataset.name, step.lastId);
        return records;
      }).immediate();
    });
    timings.commitMs += lap();
    result.rows += step.rows;
    result.files.push(...registered);
    purge();
  };

  let encoding: Step | null = null; // handed to the encoder thread, not yet registered
  let readThrough = sealedAt;
  try {
    for (;;) {
      const read = readStep(readThrough);
      if (encoding !== null) registerStep(encoding);
      encoding = null;
      if (read === null) break;
      readThrough = read.lastId;
      const { batch, firstId, lastId } = read;
      if (pipelined) {
        encoding = { firstId, lastId, rows: batch.length, job: submitEncode(dataset, batch, encodeOptions) };
        continue;
      }
      const parts = encodeStep(dataset, batch, encodeOptions);
      timings.encodeMs += lap();
      registerStep({ firstId, lastId, rows: batch.length, job: parts });
    }
  } finally {
    if (pipelined) stopEncoder();
  }
  return result;
}
