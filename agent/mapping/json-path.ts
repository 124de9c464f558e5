/**
 * JSON paths into a parsed payload: `a.b[0].c`, compiled once into steps.
 * The grammar is the schema's `JSON_PATH`: a key is any run of characters other than
 * `.`, `[` and `]`; `[n]` indexes an array. Keys containing dots cannot be addressed.
 *
 * Invariant: evaluation reads own properties only, so a path like `constructor` or
 * `__proto__` finds nothing rather than something inherited from Object.prototype.
 */
import { JSON_PATH } from '../../config/schema.ts';

export interface CompiledJsonPath {
  text: string;
  steps: readonly (string | number)[];
  /** The value at the path, or undefined when any step is absent or of the wrong kind. */
  get(root: unknown): unknown;
  /** True when the first step indexes an array (the payload's root must be an array). */
  rootIsArray: boolean;
}

const STEP = /\.?([^.[\]]+)|\[(\d+)\]/g;

export function compileJsonPath(text: string): CompiledJsonPath {
  if (!JSON_PATH.test(text)) throw new Error(`invalid JSON path "${text}"`);
  const steps: (string | number)[] = [];
  for (const match of text.matchAll(STEP)) steps.push(match[2] !== undefined ? Number(match[2]) : match[1]!);
  const get = steps.length === 1 && typeof steps[0] === 'string' ? getOneKey(steps[0]) : getSteps(steps);
  return { text, steps, get, rootIsArray: typeof steps[0] === 'number' };
}

// The common case, a top-level key, without the loop.
function getOneKey(key: string): (root: unknown) => unknown {
  return (root) =>
    root !== null && typeof root === 'object' && !Array.isArray(root) && Object.hasOwn(root, key)
      ? (root as Record<string, unknown>)[key]
      : undefined;
}

function getSteps(steps: readonly (string | number)[]): (root: unknown) => unknown {
  return (root) => {
    let node = root;
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      if (node === null || typeof node !== 'object') return undefined;
      if (typeof step === 'number') {
        if (!Array.isArray(node) || step >= node.length) return undefined;
        node = node[step];
      } else {
        if (Array.isArray(node) || !Object.hasOwn(node, step)) return undefined;
        node = (node as Record<string, unknown>)[step];
      }
    }
    return node;
  };
}
