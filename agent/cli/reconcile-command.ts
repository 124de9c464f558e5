/**
 * `lakeside reconcile -c FILE [--dry-run] [--json]`: this agent's tier map and commit
 * outbox against the files the catalog's tables hold (sync/reconcile.ts).
 * `--dry-run` only prints the difference and may run beside the daemon; without it
 * the command also marks committed what the catalog already holds, so it takes the
 * state lock (the daemon does the same at start and every reconcile_interval_minutes).
 * Exit codes: 0 no difference, 1 differences found (or refused to apply), 2 bad input.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/loader.ts';
import { openStore } from '../../tiering/stores/open-store.ts';
import { openCatalog } from '../../sync/catalog-sync.ts';
import { reconcile, type TableReconciliation } from '../../sync/reconcile.ts';
import { ensureSyncSchema } from '../../sync/outbox.ts';
import { acquireStateLock, StateLockedError } from '../state-lock.ts';
import { formatTable } from './table.ts';
import { styleFor } from './style.ts';

const SHOWN_PATHS = 10;

export function renderReconciliation(reports: TableReconciliation[], applied: boolean): string {
  const table = formatTable(
    ['table', 'ours in catalog', 'ok', applied ? 'marked committed' : 'to mark committed', 'to hand in', 'missing from catalog', 'unknown here'],
    reports.map((r) => [
      r.exists ? r.table : `${r.table} (not created yet)`,
      r.inCatalog,
      r.committedAndPresent,
      r.markedCommitted.length,
      r.handedIn.length,
      r.missingFromCatalog.length,
      r.unknownInCatalog.length,
    ]),
  );
  const lines = [table.trimEnd()];
  const list = (title: string, paths: string[]) => {
    if (paths.length === 0) return;
    lines.push('', `${title}:`);
    for (const p of paths.slice(0, SHOWN_PATHS)) lines.push(`  ${p}`);
    if (paths.length > SHOWN_PATHS) lines.push(`  … and ${paths.length - SHOWN_PATHS} more`);
  };
  for (const r of reports) {
    list(`${r.table}: in the catalog, not committed here (${applied ? 'now marked committed' : 'would be marked committed, never committed again'})`, r.markedCommitted);
    list(`${r.table}: committed here, absent from the catalog (removed or rewritten at the centre; not re-committed)`, r.missingFromCatalog);
    list(`${r.table}: ours by name in the catalog, unknown to this state directory`, r.unknownInCatalog);
    list(`${r.table}: uploaded, not yet handed to the committer (the daemon does it on its next pass)`, r.handedIn);
  }
  return `${lines.join('\n')}\n`;
}

export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description("compare this agent's tier map and commit outbox with the files the catalog's tables hold")
    .requiredOption('-c, --config <file>', 'the lakeside config file')
    .option('--dry-run', 'print the difference only (works beside a running daemon)')
    .option('--json', 'print the report as JSON')
    .action(async (options: { config: string; dryRun?: boolean; json?: boolean }) => {
      const style = styleFor(process.stderr);
      const { config, datasets } = await loadConfigFile(options.config);
      const dbPath = join(config.state_dir, 'landing.db');
      if (!existsSync(dbPath)) {
        process.stderr.write(`no state at ${config.state_dir} (has the daemon run?)\n`);
        process.exitCode = 2;
        return;
      }
      let release: (() => Promise<void>) | null = null;
      if (!options.dryRun) {
        try {
          release = await acquireStateLock(config.state_dir);
        } catch (error) {
          if (!(error instanceof StateLockedError)) throw error;
          process.stderr.write(style.warn('the daemon is running (it holds the state lock); it reconciles by itself at start and on schedule. Use --dry-run to look.\n'));
          process.exitCode = 1;
          return;
        }
      }
      const warm = config.tiering.warm ? await openStore(config.tiering.warm) : null;
      const cold = config.tiering.cold ? await openStore(config.tiering.cold) : null;
      const opened = openCatalog(config, warm, cold);
      const db = new Database(dbPath, { readonly: !!options.dryRun, fileMustExist: true });
      db.pragma('busy_timeout = 10000');
      try {
        if (!opened) {
          process.stderr.write('no catalog is configured (catalog.type none, or no tiering.warm store): nothing to reconcile\n');
          return;
        }
        if (!options.dryRun) ensureSyncSchema(db);
        const hasOutbox = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'sync_files'`).get() !== undefined;
        if (!hasOutbox) {
          process.stderr.write('this state directory has never committed to a catalog (no outbox yet)\n');
          return;
        }
        process.stderr.write(`reconciling ${datasets.length} table(s) with ${opened.catalog.description}…\n`);
        const reports = await reconcile(
          { db, catalog: opened.catalog, io: opened.io, namespace: config.catalog.namespace, datasets, plant: config.plant, agentId: config.agent_id, warmLocation: opened.warmLocation, coldLocation: opened.coldLocationIfAny },
          !options.dryRun,
          Date.now() * 1000,
        );
        process.stdout.write(options.json ? `${JSON.stringify(reports, null, 2)}\n` : renderReconciliation(reports, !options.dryRun));
        const differences = reports.reduce((n, r) => n + r.markedCommitted.length + r.missingFromCatalog.length + r.unknownInCatalog.length, 0);
        if (differences > 0) process.exitCode = 1;
      } finally {
        db.close();
        await opened?.catalog.close();
        await opened?.io.close();
        await warm?.close();
        await cold?.close();
        await release?.();
      }
    });
}
