import { describe, expect, it } from 'vitest';
import { policyStoreConfig } from '../../../../sync/policy/store-config.ts';

describe('policyStoreConfig', () => {
  const credentials = { access_key_id: '${env:POLICY_KEY}', secret_access_key: '${env:POLICY_SECRET}' };

  it('validates the references, then resolves them', () => {
    const result = policyStoreConfig('s3://central', { endpoint: 'http://127.0.0.1:9000', credentials }, { baseDir: '/etc/lakeside', env: { POLICY_KEY: 'AK', POLICY_SECRET: 'SK' } });
    if (!result.ok) throw new Error(result.problems.join('; '));
    expect(result.store).toMatchObject({ url: 's3://central', endpoint: 'http://127.0.0.1:9000', credentials: { access_key_id: 'AK', secret_access_key: 'SK' } });
  });

  it('names a missing variable and an inline secret, never a value', () => {
    const missing = policyStoreConfig('s3://central', { credentials }, { baseDir: '/', env: { POLICY_KEY: 'AK' } });
    expect(missing).toEqual({ ok: false, problems: ['policy.store.credentials.secret_access_key: environment variable POLICY_SECRET is not set'] });
    const inline = policyStoreConfig('s3://central', { credentials: { access_key_id: 'AKIA123', secret_access_key: 'hunter2' } }, { baseDir: '/', env: {} });
    expect(inline.ok).toBe(false);
    expect(JSON.stringify(inline)).not.toContain('hunter2');
  });

  it('ignores S3 settings for a file: location', () => {
    const result = policyStoreConfig('file:///srv/central', { endpoint: 'http://x:9000', credentials }, { baseDir: '/', env: {} });
    expect(result).toMatchObject({ ok: true, store: { url: 'file:///srv/central' } });
  });
});
