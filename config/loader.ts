/**
 * Loads the one YAML config file: parse, validate against `configSchema`, fill the
 * defaults that depend on the file (agent id, paths relative to the file), resolve
 * secret references, and resolve the dataset model.
 *
 * Invariants:
 * - Any problem throws one `ConfigError` listing every issue by field path
 *   (`sources.mqtt[0].url: …`), with the YAML line where it can be found.
 * - Relative paths (state_dir, folder path and done_dir, TLS files, `${file:…}`
 *   secrets) resolve against the config file's directory, never the working directory.
 * - Secret values never appear in errors, and serialising the config redacts them
 *   (see secrets.ts); `redactConfig` gives a copy fit for logs.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, type LakesideConfig } from './schema.ts';
import { fileStoreDir } from './tiering-schema.ts';
import { resolveDataset, type Dataset } from './dataset.ts';
import { ConfigError, formatPath, type ConfigIssue } from './errors.ts';
import { friendlyErrorMap } from './messages.ts';
import { resolveSecrets } from './secrets.ts';

export { redactConfig, REDACTED } from './secrets.ts';
export { ConfigError } from './errors.ts';

export interface LoadedConfig {
  /** Validated, defaults filled, `agent_id` set, paths absolute, secrets resolved. */
  config: LakesideConfig & { agent_id: string };
  datasets: Dataset[];
  warnings: string[];
}

export interface LoadOptions {
  /** Directory that relative paths resolve against; default: the directory of `sourceName`. */
  baseDir?: string;
  /** Where `${env:NAME}` looks; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Default true. False leaves `${…}` references as written (e.g. to check a config on another machine). */
  resolveSecrets?: boolean;
}

export async function loadConfigFile(path: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(path, [{ path: '(file)', message: `cannot read ${path} (${code})` }]);
  }
  return parseConfigText(text, path, options);
}

export function parseConfigText(text: string, sourceName: string, options: LoadOptions = {}): LoadedConfig {
  const baseDir = options.baseDir ?? dirname(resolve(sourceName));
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sourceName,
      doc.errors.map((error) => {
        const pos = lineCounter.linePos(error.pos[0]);
        // yaml appends an excerpt of the offending line, which could hold a secret: keep the sentence only.
        const sentence = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return { path: `line ${pos.line}:${pos.col}`, message: `YAML syntax error: ${sentence}` };
      }),
    );
  }
  const warnings = doc.warnings.map((w) => `YAML: ${w.message.split('\n')[0]}`);
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) throw new ConfigError(sourceName, [{ path: '(root)', message: 'the file is empty' }]);

  const parsed = configSchema.safeParse(raw, { error: friendlyErrorMap });
  if (!parsed.success) throw new ConfigError(sourceName, schemaIssues(parsed.error.issues, doc, lineCounter));

  const config = { ...parsed.data, agent_id: parsed.data.agent_id ?? parsed.data.plant };
  resolvePaths(config, baseDir);
  if (options.resolveSecrets !== false) {
    const secrets = resolveSecrets(config, { env: options.env ?? process.env, baseDir });
    if (secrets.issues.length > 0) throw new ConfigError(sourceName, withLines(secrets.issues, doc, lineCounter));
    warnings.push(...secrets.warnings);
  }
  return { config, datasets: config.datasets.map(resolveDataset), warnings };
}

function resolvePaths(config: LakesideConfig, baseDir: string): void {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  config.state_dir = abs(config.state_dir);
  for (const folder of config.sources.folders) {
    folder.path = abs(folder.path);
    if (folder.done_dir !== undefined) folder.done_dir = abs(folder.done_dir);
  }
  for (const store of [config.tiering.warm, config.tiering.cold]) {
    if (store?.url.startsWith('file:')) store.url = pathToFileURL(fileStoreDir(store.url, baseDir, resolve)).href;
    if (store?.credentials?.file !== undefined) store.credentials.file = abs(store.credentials.file);
  }
  const policy = config.policy;
  const fileUrl = (url: string): string => (url.startsWith('file:') && !url.startsWith('file://') ? pathToFileURL(abs(url.slice('file:'.length))).href : url);
  if (policy) {
    policy.url = fileUrl(policy.url);
    if (policy.signature_url !== undefined) policy.signature_url = fileUrl(policy.signature_url);
    if (policy.status) policy.status.url = fileUrl(policy.status.url);
    if (policy.mqtt_nudge?.ca_file !== undefined) policy.mqtt_nudge.ca_file = abs(policy.mqtt_nudge.ca_file);
  }
  if (config.policy?.store?.credentials?.file !== undefined) config.policy.store.credentials.file = abs(config.policy.store.credentials.file);
  for (const source of [...config.sources.mqtt, ...config.sources.kafka, ...(config.alerts.mqtt ? [config.alerts.mqtt] : [])]) {
    const tls = source.tls;
    if (!tls) continue;
    if (tls.ca_file !== undefined) tls.ca_file = abs(tls.ca_file);
    if (tls.cert_file !== undefined) tls.cert_file = abs(tls.cert_file);
    if (tls.key_file !== undefined) tls.key_file = abs(tls.key_file);
  }
}

function schemaIssues(issues: readonly z.core.$ZodIssue[], doc: Document, lines: LineCounter): ConfigIssue[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...issue.path, key], message: 'unknown key' });
    } else if (issue.code === 'invalid_key') {
      out.push({ path: issue.path, message: `invalid key: ${issue.issues.map((i) => i.message).join('; ')}` });
    } else {
      out.push({ path: issue.path, message: issue.message });
    }
  }
  const located = out.map(({ path, message }) => {
    const line = lineOf(path, doc, lines);
    return { path: formatPath(path), message, ...(line !== undefined ? { line } : {}) };
  });
  // Reading order: an operator fixes the file top to bottom.
  return located.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

function withLines(issues: ConfigIssue[], doc: Document, lines: LineCounter): ConfigIssue[] {
  // Secret issues carry formatted paths; recover the segments to find their line.
  return issues.map((issue) => {
    const segments = issue.path.split(/\.|\[(\d+)\]/).filter((s) => s !== undefined && s !== '').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const line = lineOf(segments, doc, lines);
    return line !== undefined ? { ...issue, line } : issue;
  });
}

/** The 1-based line of the deepest node of `path` present in the YAML document. */
function lineOf(path: readonly PropertyKey[], doc: Document, lines: LineCounter): number | undefined {
  for (let depth = path.length; depth > 0; depth--) {
    const node = doc.getIn(path.slice(0, depth) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
