/**
 * Parses a policy document's bytes (YAML or JSON; JSON is YAML) against
 * `policyDocumentSchema`.
 *
 * Invariant: a failure names the field by its path (`defaults.datasets.frames.overflow:
 * …`) and the YAML line where it can be found, and never throws.
 */
import { LineCounter, parseDocument } from 'yaml';
import { formatPath } from '../../config/errors.ts';
import { friendlyErrorMap } from '../../config/messages.ts';
import { policyDocumentSchema, type PolicyDocument } from '../../config/policy-schema.ts';

export type ParsedPolicy = { ok: true; document: PolicyDocument } | { ok: false; reason: string };

export function parsePolicyDocument(bytes: Uint8Array): ParsedPolicy {
  const lines = new LineCounter();
  const doc = parseDocument(Buffer.from(bytes).toString('utf8'), { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    const pos = lines.linePos(error.pos[0]);
    return { ok: false, reason: `line ${pos.line}:${pos.col}: syntax error: ${error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` };
  }
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) return { ok: false, reason: '(root): the document is empty' };
  const parsed = policyDocumentSchema.safeParse(raw, { error: friendlyErrorMap });
  if (parsed.success) return { ok: true, document: parsed.data };
  const problems = parsed.error.issues.map((issue) => {
    const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
    const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? ` (and ${issue.keys.slice(1).join(', ')})` : ''}` : issue.message;
    const node = path.length > 0 ? (doc.getIn(path as unknown[], true) as { range?: [number, number, number] } | undefined) : undefined;
    const line = node && typeof node === 'object' && node.range ? ` (line ${lines.linePos(node.range[0]).line})` : '';
    return `${formatPath(path) || '(root)'}: ${message}${line}`;
  });
  return { ok: false, reason: problems.join('; ') };
}
