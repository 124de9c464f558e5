/**
 * `lakeside doctor`, the services behind the endpoints: a TCP connection proves only
 * that something listens. Here each S3 store (`tiering.warm`, `tiering.cold`) is
 * listed (one key at most: the bucket exists, the credentials are accepted, listing is
 * allowed, which uploads and reconciliation need) and the REST catalog answers
 * `GET /v1/config` with the configured credentials (token or OAuth2). Read-only, like
 * every doctor check; errors name the config path and never carry a secret (the store's
 * and the catalog client's own error messages are redacted).
 */
import type { LoadedConfig } from '../../config/loader.ts';
import type { StoreConfig } from '../../config/tiering-schema.ts';
import { RestCatalog } from '../../sync/rest-catalog.ts';
import { openStore } from '../../tiering/stores/open-store.ts';
import type { CheckResult, DoctorCheck } from './doctor.ts';

/** Rejects with "no answer within N ms" when `work` takes longer. */
async function within<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function storeAnswers(path: string, config: StoreConfig, timeoutMs: number): Promise<CheckResult> {
  const store = await openStore(config);
  try {
    const first = await within(
      (async () => {
        for await (const object of store.list('')) return object;
        return null;
      })(),
      timeoutMs,
    );
    return { check: 's3', status: 'ok', detail: `${path}: ${config.url} listed (${first ? 'holds objects' : 'empty'})` };
  } catch (error) {
    return { check: 's3', status: 'fail', detail: `${path}: ${config.url} cannot be listed: ${(error as Error).message}` };
  } finally {
    await store.close().catch(() => {});
  }
}

async function catalogAnswers(loaded: LoadedConfig, timeoutMs: number): Promise<CheckResult> {
  const rest = loaded.config.catalog.rest!;
  const catalog = new RestCatalog({ config: rest });
  try {
    const server = await within(catalog.serverConfig(), timeoutMs);
    return { check: 'catalog', status: 'ok', detail: `catalog.rest.uri: GET /v1/config answered${server.prefix ? ` (prefix ${server.prefix})` : ''}` };
  } catch (error) {
    return { check: 'catalog', status: 'fail', detail: `catalog.rest.uri: GET /v1/config failed: ${(error as Error).message}` };
  } finally {
    await catalog.close().catch(() => {});
  }
}

export const servicesCheck: DoctorCheck = {
  name: 'services',
  applies: (loaded) =>
    loaded.config.catalog.type === 'rest' || (['warm', 'cold'] as const).some((tier) => loaded.config.tiering[tier]?.url.startsWith('s3://')),
  async run({ loaded, timeoutMs }) {
    const checks: Promise<CheckResult>[] = [];
    for (const tier of ['warm', 'cold'] as const) {
      const store = loaded.config.tiering[tier];
      if (store?.url.startsWith('s3://')) checks.push(storeAnswers(`tiering.${tier}`, store, timeoutMs));
    }
    if (loaded.config.catalog.type === 'rest' && loaded.config.catalog.rest) checks.push(catalogAnswers(loaded, timeoutMs));
    return Promise.all(checks);
  },
};
