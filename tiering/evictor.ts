/**
 * Eviction and the disk budget.
 *
 * Invariants:
 * - A local file is deleted only when its tier-map state is committed or later
 *   (safe in warm/cold and in the catalog), with one exception: a dataset (or the
 *   blobs) whose policy says `overflow: drop_oldest` may lose its oldest uncommitted
 *   files at the critical watermark; they become `dropped`, counted and logged.
 * - Retention: a committed file goes once its newest event time is older than its
 *   dataset's hot retention (settings.ts: the policy's, else `hot_retention_hours`).
 *   Rollup files (local summaries, never uploaded) go by the config's age. A pass reads
 *   the settings once: a policy swapped during it applies from the next pass.
 * - Above the high watermark, committed files go oldest first until usage is back
 *   under it (the hot window shrinks: an alert says to what).
 * - At or above the critical watermark `onPressure(true)` pauses the sources; the
 *   first pass that measures below it calls `onPressure(false)`.
 * - Order of an eviction, each step crash-safe: ONE transaction marks the files
 *   `evicting` and unregisters data files from `hot_files` → `beforeUnlink` (the
 *   query engine refreshes its views, so no view lists a file about to vanish) →
 *   unlink → `evicted`. A crash after the transaction: start-up finishes the
 *   `evicting` rows (and hot-tier recovery deletes the unregistered data files).
 *
 * Usage: with `disk_budget.max_bytes`, what lakeside holds under state_dir (registered
 * hot files, local blobs, the landing database and its WAL) against that budget;
 * without it, the filesystem of state_dir (used / size, as `df` shows it).
 */
import type Database from 'better-sqlite3';
import { statSync, unlinkSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { TieringConfig } from '../config/tiering-schema.ts';
import { Periodic } from './periodic.ts';
import { buildSettings, hotCutoffSql, type TieringSettings } from './settings.ts';
import { SAFE_ELSEWHERE, type TierMap, type TierRecord } from './tier-map.ts';
import type { TieringLogger } from './uploader.ts';

export interface DiskUsage {
  usedBytes: number;
  budgetBytes: number;
}

export type MeasureDisk = () => Promise<DiskUsage>;

export function measureDisk(db: Database.Database, stateDir: string, maxBytes: number | undefined): MeasureDisk {
  const hot = db.prepare('SELECT coalesce(sum(file_size_bytes), 0) FROM hot_files').pluck();
  const blobs = db.prepare('SELECT coalesce(sum(size_bytes), 0) FROM blobs').pluck();
  const goneBlobs = db.prepare(`SELECT coalesce(sum(size_bytes), 0) FROM tier_files WHERE kind = 'blob' AND local_state = 'evicted'`).pluck();
  const fileSize = (path: string): number => {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  };
  return async () => {
    if (maxBytes === undefined) {
      const fs = await statfs(stateDir);
      const total = fs.blocks * fs.bsize;
      return { usedBytes: total - fs.bavail * fs.bsize, budgetBytes: total };
    }
    const dbBytes = ['landing.db', 'landing.db-wal', 'landing.db-shm'].reduce((n, f) => n + fileSize(join(stateDir, f)), 0);
    const used = (hot.get() as number) + (blobs.get() as number) - (goneBlobs.get() as number) + dbBytes;
    return { usedBytes: used, budgetBytes: maxBytes };
  };
}

export interface EvictorOptions {
  db: Database.Database;
  map: TierMap;
  config: TieringConfig;
  stateDir: string;
  logger: TieringLogger;
  measure: MeasureDisk;
  /** Called after files left `hot_files` and before they are unlinked: refresh the query views. */
  beforeUnlink: (paths: string[]) => Promise<void>;
  /** true at the critical watermark (pause sources), false once below it again (resume). */
  onPressure: (critical: boolean) => void;
  nowMs?: () => number;
  /** The settings in force (a policy swaps them live); default: built from `config`. */
  settings?: () => TieringSettings;
}

export interface EvictionReport {
  retention: number;
  pressure: number;
  dropped: number;
  rollups: number;
  freedBytes: number;
  usedBytes: number;
  budgetBytes: number;
  critical: boolean;
}

const BATCH = 200;

export class Evictor {
  private readonly options: EvictorOptions;
  private readonly nowMs: () => number;
  private critical = false;
  private watermarkState: 'ok' | 'high' | 'critical' = 'ok';
  private readonly loop: Periodic;
  private readonly settings: () => TieringSettings;

  constructor(options: EvictorOptions) {
    this.options = options;
    this.nowMs = options.nowMs ?? Date.now;
    if (options.settings) this.settings = options.settings;
    else {
      const fixed = buildSettings(options.config, null);
      this.settings = () => fixed;
    }
    this.loop = new Periodic(() => this.pass(), options.config.eviction_interval_ms, (error) =>
      options.logger.error({ code: 'EVICTION_FAILED', err: error.message }, 'eviction pass failed'),
    );
  }

  get isCritical(): boolean {
    return this.critical;
  }

  /** Where usage stood against the watermarks after the last pass (ok before the first). */
  get watermark(): 'ok' | 'high' | 'critical' {
    return this.watermarkState;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async pass(): Promise<EvictionReport> {
    const { db, logger } = this.options;
    const settings = this.settings();
    const { config } = settings;
    const report: EvictionReport = { retention: 0, pressure: 0, dropped: 0, rollups: 0, freedBytes: 0, usedBytes: 0, budgetBytes: 0, critical: false };
    await this.finishEvicting();
    const nowUs = this.nowMs() * 1000;
    const cutoffUs = nowUs - config.hot_retention_hours * 3_600_000_000;
    const safe = SAFE_ELSEWHERE.map((s) => `'${s}'`).join(', ');
    const oldCommitted = db.prepare(
      `SELECT * FROM tier_files WHERE local_state = 'present' AND state IN (${safe}) AND event_time_us < ${hotCutoffSql(settings, nowUs)} ORDER BY event_time_us, id LIMIT ${BATCH}`,
    );
    for (let batch = oldCommitted.all() as TierRecord[]; batch.length > 0; batch = oldCommitted.all() as TierRecord[]) {
      report.freedBytes += await this.evict(batch, 'safe');
      report.retention += batch.length;
    }
    report.rollups = await this.evictOldRollups(cutoffUs);

    const { high_watermark_percent: high, critical_watermark_percent: criticalPct } = config.disk_budget;
    let usage = await this.options.measure();
    const over = (pct: number): number => usage.usedBytes - (usage.budgetBytes * pct) / 100;
    if (over(high) > 0) {
      const oldest = db.prepare(`SELECT * FROM tier_files WHERE local_state = 'present' AND state IN (${safe}) ORDER BY event_time_us, id LIMIT ${BATCH}`);
      let newestEvicted = 0;
      while (over(high) > 0) {
        const batch = this.takeUntil(oldest.all() as TierRecord[], over(high));
        if (batch.length === 0) break;
        await this.evict(batch, 'safe');
        report.pressure += batch.length;
        newestEvicted = Math.max(newestEvicted, ...batch.map((r) => r.event_time_us));
        usage = await this.options.measure();
      }
      if (report.pressure > 0) {
        const hoursKept = Math.max(0, (nowUs - newestEvicted) / 3_600_000_000);
        logger.warn(
          { code: 'HOT_WINDOW_SHRUNK', evicted: report.pressure, hot_window_hours: Number(hoursKept.toFixed(2)), hot_retention_hours: config.hot_retention_hours, used_bytes: usage.usedBytes, budget_bytes: usage.budgetBytes },
          'disk above the high watermark: committed files evicted early, the hot window shrank',
        );
      }
      if (over(high) > 0) {
        logger.warn({ code: 'DISK_HIGH_WATERMARK', used_bytes: usage.usedBytes, budget_bytes: usage.budgetBytes }, 'disk above the high watermark and nothing committed left to evict');
      }
    }
    if (over(criticalPct) >= 0) {
      report.dropped = await this.dropOldest(config, () => over(criticalPct), async () => (usage = await this.options.measure()));
    }
    report.usedBytes = usage.usedBytes;
    report.budgetBytes = usage.budgetBytes;
    report.critical = over(criticalPct) >= 0;
    this.watermarkState = report.critical ? 'critical' : over(high) > 0 ? 'high' : 'ok';
    if (report.critical !== this.critical) {
      this.critical = report.critical;
      if (report.critical) {
        logger.error({ code: 'DISK_CRITICAL', used_bytes: usage.usedBytes, budget_bytes: usage.budgetBytes }, 'disk at the critical watermark: sources paused');
      } else {
        logger.info({ used_bytes: usage.usedBytes, budget_bytes: usage.budgetBytes }, 'disk below the critical watermark: sources resumed');
      }
      this.options.onPressure(report.critical);
    }
    return report;
  }

  /** The shortest prefix of `records` whose sizes add up to at least `bytes`. */
  private takeUntil(records: TierRecord[], bytes: number): TierRecord[] {
    const out: TierRecord[] = [];
    let sum = 0;
    for (const r of records) {
      if (sum >= bytes) break;
      out.push(r);
      sum += r.size_bytes;
    }
    return out;
  }

  /** Uncommitted files of drop_oldest datasets (and blobs), oldest first, until `over()` < 0. */
  private async dropOldest(config: TieringConfig, over: () => number, remeasure: () => Promise<unknown>): Promise<number> {
    const { db, logger } = this.options;
    const datasets = Object.entries(config.datasets)
      .filter(([, p]) => p.overflow === 'drop_oldest')
      .map(([name]) => name);
    const blobs = config.blobs.overflow === 'drop_oldest';
    if (datasets.length === 0 && !blobs) return 0;
    const which = [
      datasets.length ? `(kind = 'data' AND dataset IN (${datasets.map((d) => `'${d.replaceAll("'", "''")}'`).join(', ')}))` : null,
      blobs ? `kind = 'blob'` : null,
    ]
      .filter(Boolean)
      .join(' OR ');
    const candidates = db.prepare(
      `SELECT * FROM tier_files WHERE local_state = 'present' AND state IN ('local', 'uploaded') AND (${which}) ORDER BY event_time_us, id LIMIT ${BATCH}`,
    );
    let dropped = 0;
    const perDataset = new Map<string, number>();
    while (over() >= 0) {
      const batch = this.takeUntil(candidates.all() as TierRecord[], over() + 1);
      if (batch.length === 0) break;
      await this.evict(batch, 'drop');
      dropped += batch.length;
      for (const r of batch) perDataset.set(r.dataset ?? '(blobs)', (perDataset.get(r.dataset ?? '(blobs)') ?? 0) + 1);
      await remeasure();
    }
    if (dropped > 0) {
      logger.error({ code: 'DATA_DROPPED', files: dropped, per_dataset: Object.fromEntries(perDataset) }, 'disk critical: oldest uncommitted files dropped (overflow: drop_oldest)');
    }
    return dropped;
  }

  /**
   * One eviction step for `records` (see the header). `safe`: only files committed or
   * later; `drop`: uncommitted files of a drop_oldest policy (local ones become
   * `dropped`; uploaded ones keep their state, their object being in warm).
   */
  private async evict(records: TierRecord[], mode: 'safe' | 'drop'): Promise<number> {
    const { db } = this.options;
    const nowUs = this.nowMs() * 1000;
    const guard = mode === 'safe' ? `state IN (${SAFE_ELSEWHERE.map((s) => `'${s}'`).join(', ')})` : `state IN ('local', 'uploaded')`;
    const mark = db.prepare(
      `UPDATE tier_files SET local_state = 'evicting', evicted_us = @now,
         state = CASE WHEN @drop AND state = 'local' THEN 'dropped' ELSE state END
       WHERE id = @id AND local_state = 'present' AND ${guard}`,
    );
    const unregister = db.prepare('DELETE FROM hot_files WHERE path = ?');
    const marked = db.transaction(() => {
      const done: TierRecord[] = [];
      for (const r of records) {
        if (mark.run({ now: nowUs, drop: mode === 'drop' ? 1 : 0, id: r.id }).changes !== 1) continue;
        if (r.kind === 'data') unregister.run(r.local_path);
        done.push(r);
      }
      return done;
    }).immediate();
    if (marked.length === 0) return 0;
    await this.unlinkAfterRefresh(marked.map((r) => r.local_path));
    const finish = db.prepare(`UPDATE tier_files SET local_state = 'evicted' WHERE id = ? AND local_state = 'evicting'`);
    db.transaction(() => marked.forEach((r) => finish.run(r.id))).immediate();
    return marked.reduce((n, r) => n + r.size_bytes, 0);
  }

  private async unlinkAfterRefresh(paths: string[]): Promise<void> {
    try {
      await this.options.beforeUnlink(paths);
    } catch (error) {
      // The views may still list them; a query that meets a vanished file refreshes and retries.
      this.options.logger.warn({ code: 'QUERY_REFRESH_FAILED', err: (error as Error).message }, 'views not refreshed before eviction');
    }
    for (const path of paths) {
      try {
        unlinkSync(join(this.options.stateDir, path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  }

  /** Finishes evictions a crash interrupted (marked `evicting`, maybe not unlinked). */
  private async finishEvicting(): Promise<void> {
    const { db } = this.options;
    const pending = db.prepare(`SELECT * FROM tier_files WHERE local_state = 'evicting'`).all() as TierRecord[];
    if (pending.length === 0) return;
    await this.unlinkAfterRefresh(pending.map((r) => r.local_path));
    db.prepare(`UPDATE tier_files SET local_state = 'evicted' WHERE local_state = 'evicting'`).run();
  }

  private async evictOldRollups(cutoffUs: number): Promise<number> {
    const { db } = this.options;
    const old = db.prepare('SELECT path FROM hot_files WHERE level = 2 AND max_ts_us < ? LIMIT 1000').pluck().all(cutoffUs) as string[];
    if (old.length === 0) return 0;
    const remove = db.prepare('DELETE FROM hot_files WHERE path = ? AND level = 2');
    db.transaction(() => old.forEach((p) => remove.run(p))).immediate();
    // Unregistered: a crash before the unlink leaves an orphan that hot-tier recovery deletes.
    await this.unlinkAfterRefresh(old);
    return old.length;
  }
}
