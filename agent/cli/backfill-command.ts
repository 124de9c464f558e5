/**
 * `lakeside backfill --from ISO --to ISO [--dataset D] --config FILE`: fetches the
 * evicted data files of that event-time range from warm (or cold) into the read-through
 * cache (`<state_dir>/cache/data`, tiering/data-cache.ts), so operators can query older
 * data on site. Runs beside the daemon (it reads the tier map, never writes it); the
 * daemon's query views pick the files up within ~2 s. Respects the cache budget: a
 * range that does not fit is refused with the sizes, and nothing is fetched. Progress
 * is drawn on a TTY (stderr); the summary goes to stdout.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/loader.ts';
import { CacheBudgetError, DataReadCache, WarmUnavailableError } from '../../tiering/data-cache.ts';
import { DATA_CACHE_DIR } from '../../tiering/data-cache-dir.ts';
import { ObjectStoreError, type ObjectStore } from '../../tiering/stores/object-store.ts';
import { openStore } from '../../tiering/stores/open-store.ts';
import { TierMap } from '../../tiering/tier-map.ts';
import { formatBytes, progressBar } from '../../tiering/tiers-report.ts';

interface BackfillOptions {
  config: string;
  from: string;
  to: string;
  dataset?: string;
}

function fail(message: string, exitCode: number): void {
  process.stderr.write(`lakeside backfill: ${message}\n`);
  process.exitCode = exitCode;
}

export function registerBackfillCommand(program: Command): void {
  program
    .command('backfill')
    .description('fetch evicted data of a time range from warm/cold into the read cache, for on-site queries')
    .requiredOption('-c, --config <file>', 'the lakeside config file')
    .requiredOption('--from <time>', 'start of the event-time range (ISO-8601, inclusive)')
    .requiredOption('--to <time>', 'end of the event-time range (ISO-8601, exclusive)')
    .option('--dataset <name>', 'only this dataset (default: every dataset)')
    .action(async (options: BackfillOptions) => {
      const fromMs = Date.parse(options.from);
      const toMs = Date.parse(options.to);
      if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) return fail('--from and --to must be ISO-8601 times, e.g. 2026-11-01T00:00:00Z', 2);
      if (toMs <= fromMs) return fail('--to must be after --from', 2);
      const { config } = await loadConfigFile(options.config);
      if (options.dataset !== undefined && !config.datasets.some((d) => d.name === options.dataset)) return fail(`unknown dataset "${options.dataset}"`, 2);
      const tiering = config.tiering;
      if (!tiering.warm && !tiering.cold) return fail('no tiering.warm or tiering.cold store is configured: nothing was ever evicted to fetch back', 1);
      const dbPath = join(config.state_dir, 'landing.db');
      if (!existsSync(dbPath)) return fail(`no state at ${config.state_dir} (has the daemon run?)`, 1);
      const db = new Database(dbPath, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      const stores: ObjectStore[] = [];
      try {
        const warm = tiering.warm ? await openStore(tiering.warm) : null;
        const cold = tiering.cold ? await openStore(tiering.cold) : null;
        for (const s of [warm, cold]) if (s) stores.push(s);
        const cache = new DataReadCache({ dir: join(config.state_dir, DATA_CACHE_DIR), maxBytes: tiering.read_cache_max_bytes, map: new TierMap(db), warm, cold });
        const tty = process.stderr.isTTY === true;
        const report = await cache.fetchRange(
          { fromUs: fromMs * 1000, toUs: toMs * 1000 },
          {
            ...(options.dataset !== undefined ? { dataset: options.dataset } : {}),
            onProgress: (p) => {
              if (tty) process.stderr.write(`\r${progressBar(p.doneBytes, p.totalBytes)} ${p.doneFiles}/${p.totalFiles} files, ${formatBytes(p.doneBytes)} of ${formatBytes(p.totalBytes)}`);
            },
          },
        );
        if (tty && report.files > 0) process.stderr.write('\n');
        const scope = options.dataset ?? 'all datasets';
        process.stdout.write(
          report.files === 0
            ? `nothing to fetch: no evicted data of ${scope} between ${options.from} and ${options.to} (data still on local disk is queryable as is)\n`
            : `${report.files} evicted files (${formatBytes(report.bytes)}) of ${scope}: ${report.fetchedFiles} fetched (${formatBytes(report.fetchedBytes)}), ${report.files - report.fetchedFiles} already cached` +
                `${report.dropped ? `, ${report.dropped} older cached files dropped to make room` : ''}; the read cache holds ${formatBytes(cache.sizeBytes())} of ${formatBytes(tiering.read_cache_max_bytes)}\n`,
        );
      } catch (error) {
        if (error instanceof CacheBudgetError || error instanceof WarmUnavailableError || error instanceof ObjectStoreError) return fail((error as Error).message, 1);
        throw error;
      } finally {
        for (const s of stores) await s.close().catch(() => {});
        db.close();
      }
    });
}
