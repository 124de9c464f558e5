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
 * - The physical delete of sealed rows is not part of that transaction (it cost as
 *   much as reading them): it is queued after each commit on the purge thread
 *   (purge.ts), which runs while this thread reads and encodes the next step.
 * - The ingest writer owns the other write transactions: ours is short (an insert
 *   per file and one watermark update), reads run outside it (WAL snapshot reads).
 * - Column 0 (event time) is never null: the landing log refuses such rows.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Dataset } from '../../config/dataset.ts';
import { landedTable, sealedThrough, type HotFileRecord } from '../landing/schema.ts';
import { failpoint } from '../failpoint.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { RowColumnizer, takeRows, timeValues, type ColumnBatch } from './columns.ts';
import { encodeParquet } from './parquet-writer.ts';
import { l0Path, windowStartOf } from './paths.ts';
import { purgeSealed, requestPurge } from './purge.ts';
import { insertHotFiles, newHotFile, nowUs, withCleanup, type NewHotFile } from './registry.ts';

// Small `.all()` pages beat `.iterate()` by half and 64k-row pages by a fifth (measured,
// 1M rows): few native crossings, and each page dies young in the new space.
const READ_PAGE_ROWS = 5000;

export interface SealOptions {
  compactionWindowMinutes: number;
  rowGroupRows: number;
  /** Rows read and sealed per step at most (one step = one commit). */
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
  /** Where the time went (ms): SQLite reads, Parquet encoding, file publication, the
   *  commit (register + watermark). The purge of the sealed rows runs on another
   *  thread afterwards (`awaitPurges` waits for it). */
  timings: { readMs: number; encodeMs: number; publishMs: number; commitMs: number };
}

interface WindowPart {
  windowStartUs: number;
  batch: ColumnBatch;
}

/** Splits a batch by event-time window; the common case (one window) copies nothing. */
export function splitByWindow(batch: ColumnBatch, windowUs: number): WindowPart[] {
  const times = timeValues(batch);
  const windowOf = new Float64Array(batch.length);
  const counts = new Map<number, number>();
  for (let i = 0; i < batch.length; i++) {
    const w = windowStartOf(times[i] as number, windowUs);
    windowOf[i] = w;
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  if (counts.size === 1) return [{ windowStartUs: windowOf[0] as number, batch }];
  const indices = new Map<number, { at: number; list: Uint32Array }>();
  for (const [w, count] of counts) indices.set(w, { at: 0, list: new Uint32Array(count) });
  for (let i = 0; i < batch.length; i++) {
    const slot = indices.get(windowOf[i] as number)!;
    slot.list[slot.at++] = i;
  }
  return [...indices.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([windowStartUs, slot]) => ({ windowStartUs, batch: takeRows(batch, slot.list) }));
}

function timeRange(batch: ColumnBatch): [number, number] {
  const times = timeValues(batch);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < times.length; i++) {
    const t = times[i] as number;
    if (t < min) min = t;
    if (t > max) max = t;
  }
  return [min, max];
}

export function sealDataset(db: Database.Database, dataset: Dataset, stateDir: string, options: SealOptions): SealResult {
  const table = landedTable(dataset.name);
  const columns = dataset.columns.map((c) => `"${c.name}"`).join(', ');
  const maxId = db.prepare(`SELECT max(id) FROM "${table}"`).pluck().get() as number | null;
  let after = sealedThrough(db, dataset.name);
  const result: SealResult = { dataset: dataset.name, rows: 0, files: [], timings: { readMs: 0, encodeMs: 0, publishMs: 0, commitMs: 0 } };
  const timings = result.timings;
  if (maxId === null) return result;
  const purge = (): void => {
    // In-memory databases have no other connection to purge them: do it here.
    if (db.memory) purgeSealed(db, dataset.name);
    else requestPurge({ dbPath: db.name, dataset: dataset.name });
  };
  if (maxId <= after) {
    purge(); // only sealed rows are left in the table: retry a purge that failed
    return result;
  }
  const select = db.prepare(`SELECT id, ${columns} FROM "${table}" WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`).raw();
  const raise = db.prepare(`INSERT INTO sealed_through (dataset, id) VALUES (?, ?) ON CONFLICT (dataset) DO UPDATE SET id = excluded.id`);
  const windowUs = options.compactionWindowMinutes * 60_000_000;
  const clock = options.nowUs ?? nowUs;
  for (;;) {
    let mark = performance.now();
    const lap = (): number => {
      const now = performance.now();
      const elapsed = now - mark;
      mark = now;
      return elapsed;
    };
    // Ids are unique, so the id range bounds the row count: a capacity without a count query.
    const builder = new RowColumnizer(dataset, Math.min(options.sealMaxRows, maxId - after), 1);
    let firstId = -1;
    let lastId = after;
    while (builder.length < options.sealMaxRows) {
      const page = select.all(lastId, maxId, Math.min(READ_PAGE_ROWS, options.sealMaxRows - builder.length)) as unknown[][];
      if (page.length === 0) break;
      if (firstId < 0) firstId = (page[0] as unknown[])[0] as number;
      lastId = (page[page.length - 1] as unknown[])[0] as number;
      builder.pushRows(page);
    }
    if (builder.length === 0) break;
    const batch = builder.finish();
    timings.readMs += lap();
    const pending: NewHotFile[] = [];
    const registered = withCleanup(stateDir, pending, () => {
      for (const part of splitByWindow(batch, windowUs)) {
        const { bytes, stats } = encodeParquet(dataset, part.batch, { rowGroupRows: options.rowGroupRows });
        const path = l0Path(dataset.name, part.windowStartUs, firstId, lastId);
        timings.encodeMs += lap();
        writeFileAtomic(join(stateDir, path), bytes);
        timings.publishMs += lap();
        const [minTs, maxTs] = timeRange(part.batch);
        pending.push(
          newHotFile(
            { dataset: dataset.name, level: 0, path, window_start_us: part.windowStartUs, partition_json: '{}', file_size_bytes: bytes.length, created_at_us: clock() },
            stats,
            minTs,
            maxTs,
          ),
        );
      }
      options.beforeCommit?.(pending);
      failpoint('seal.after-publish', pending); // crash tests: published, not registered
      return db.transaction(() => {
        const records = insertHotFiles(db, pending);
        raise.run(dataset.name, lastId);
        return records;
      }).immediate();
    });
    timings.commitMs += lap();
    result.rows += batch.length;
    result.files.push(...registered);
    after = lastId;
    purge();
  }
  return result;
}
