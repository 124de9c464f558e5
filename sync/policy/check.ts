/**
 * The agent's side of the contract with the policy validator (validate.ts): what the
 * agent gives `checkPolicy` and what it reads back, typed here so the agent's tests can
 * use a stand-in, and checked against the real one below.
 *
 * Invariant: every policy the agent applies went through `checkPolicy` (signature,
 * schema, version, expiry, plant scope, safety) in this process: the one fetched, and
 * the last good one re-read from disk at start.
 */
import { checkPolicy } from './validate.ts';
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

/** The validator itself, typed as the agent uses it (the assignment checks the two contracts agree). */
export const validatorChecker: PolicyChecker = checkPolicy;
