/**
 * `lakeside fleet status --from s3://bucket[/prefix] | file:/dir [--config FILE] [--json]`:
 * every plant's `status/<plant>.json` (sync/policy/status-report.ts) as one table:
 * plant, agent, applied policy version, refused (version: code), status age, worst
 * lag to warm and to the catalog, disk use, open alerts, and who is behind.
 *
 * Behind: an applied version older than the newest any plant applied, no policy
 * applied at all while others have one, or a stale status (older than three of its
 * agent's intervals, or `--stale-seconds`). Exit code 0 either way: this is a report.
 * S3 settings come from `--config` (its `policy.store`) or the flags, credentials from
 * the SDK's default chain.
 */
import type { Command } from 'commander';
import { loadConfigFile } from '../../config/loader.ts';
import type { PolicyStoreSettings } from '../../sync/policy/fetch.ts';
import { StatusLocation, type PlantStatus } from '../../sync/policy/status-report.ts';
import { formatDuration } from '../../tiering/tiers-report.ts';
import { formatTable } from './table.ts';

const DEFAULT_STALE_SECONDS = 900;

export interface FleetRow {
  plant: string;
  agent_id: string;
  applied_version: number | null;
  refused: string | null;
  status_age_seconds: number;
  worst_lag_to_warm_seconds: number;
  worst_lag_to_catalog_seconds: number;
  disk_used_percent: number | null;
  open_alerts: number;
  behind: string[];
}

export function fleetRows(statuses: PlantStatus[], nowMs: number, staleSeconds?: number): FleetRow[] {
  const newest = Math.max(0, ...statuses.map((s) => s.policy?.applied_version ?? 0));
  return statuses
    .map((s) => {
      const age = Math.max(0, Math.round((nowMs - Date.parse(s.time)) / 1000));
      const applied = s.policy?.applied_version ?? null;
      const behind: string[] = [];
      if (newest > 0 && applied === null) behind.push('no policy applied');
      else if (applied !== null && applied < newest) behind.push(`policy ${applied} < ${newest}`);
      const stale = staleSeconds ?? (s.interval_seconds ? 3 * s.interval_seconds : DEFAULT_STALE_SECONDS);
      if (!(age <= stale)) behind.push(`status ${formatDuration(age)} old`);
      const refused = s.policy?.refused;
      return {
        plant: s.plant,
        agent_id: s.agent_id,
        applied_version: applied,
        refused: refused ? `${refused.version ?? '?'}: ${refused.code}` : null,
        status_age_seconds: age,
        worst_lag_to_warm_seconds: Math.max(0, ...(s.datasets ?? []).map((d) => d.lag_to_warm_seconds)),
        worst_lag_to_catalog_seconds: Math.max(0, ...(s.datasets ?? []).map((d) => d.lag_to_catalog_seconds)),
        disk_used_percent: s.disk?.used_percent ?? null,
        open_alerts: (s.alerts ?? []).length,
        behind,
      };
    })
    .sort((a, b) => a.plant.localeCompare(b.plant) || a.agent_id.localeCompare(b.agent_id));
}

export function renderFleet(rows: FleetRow[]): string {
  const lag = (seconds: number) => (seconds === 0 ? '-' : formatDuration(seconds));
  return formatTable(
    ['plant', 'agent', 'policy', 'refused', 'status age', 'lag to warm', 'lag to catalog', 'disk', 'alerts', 'behind'],
    rows.map((r) => [
      r.plant,
      r.agent_id,
      r.applied_version ?? '-',
      r.refused ?? '-',
      formatDuration(r.status_age_seconds),
      lag(r.worst_lag_to_warm_seconds),
      lag(r.worst_lag_to_catalog_seconds),
      r.disk_used_percent === null ? '-' : `${r.disk_used_percent} %`,
      r.open_alerts || '-',
      r.behind.length ? `BEHIND: ${r.behind.join(', ')}` : '',
    ]),
  );
}

export function registerFleetCommand(program: Command): void {
  const fleet = program.command('fleet').description('the fleet as the central status reports show it');
  fleet
    .command('status')
    .description('every plant: applied policy, refusals, status age, lag to warm and catalog, disk, alerts; who is behind')
    .requiredOption('--from <url>', 'where the agents write status/<plant>.json: s3://bucket[/prefix] or file:/dir')
    .option('-c, --config <file>', 'a lakeside config whose policy.store gives the S3 settings')
    .option('--endpoint <url>', 'S3 endpoint (an S3-compatible server)')
    .option('--region <region>', 'S3 region')
    .option('--force-path-style', 'S3 path-style requests')
    .option('--stale-seconds <n>', 'a status older than this is stale (default: three of its agent interval)', (v) => Number(v))
    .option('--json', 'print the rows as JSON')
    .action(async (options: { from: string; config?: string; endpoint?: string; region?: string; forcePathStyle?: boolean; staleSeconds?: number; json?: boolean }) => {
      const store: PolicyStoreSettings = {
        ...(options.config ? (await loadConfigFile(options.config)).config.policy?.store : {}),
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.region ? { region: options.region } : {}),
        ...(options.forcePathStyle ? { force_path_style: true } : {}),
      };
      const location = new StatusLocation(options.from, store);
      try {
        const read = await location.readAll();
        for (const r of read) if (r.error) process.stderr.write(`${r.key}: not a status report (${r.error})\n`);
        const rows = fleetRows(read.flatMap((r) => (r.status ? [r.status] : [])), Date.now(), options.staleSeconds);
        if (options.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else process.stdout.write(rows.length ? renderFleet(rows) : `no status reports under ${options.from}\n`);
      } finally {
        location.close();
      }
    });
}
