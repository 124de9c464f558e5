/**
 * Detached Ed25519 signatures of policy documents, with key ids (REFERENCE §9).
 *
 * Signature file (`<document>.sig`), JSON:
 *   { "alg": "ed25519", "key_id": "central-2026", "signature": "<base64, 64 bytes>",
 *     "document_sha256": "<hex>" }
 * The signature covers the EXACT bytes of the document file (no parsing, no
 * canonicalisation: a changed byte, even whitespace, fails). `document_sha256` is a
 * hint, not a trust anchor: it lets a reader tell "this signature belongs to another
 * document" (a publish in progress, see publish.ts) from "tampered"; both are refused.
 *
 * Keys: the private key is PEM (PKCS#8), written with mode 0600; the public key is
 * given as base64 of the raw 32 bytes or as PEM (SPKI). An agent trusts a set of
 * {id, public_key}: several at once, so a new key can be rolled out before the old one
 * is retired.
 *
 * Invariant: `verifySignature` returns ok only when the key id is trusted AND the
 * signature verifies under that key's public key over the given bytes.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

export interface TrustedKey {
  id: string;
  /** Base64 of the raw 32-byte Ed25519 public key, or PEM (SPKI). */
  public_key: string;
}

const signatureFileSchema = z.strictObject({
  alg: z.literal('ed25519'),
  key_id: z.string().min(1),
  signature: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64'),
  document_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type SignatureFile = z.infer<typeof signatureFileSchema>;

// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows it.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface GeneratedKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  /** Base64 of the raw 32 bytes: what goes in an agent's `policy.trusted_keys`. */
  publicKeyRaw: string;
}

export function generateSigningKeyPair(): GeneratedKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeyRaw: der.subarray(SPKI_ED25519_PREFIX.length).toString('base64'),
  };
}

/** A public key from raw base64 (32 bytes) or PEM; throws naming what is wrong. */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  if (trimmed.startsWith('-----BEGIN')) {
    key = createPublicKey(trimmed);
  } else {
    const raw = Buffer.from(trimmed, 'base64');
    if (raw.length !== 32 || raw.toString('base64').replace(/=+$/, '') !== trimmed.replace(/=+$/, '')) {
      throw new Error('expected base64 of a raw 32-byte Ed25519 public key, or a PEM public key');
    }
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

export function signDocument(document: Uint8Array, privateKeyPem: string, keyId: string): SignatureFile {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 private key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return {
    alg: 'ed25519',
    key_id: keyId,
    signature: sign(null, document, key).toString('base64'),
    document_sha256: sha256Hex(document),
  };
}

export function encodeSignatureFile(signature: SignatureFile): Uint8Array {
  return Buffer.from(`${JSON.stringify(signature, null, 2)}\n`);
}

export type SignatureCheck = { ok: true; keyId: string } | { ok: false; reason: string };

export function verifySignature(document: Uint8Array, signatureFile: Uint8Array, trustedKeys: readonly TrustedKey[]): SignatureCheck {
  let parsed: SignatureFile;
  try {
    const result = signatureFileSchema.safeParse(JSON.parse(Buffer.from(signatureFile).toString('utf8')));
    if (!result.success) {
      const issue = result.error.issues[0]!;
      return { ok: false, reason: `malformed signature file: ${issue.path.join('.') || '(root)'}: ${issue.message}` };
    }
    parsed = result.data;
  } catch {
    return { ok: false, reason: 'malformed signature file: not JSON' };
  }
  const trusted = trustedKeys.find((k) => k.id === parsed.key_id);
  if (!trusted) return { ok: false, reason: `unknown key ${parsed.key_id}` };
  let key: KeyObject;
  try {
    key = parsePublicKey(trusted.public_key);
  } catch (error) {
    return { ok: false, reason: `trusted key ${trusted.id} is unusable: ${(error as Error).message}` };
  }
  if (verify(null, document, key, Buffer.from(parsed.signature, 'base64'))) return { ok: true, keyId: parsed.key_id };
  if (parsed.document_sha256 !== undefined && parsed.document_sha256 !== sha256Hex(document)) {
    return { ok: false, reason: `signature does not match (tampered?): it was made for a document with sha256 ${parsed.document_sha256.slice(0, 12)}…, not this one (a publish in progress, or a changed document)` };
  }
  return { ok: false, reason: 'signature does not match (tampered?)' };
}
