/**
 * Folder path patterns such as `{line}/{camera}/{file}`: each `{name}` captures the
 * text of one path segment (or part of one, as in `{camera}_{file}`); `{file}` in the
 * last segment is simply the file name. Literal text must match exactly.
 *
 * Invariants: paths are relative, `/`-separated, without empty, `.` or `..` segments;
 * a placeholder never spans a `/`.
 */

export type PathMatch = { ok: true; fields: Record<string, string> } | { ok: false; reasonCode: 'path_mismatch'; reason: string };

export interface CompiledPathPattern {
  pattern: string;
  names: readonly string[];
  match(relativePath: string): PathMatch;
}

const PLACEHOLDER = /\{([a-z][a-z0-9_]{0,62})\}/g;

export function compilePathPattern(pattern: string): CompiledPathPattern {
  const names: string[] = [];
  let source = '';
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    if (names.includes(m[1]!)) throw new Error(`path_pattern "${pattern}": {${m[1]}} appears twice`);
    names.push(m[1]!);
    source += escape(pattern.slice(last, m.index)) + '([^/]+?)';
    last = m.index + m[0].length;
  }
  const tail = pattern.slice(last);
  if (/[{}]/.test(pattern.replace(PLACEHOLDER, ''))) throw new Error(`path_pattern "${pattern}": unbalanced { or }`);
  const regex = new RegExp(`^${source}${escape(tail)}$`);
  const segments = pattern.split('/').length;
  return {
    pattern,
    names,
    match(relativePath) {
      const path = relativePath.startsWith('./') ? relativePath.slice(2) : relativePath;
      const parts = path.split('/');
      if (parts.some((p) => p === '' || p === '.' || p === '..')) {
        return { ok: false, reasonCode: 'path_mismatch', reason: `path "${path}" has an empty, "." or ".." segment` };
      }
      const m = regex.exec(path);
      if (!m) {
        const depth = parts.length === segments ? '' : ` (${parts.length} levels, the pattern has ${segments})`;
        return { ok: false, reasonCode: 'path_mismatch', reason: `path "${path}" does not match "${pattern}"${depth}` };
      }
      const fields: Record<string, string> = {};
      names.forEach((name, i) => (fields[name] = m[i + 1]!));
      return { ok: true, fields };
    },
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
