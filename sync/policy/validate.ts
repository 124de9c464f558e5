/**
 * The one check an agent runs on a fetched policy before applying it.
 *
 * Checks, in this order; the first failure refuses the policy with its code:
 *   POLICY_SIGNATURE  bad or malformed signature, unknown key id (nothing of an
 *                     unsigned document is trusted, so this comes before parsing)
 *   POLICY_SCHEMA     not YAML/JSON, or a field the schema refuses (named by path)
 *   POLICY_ROLLBACK   version below the last good one; the same version with other
 *                     content (by SHA-256, when `lastGoodSha256` is given; without it an
 *                     equal version is refused as "already applied")
 *   POLICY_EXPIRED    expires_at is not after now
 *   POLICY_SCOPE      this plant is not in `plants` and `plants` has no "*"
 *   POLICY_UNSAFE     safety.ts (floors without the flag, drop_oldest, cold ≤ warm)
 * Then the hot window is clamped to the disk budget (clamp.ts): a warning in
 * `effective.warnings`, not a refusal.
 *
 * Invariants: pure and total (never throws, never reads the clock or the disk); a
 * refusal says which version was refused (null when it could not be read) and why, so
 * the caller can keep its last good policy and report the reason.
 */
import type { EffectivePolicy, PolicyDocument } from '../../config/policy-schema.ts';
import { clampHotWindow } from './clamp.ts';
import { parsePolicyDocument } from './parse.ts';
import { baseDatasetPolicy, resolvePolicy, type PolicyBase } from './resolve.ts';
import { safetyProblem, type RetentionFloors } from './safety.ts';
import { sha256Hex, verifySignature, type TrustedKey } from './signature.ts';

export type PolicyRefusalCode = 'POLICY_SIGNATURE' | 'POLICY_SCHEMA' | 'POLICY_ROLLBACK' | 'POLICY_EXPIRED' | 'POLICY_SCOPE' | 'POLICY_UNSAFE';

export interface PolicyCheckInput {
  document: Uint8Array;
  signature: Uint8Array;
  trustedKeys: TrustedKey[];
  plant: string;
  /** The plant's dataset names (add `blobs` to cover the blob upload policy). */
  datasets: string[];
  base: PolicyBase;
  lastGoodVersion: number | null;
  /** SHA-256 (hex) of the last good document's bytes: lets the same version be re-checked (after a restart). */
  lastGoodSha256?: string | null;
  floors: RetentionFloors;
  /** The disk budget in bytes (tiering.disk_budget.max_bytes, or the filesystem size); null: no clamp. */
  diskBudgetBytes: number | null;
  /** Per dataset, the hot tier's recent growth in bytes per hour (for the clamp). */
  estimatedHotBytesPerHour?: Record<string, number>;
  nowMs: number;
}

export interface PolicyRefusal {
  ok: false;
  /** The refused document's version; null when it could not be read. */
  version: number | null;
  reason: string;
  code: PolicyRefusalCode;
}

export interface PolicyAccepted {
  ok: true;
  document: PolicyDocument;
  effective: EffectivePolicy;
  /** SHA-256 (hex) of the document's bytes: keep it as `lastGoodSha256`. */
  sha256: string;
}

export type PolicyDocumentCheck = PolicyAccepted | PolicyRefusal;
export type PolicyCheckResult = (PolicyAccepted & { keyId: string }) | PolicyRefusal;

export function checkPolicy(input: PolicyCheckInput): PolicyCheckResult {
  const signed = verifySignature(input.document, input.signature, input.trustedKeys);
  if (!signed.ok) return { ok: false, version: peekVersion(input.document), reason: signed.reason, code: 'POLICY_SIGNATURE' };
  const checked = checkPolicyDocument(input);
  return checked.ok ? { ...checked, keyId: signed.keyId } : checked;
}

/**
 * Every check but the signature, for `lakeside policy validate` before signing. An
 * agent must call `checkPolicy`, never this.
 */
export function checkPolicyDocument(input: Omit<PolicyCheckInput, 'signature' | 'trustedKeys'>): PolicyDocumentCheck {
  const parsed = parsePolicyDocument(input.document);
  if (!parsed.ok) return { ok: false, version: peekVersion(input.document), reason: parsed.reason, code: 'POLICY_SCHEMA' };
  const doc = parsed.document;
  const refuse = (code: PolicyRefusalCode, reason: string): PolicyRefusal => ({ ok: false, version: doc.version, reason, code });

  const sha256 = sha256Hex(input.document);
  const last = input.lastGoodVersion;
  if (last !== null && doc.version < last) return refuse('POLICY_ROLLBACK', `version ${doc.version} is older than the last good version ${last}`);
  if (last !== null && doc.version === last && input.lastGoodSha256 !== sha256) {
    return refuse(
      'POLICY_ROLLBACK',
      input.lastGoodSha256
        ? `version ${doc.version} was already applied with other content; a changed policy needs a higher version`
        : `version ${doc.version} is not newer than the last good version ${last}`,
    );
  }
  if (Date.parse(doc.expires_at) <= input.nowMs) return refuse('POLICY_EXPIRED', `expired at ${doc.expires_at}`);
  if (!doc.plants.includes('*') && !doc.plants.includes(input.plant)) {
    return refuse('POLICY_SCOPE', `plant ${input.plant} is not in the policy's plants (${doc.plants.join(', ')})`);
  }

  const effective = resolvePolicy(doc, input.plant, input.datasets, input.base);
  const unsafe = safetyProblem(doc, input.plant, effective, (d) => baseDatasetPolicy(input.base, d).overflow, input.floors);
  if (unsafe) return refuse('POLICY_UNSAFE', unsafe);
  clampHotWindow(effective, input.diskBudgetBytes, input.base.tiering.disk_budget.high_watermark_percent, input.estimatedHotBytesPerHour);
  return { ok: true, document: doc, effective, sha256 };
}

/** The version of a document that failed a check, for the refusal report; null if unreadable. */
function peekVersion(document: Uint8Array): number | null {
  const match = /(?:^|[{,])\s*"?version"?\s*:\s*(\d+)/m.exec(Buffer.from(document.subarray(0, 64 * 1024)).toString('utf8'));
  return match ? Number(match[1]) : null;
}
