/**
 * `lakeside tiers --config FILE [--watch]`: per dataset, files and bytes per tier, the
 * oldest uncommitted data, the upload backlog and its drain estimate at the recent
 * rate. Reads the tier map read-only from the state directory (beside a running
 * daemon); `--watch` redraws every second with a progress bar of the drain.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/loader.ts';
import { formatBytes, formatDuration, progressBar, tiersReport, type TiersReport } from '../../tiering/tiers-report.ts';
import { formatTable } from './table.ts';

export function renderTiers(report: TiersReport, nowUs: number): string {
  const both = (x: { files: number; bytes: number }) => (x.files === 0 ? '-' : `${x.files} / ${formatBytes(x.bytes)}`);
  const age = (us: number | null) => (us === null ? '-' : formatDuration((nowUs - us) / 1e6));
  const table = formatTable(
    ['dataset', 'local', 'uploaded', 'committed', 'archived', 'evicted', 'backlog', 'set aside', 'oldest uncommitted'],
    report.datasets.map((d) => [d.dataset, both(d.local), both(d.uploaded), both(d.committed), both(d.archived), both(d.evicted), both(d.backlog), d.setAside || '-', age(d.oldestUncommittedUs)]),
  );
  const lines = [
    table.trimEnd(),
    '',
    `upload backlog ${formatBytes(report.backlogBytes)}, recent rate ${formatBytes(report.rateBytesPerSecond)}/s, drained in ${formatDuration(report.drainSeconds)}`,
  ];
  for (const s of report.setAside) lines.push(`set aside: ${s.dataset} ${s.path} after ${s.attempts} attempts: ${s.reason ?? ''}`);
  return `${lines.join('\n')}\n`;
}

export function registerTiersCommand(program: Command): void {
  program
    .command('tiers')
    .description('files and bytes per tier per dataset, upload backlog and drain estimate')
    .requiredOption('-c, --config <file>', 'the lakeside config file (for state_dir)')
    .option('--watch', 'redraw every second with a drain progress bar')
    .action(async (options: { config: string; watch?: boolean }) => {
      const { config } = await loadConfigFile(options.config, { resolveSecrets: false });
      const dbPath = join(config.state_dir, 'landing.db');
      if (!existsSync(dbPath)) {
        process.stderr.write(`no state at ${config.state_dir} (has the daemon run?)\n`);
        process.exitCode = 1;
        return;
      }
      const db = new Database(dbPath, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      try {
        const first = tiersReport(db, Date.now() * 1000);
        process.stdout.write(renderTiers(first, Date.now() * 1000));
        if (!options.watch) return;
        const total = first.backlogBytes;
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          const now = Date.now() * 1000;
          const report = tiersReport(db, now);
          process.stdout.write(`\x1b[2J\x1b[H${renderTiers(report, now)}${progressBar(total - report.backlogBytes, total)}\n`);
          if (report.backlogBytes === 0) return;
        }
      } finally {
        db.close();
      }
    });
}
