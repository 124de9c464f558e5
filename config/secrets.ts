/**
 * Secret references (`${env:NAME}`, `${file:/path}`) in a validated config, resolved
 * in place, and the redaction that keeps their values out of logs.
 *
 * Invariants:
 * - An error or warning names the config path, the variable or the file, never a value.
 * - Every object on the way from the config root to a resolved secret gets
 *   non-enumerable `toJSON`, `toString` and `util.inspect` hooks that redact it, so
 *   `JSON.stringify(config)`, `${config}` and `console.log(config)` cannot leak it;
 *   code that reads the field itself (the MQTT client) gets the real value.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { inspect } from 'node:util';
import { SECRET_REF } from './schema.ts';
import { formatPath, type ConfigIssue } from './errors.ts';

export const REDACTED = '<redacted>';

type Path = (string | number)[];

/** Secret paths relative to each object that contains (or leads to) a secret. */
const secretsBelow = new WeakMap<object, Path[]>();
/** The file each `${file:…}` secret was read from, by the object holding it and its key. */
const secretFiles = new WeakMap<object, Map<string | number, string>>();

/**
 * The file a resolved secret came from (`${file:…}`), or undefined (an `${env:…}`
 * secret, or an object that is not the one the loader resolved). Lets a client re-read
 * a secret that another process rotates (e.g. a short-lived OAuth token).
 */
export function secretFileOf(holder: object, key: string | number): string | undefined {
  return secretFiles.get(holder)?.get(key);
}

/** A secret file's text as the loader reads it (one trailing newline dropped); throws if unreadable or empty. */
export function readSecretFile(file: string): string {
  const text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (text === '') throw Object.assign(new Error(`secret file ${file} is empty`), { code: 'EMPTY' });
  return text;
}

export interface SecretResolution {
  issues: ConfigIssue[];
  warnings: string[];
}

export interface SecretOptions {
  env: Record<string, string | undefined>;
  /** Relative `${file:…}` paths resolve against this directory (the config's). */
  baseDir: string;
}

/** Replaces every secret reference in `root` by its value; reports what could not be resolved. */
export function resolveSecrets(root: object, options: SecretOptions): SecretResolution {
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const found: Path[] = [];
  walk(root, [], (holder, key, value, path) => {
    const match = SECRET_REF.exec(value);
    if (!match) return;
    const [, kind, ref] = match as unknown as [string, 'env' | 'file', string];
    const where = formatPath(path);
    let secret: string | null = null;
    if (kind === 'env') {
      const envValue = options.env[ref];
      if (envValue === undefined) issues.push({ path: where, message: `environment variable ${ref} is not set` });
      else if (envValue === '') issues.push({ path: where, message: `environment variable ${ref} is empty` });
      else secret = envValue;
    } else {
      const file = isAbsolute(ref) ? ref : resolve(options.baseDir, ref);
      try {
        const text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        if (text === '') issues.push({ path: where, message: `secret file ${file} is empty` });
        else {
          secret = text;
          const files = secretFiles.get(holder) ?? new Map<string | number, string>();
          files.set(key, file);
          secretFiles.set(holder, files);
        }
        const mode = statSync(file).mode & 0o777;
        if (mode & 0o077) {
          warnings.push(`${where}: secret file ${file} is readable by group or others (mode ${mode.toString(8).padStart(3, '0')}); chmod 600 it`);
        }
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
        issues.push({ path: where, message: `cannot read secret file ${file} (${code})` });
      }
    }
    if (secret !== null) {
      holder[key] = secret;
      found.push(path);
    }
  });
  for (const path of found) protect(root, path);
  return { issues, warnings };
}

/** A deep copy of `config` for logging, with every resolved secret (and any `password`) replaced. */
export function redactConfig<T>(config: T): T {
  const copy = plainCopy(config) as T;
  if (config !== null && typeof config === 'object') {
    for (const path of secretsBelow.get(config) ?? []) setAt(copy, path, REDACTED);
  }
  // Defence in depth for configs that did not come through the loader.
  walk(copy as object, [], (holder, key, value) => {
    if (key === 'password' && !SECRET_REF.test(value)) holder[key] = REDACTED;
  });
  return copy;
}

function protect(root: object, path: Path): void {
  let node: unknown = root;
  for (let depth = 0; depth < path.length && node !== null && typeof node === 'object'; depth++) {
    const below = secretsBelow.get(node);
    if (below) below.push(path.slice(depth));
    else {
      secretsBelow.set(node, [path.slice(depth)]);
      const target = node;
      const hooks = {
        toJSON: () => redactConfig(target),
        toString: () => JSON.stringify(redactConfig(target)),
        [inspect.custom]: (_depth: number, opts: object) => inspect(redactConfig(target), opts),
      };
      for (const key of Reflect.ownKeys(hooks)) {
        Object.defineProperty(target, key, { value: hooks[key as keyof typeof hooks], enumerable: false, configurable: true });
      }
    }
    node = (node as Record<string | number, unknown>)[path[depth]!];
  }
}

type Visit = (holder: Record<string | number, unknown>, key: string | number, value: string, path: Path) => void;

function walk(node: object, path: Path, visit: Visit): void {
  const holder = node as Record<string | number, unknown>;
  const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
  for (const key of keys) {
    const value = holder[key];
    if (typeof value === 'string') visit(holder, key, value, [...path, key]);
    else if (value !== null && typeof value === 'object') walk(value, [...path, key], visit);
  }
}

function plainCopy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plainCopy);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) out[key] = plainCopy((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

function setAt(root: unknown, path: Path, value: unknown): void {
  let node = root as Record<string | number, unknown> | undefined;
  for (let i = 0; i < path.length - 1 && node; i++) node = node[path[i]!] as Record<string | number, unknown> | undefined;
  if (node && typeof node === 'object') node[path.at(-1)!] = value;
}
