/** Shared fixtures of the policy tests: a signing key, a document builder, a base config. */
import { stringify } from 'yaml';
import { DEFAULT_TIERING } from '../../../../config/tiering-schema.ts';
import type { PolicyBase } from '../../../../sync/policy/resolve.ts';
import { encodeSignatureFile, generateSigningKeyPair, signDocument, type TrustedKey } from '../../../../sync/policy/signature.ts';

export const NOW_MS = Date.parse('2026-11-21T12:00:00Z');

export function signer(id: string) {
  const pair = generateSigningKeyPair();
  const trusted: TrustedKey = { id, public_key: pair.publicKeyRaw };
  return { ...pair, id, trusted, sign: (doc: Uint8Array) => encodeSignatureFile(signDocument(doc, pair.privateKeyPem, id)) };
}

export function policyBytes(overrides: Record<string, unknown> = {}): Uint8Array {
  const doc = {
    version: 5,
    issued_at: '2026-11-20T00:00:00Z',
    expires_at: '2026-12-31T00:00:00Z',
    plants: ['*'],
    defaults: { datasets: { '*': { hot_retention_hours: 48 } } },
    ...overrides,
  };
  return Buffer.from(stringify(doc));
}

export const BASE: PolicyBase = {
  tiering: {
    ...DEFAULT_TIERING,
    hot_retention_hours: 72,
    warm_retention_days: 90,
    cold_retention_days: 730,
    cold: { storage_class: 'GLACIER_IR' },
    datasets: { frames: { priority: -5, upload_windows: ['* 22-23 * * *'], overflow: 'drop_oldest' } },
  },
  hot: { compaction_window_minutes: 10 },
};

export const FLOORS = { hot_retention_hours: 24, warm_retention_days: 7, cold_retention_days: 365 };
