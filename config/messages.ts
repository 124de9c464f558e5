/**
 * Turns zod issues into sentences an operator reads: "expected a string, got a
 * number", not "Invalid input: expected string, received number". Messages written in
 * the schema itself take precedence (zod applies a schema's own message first).
 *
 * Invariant: a message never quotes a string the user wrote, except the value of a
 * closed-set field (an enum such as log_level, cut to 40 characters), so an inline
 * secret is never echoed back.
 */
import type { z } from 'zod';

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  record: 'a mapping (key: value)',
  literal: 'a fixed value',
};

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return Number.isInteger(value) ? 'a number' : 'a fractional number';
    case 'boolean':
      return `${value}`;
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

function preview(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function sizeMessage(origin: string, bound: number | bigint, inclusive: boolean | undefined, small: boolean): string {
  if (origin === 'string') {
    if (small && Number(bound) <= 1) return 'must not be empty';
    return `must be at ${small ? 'least' : 'most'} ${bound} characters`;
  }
  if (origin === 'array' || origin === 'set') {
    if (small && Number(bound) <= 1) return 'needs at least one entry';
    return `needs at ${small ? 'least' : 'most'} ${bound} entries`;
  }
  if (inclusive === false) return `must be ${small ? 'greater' : 'less'} than ${bound}`;
  return `must be at ${small ? 'least' : 'most'} ${bound}`;
}

/** A per-parse zod error map; only called for issues the schema gave no message. */
export const friendlyErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'is required';
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      return `expected ${expected}, got ${describeValue(issue.input)}`;
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v)));
      const expected = options.length === 1 ? `expected ${options[0]}` : `expected one of ${options.join(', ')}`;
      return issue.input === undefined ? `is required (${expected})` : `${expected}, got ${preview(issue.input)}`;
    }
    case 'invalid_union': {
      const branches = issue.errors.map((branch) => (branch.length === 1 && branch[0]!.code === 'invalid_type' ? branch[0]! : null));
      if (branches.every((b) => b !== null)) {
        const names = branches.map((b) => EXPECTED[(b as { expected: string }).expected] ?? 'another type');
        const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names.join('');
        return `expected ${list}, got ${describeValue(issue.input)}`;
      }
      return 'does not match any of the allowed forms';
    }
    case 'too_small':
      return sizeMessage(issue.origin, issue.minimum, issue.inclusive, true);
    case 'too_big':
      return sizeMessage(issue.origin, issue.maximum, issue.inclusive, false);
    case 'invalid_format':
      return `has the wrong format (${issue.format})`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_key':
      return 'invalid key';
    default:
      return undefined;
  }
};
