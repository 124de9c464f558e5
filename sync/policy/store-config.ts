/**
 * The object-store settings for an `s3://` or `file:` policy or status location: the
 * agent's `policy.store` (the keys of `tiering.warm`, `url` ignored) with the
 * location's bucket or directory as `url`.
 *
 * Invariant: the settings are validated BEFORE secret references are resolved (the
 * schema only accepts `${env:…}` / `${file:…}` references, never inline values), then
 * resolved; problems come back as messages naming the field, never a secret's value.
 */
import { isAbsolute, resolve } from 'node:path';
import { formatPath } from '../../config/errors.ts';
import { resolveSecrets } from '../../config/secrets.ts';
import { storeSchema, type StoreConfig } from '../../config/tiering-schema.ts';

export function policyStoreConfig(
  storeUrl: string,
  settings: Record<string, unknown> | undefined,
  options: { baseDir: string; env: Record<string, string | undefined> },
): { ok: true; store: StoreConfig } | { ok: false; problems: string[] } {
  // S3 settings mean nothing to a local directory.
  const parsed = storeSchema.safeParse(storeUrl.startsWith('file:') ? { url: storeUrl } : { ...settings, url: storeUrl });
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.map((i) => `policy.store.${formatPath(i.path) || 'url'}: ${i.message}`) };
  const store = parsed.data;
  if (store.credentials?.file !== undefined && !isAbsolute(store.credentials.file)) store.credentials.file = resolve(options.baseDir, store.credentials.file);
  const secrets = resolveSecrets(store, options);
  if (secrets.issues.length > 0) return { ok: false, problems: secrets.issues.map((i) => `policy.store.${i.path}: ${i.message}`) };
  return { ok: true, store };
}
