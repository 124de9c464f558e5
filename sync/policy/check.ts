/**
 * The agent's side of the contract with the policy validator (sync/policy/validate.ts,
 * written beside this on its own branch): what `checkPolicy` takes and answers, and a
 * loader that finds it at run time.
 *
 * Invariants:
 * - Every policy the agent applies went through `checkPolicy` (signature, schema,
 *   version, expiry, plant scope, safety) in this process: the one fetched, and the
 *   last good one re-read from disk at start.
 * - Without a validator module the agent refuses every policy (code
 *   POLICY_VALIDATOR_MISSING): it never applies an unchecked one.
 *
 * The import is dynamic so this branch builds before validate.ts lands; once both are
 * merged it may become a static `import { checkPolicy } from './validate.ts'`.
 */
import type { AgentPolicyConfig, EffectivePolicy, PolicyDocument } from '../../config/policy-schema.ts';
import type { TieringConfig } from '../../config/tiering-schema.ts';

export interface PolicyCheckInput {
  document: Uint8Array;
  signature: Uint8Array;
  trustedKeys: AgentPolicyConfig['trusted_keys'];
  plant: string;
  /** The plant's datasets, and `blobs` for the blob upload policy. */
  datasets: string[];
  /** The config file's settings: what the policy is resolved over. */
  base: { tiering: TieringConfig; hot: { compaction_window_minutes: number } };
  lastGoodVersion: number | null;
  /** SHA-256 (hex) of the last good document: the same version with the same bytes is re-checked, not refused. */
  lastGoodSha256?: string | null;
  floors: AgentPolicyConfig['floors'];
  diskBudgetBytes: number | null;
  estimatedHotBytesPerHour?: Record<string, number>;
  nowMs: number;
}

export type PolicyCheckResult =
  | { ok: true; document: PolicyDocument; effective: EffectivePolicy }
  | { ok: false; version: number | null; reason: string; code: string };

export type PolicyChecker = (input: PolicyCheckInput) => PolicyCheckResult | Promise<PolicyCheckResult>;

const VALIDATOR_MODULE = './validate.ts';

/** The validator's `checkPolicy`, or a checker that refuses everything when it is absent. */
export async function loadPolicyChecker(): Promise<PolicyChecker> {
  try {
    const module = (await import(VALIDATOR_MODULE)) as { checkPolicy?: PolicyChecker };
    if (typeof module.checkPolicy === 'function') return module.checkPolicy;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
  return () => ({ ok: false, version: null, code: 'POLICY_VALIDATOR_MISSING', reason: 'this build has no policy validator (sync/policy/validate.ts): no policy is applied' });
}
