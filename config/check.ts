/**
 * `lakeside config check FILE`: load the config the way the daemon would and say, in
 * a few lines, what it will do, or list every problem, one line per issue.
 * Never prints a secret value (it prints only names, paths and counts).
 */
import { ConfigError, formatIssue } from './errors.ts';
import { loadConfigFile, type LoadOptions } from './loader.ts';

export interface CheckResult {
  ok: boolean;
  lines: string[];
}

export async function checkConfigFile(path: string, options: LoadOptions = {}): Promise<CheckResult> {
  let loaded;
  try {
    loaded = await loadConfigFile(path, options);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const count = error.issues.length;
    return { ok: false, lines: [`${path}: ${count} problem${count === 1 ? '' : 's'}`, ...error.issues.map(formatIssue)] };
  }
  const { config, datasets, warnings } = loaded;
  const lines = [
    `${path}: ok`,
    `plant ${config.plant}, agent ${config.agent_id}, state in ${config.state_dir}`,
    `datasets (${datasets.length}):`,
  ];
  for (const dataset of datasets) {
    const extras: string[] = [];
    if (dataset.dedupeKey) extras.push(`dedupe on ${dataset.dedupeKey.map((i) => dataset.columns[i]!.name).join(', ')}`);
    if (dataset.partitionBy.length) extras.push(`partitioned by ${dataset.partitionBy.map((i) => dataset.columns[i]!.name).join(', ')}`);
    if (dataset.blobColumn !== null) extras.push(`blob ${dataset.columns[dataset.blobColumn]!.name}`);
    const time = dataset.columns[0]!.name;
    lines.push(`  ${dataset.name}: ${dataset.columns.length} columns (time ${time})${extras.length ? `, ${extras.join(', ')}` : ''}`);
  }
  const { mqtt, kafka, folders } = config.sources;
  lines.push(`sources (${mqtt.length + kafka.length + folders.length}):`);
  for (const source of mqtt) {
    const share = source.share_group === null ? 'no shared subscription' : `share group ${source.share_group}`;
    lines.push(`  mqtt ${source.name}: ${source.url}, ${source.connections} connection${source.connections === 1 ? '' : 's'}, ${share}`);
    for (const route of source.routes) lines.push(`    ${route.filter} -> ${route.dataset}${route.payload === 'binary' ? ' (binary payload)' : ''}`);
  }
  for (const source of kafka) {
    const auth = [source.tls ? 'TLS' : null, source.sasl ? `SASL ${source.sasl.mechanism}` : null].filter(Boolean).join(', ');
    lines.push(`  kafka ${source.name}: ${source.brokers.join(', ')}, group ${source.group_id}${auth ? `, ${auth}` : ''}`);
    for (const route of source.routes) lines.push(`    ${route.topic} -> ${route.dataset}${route.payload === 'binary' ? ' (binary values)' : ''}`);
  }
  for (const source of folders) {
    lines.push(`  folder ${source.name}: ${source.path}`);
    lines.push(`    ${source.path_pattern} (files matching ${source.include}) -> ${source.dataset}`);
  }
  for (const warning of warnings) lines.push(`warning: ${warning}`);
  return { ok: true, lines };
}
