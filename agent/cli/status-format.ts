/**
 * `lakeside status` as a human summary of GET /v1/status (observability.ts): health,
 * readiness, landing, disk, sources, datasets, streams and open alerts, one topic per
 * line, problems first in colour (style.ts).
 */
import { formatBytes } from '../../tiering/tiers-report.ts';
import type { Style } from './style.ts';

/** The parts of GET /v1/status this summary reads (snake_case on the wire). */
export interface StatusReport {
  plant: string;
  agent_id: string;
  version: string;
  uptime_seconds: number;
  health: { ok: boolean; reasons: string[] };
  ready: { ok: boolean; reasons: string[] };
  landing: { blocked: boolean; depth_rows: Record<string, number>; rows_inserted: number; quarantined: number };
  hot: Record<string, { files: number; bytes: number }>;
  disk: { state_dir: string; size_bytes: number | null; free_bytes: number | null; watermark: string };
  sources: ({ name: string } & Record<string, unknown>)[];
  streams: { watched: number; stalest_seconds: number | null };
  alerts: { code: string; message: string; opened_at: string }[];
  catalog?: { catalog: string; waiting_files: number; committed_files: number; pending_commits: number; oldest_waiting_seconds: number; fenced_tables: Record<string, string> } | null;
  /** sync/policy/policy-agent.ts PolicyStatus; null without a policy section. */
  policy?: {
    source: string;
    applied: { version: number; expires_at: string; warnings: string[] } | null;
    refused: { version: number | null; code: string; reason: string } | null;
    last_fetch: { at: string; ok: boolean; error: string | null } | null;
  } | null;
}

export interface DatasetLine {
  name: string;
  rows: number;
  max_time: string | null;
  streams: unknown[];
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86_400)} d ${Math.floor((seconds % 86_400) / 3600)} h`;
}

const label = (name: string): string => `  ${name.padEnd(9)} `;

export function formatStatus(url: string, status: StatusReport, datasets: DatasetLine[], style: Style): string {
  const lines: string[] = [];
  lines.push(`${style.bold(`lakeside ${status.version}`)} plant ${status.plant} (agent ${status.agent_id}) at ${url}, up ${formatDuration(status.uptime_seconds)}`);
  lines.push(label('health') + (status.health.ok ? style.ok('ok') : style.fail(`FAILING: ${status.health.reasons.join('; ')}`)));
  lines.push(label('ready') + (status.ready.ok ? style.ok('ok') : style.fail(`not ready: ${status.ready.reasons.join('; ')}`)));
  const waiting = Object.values(status.landing.depth_rows).reduce((a, b) => a + b, 0);
  const landing = `${status.landing.rows_inserted} rows landed since start, ${waiting} waiting for a seal, ${status.landing.quarantined} quarantined`;
  lines.push(label('landing') + (status.landing.blocked ? style.fail(`BLOCKED (cannot commit; sources paused): ${landing}`) : landing));
  const { disk } = status;
  if (disk.size_bytes !== null && disk.free_bytes !== null) {
    const used = disk.size_bytes > 0 ? Math.round((1 - disk.free_bytes / disk.size_bytes) * 100) : 0;
    const text = `${formatBytes(disk.free_bytes)} free of ${formatBytes(disk.size_bytes)} (${used} % used), watermark ${disk.watermark}`;
    lines.push(label('disk') + (disk.watermark === 'critical' ? style.fail(text) : disk.watermark === 'high' ? style.warn(text) : text));
  }
  for (const source of status.sources) {
    const parts: string[] = [];
    if (typeof source.connected === 'number') parts.push(source.connected > 0 ? style.ok(`${source.connected} connected`) : style.fail('NOT connected'));
    for (const key of ['received', 'acked', 'ingested', 'quarantined', 'refused', 'duplicates']) {
      if (typeof source[key] === 'number') parts.push(`${key} ${source[key]}`);
    }
    lines.push(label('source') + `${source.name}: ${parts.join(', ')}`);
  }
  for (const d of datasets) {
    const hot = status.hot[d.name];
    const files = hot ? `, hot ${hot.files} files ${formatBytes(hot.bytes)}` : '';
    lines.push(label('dataset') + `${d.name}: ${d.rows} rows, newest ${d.max_time ?? 'none'}, ${d.streams.length} stream${d.streams.length === 1 ? '' : 's'}${files}`);
  }
  const stalest = status.streams.stalest_seconds;
  lines.push(label('streams') + `${status.streams.watched} watched${stalest !== null ? `, stalest silent for ${formatDuration(stalest)}` : ''}`);
  const catalog = status.catalog;
  if (catalog) {
    const text = `${catalog.catalog}: ${catalog.committed_files} files committed, ${catalog.waiting_files} waiting${catalog.waiting_files > 0 ? ` (oldest ${formatDuration(catalog.oldest_waiting_seconds)})` : ''}`;
    const fenced = Object.keys(catalog.fenced_tables);
    lines.push(label('catalog') + (fenced.length > 0 ? style.fail(`${text}; FENCED on ${fenced.join(', ')} (another instance commits as this agent)`) : text));
  }
  const policy = status.policy;
  if (policy) {
    const applied = policy.applied ? `version ${policy.applied.version} (expires ${policy.applied.expires_at})` : 'none (the config file rules)';
    lines.push(label('policy') + applied + (policy.applied?.warnings.length ? style.warn(`; ${policy.applied.warnings.join('; ')}`) : ''));
    if (policy.refused) lines.push(label('policy') + style.warn(`refused version ${policy.refused.version ?? '?'}: ${policy.refused.code}: ${policy.refused.reason}`));
    if (policy.last_fetch && !policy.last_fetch.ok) lines.push(label('policy') + style.warn(`fetch from ${policy.source} failing: ${policy.last_fetch.error ?? ''}`));
  }
  if (status.alerts.length === 0) lines.push(label('alerts') + style.ok('none'));
  else {
    lines.push(label('alerts') + style.warn(`${status.alerts.length} open`));
    for (const alert of status.alerts) lines.push(`    ${style.warn('!')} ${style.warn(alert.code)} ${alert.message} ${style.dim(`(since ${alert.opened_at})`)}`);
  }
  return `${lines.join('\n')}\n`;
}
