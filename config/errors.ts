/**
 * The one error type of a bad config: every problem found, each naming the field by
 * its path (`sources.mqtt[0].url`), so an operator can fix them all in one go.
 *
 * Invariant: neither `issues` nor `message` ever holds a secret value; callers build
 * messages from paths, variable names and file names only.
 */

export interface ConfigIssue {
  /** Dotted path with array indexes, e.g. `sources.mqtt[0].url`; `(root)` for the whole file. */
  path: string;
  message: string;
  /** 1-based line in the YAML source, when the path could be located there. */
  line?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly source: string;
  readonly issues: ConfigIssue[];
  /** A bad config does not get better by retrying; it needs an edit. */
  readonly retriable = false;

  constructor(source: string, issues: ConfigIssue[]) {
    super(`invalid config ${source}:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
    this.source = source;
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return `${issue.path}: ${issue.message}${issue.line !== undefined ? ` (line ${issue.line})` : ''}`;
}

/** `['sources', 'mqtt', 0, 'url']` → `sources.mqtt[0].url`; odd keys are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out === '' ? '(root)' : out;
}
