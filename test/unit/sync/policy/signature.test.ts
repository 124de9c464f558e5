import { describe, expect, it } from 'vitest';
import { encodeSignatureFile, generateSigningKeyPair, parsePublicKey, signDocument, verifySignature } from '../../../../sync/policy/signature.ts';
import { policyBytes, signer } from './fixtures.ts';

describe('policy signatures', () => {
  it('writes the documented signature file and verifies over the exact bytes', () => {
    const key = signer('k1');
    const doc = policyBytes();
    const file = JSON.parse(Buffer.from(key.sign(doc)).toString('utf8')) as Record<string, string>;
    expect(Object.keys(file).sort()).toEqual(['alg', 'document_sha256', 'key_id', 'signature']);
    expect(file.alg).toBe('ed25519');
    expect(Buffer.from(file.signature!, 'base64')).toHaveLength(64);
    expect(verifySignature(doc, key.sign(doc), [key.trusted])).toEqual({ ok: true, keyId: 'k1' });
    // A trailing newline is a different document.
    expect(verifySignature(Buffer.concat([doc, Buffer.from('\n')]), key.sign(doc), [key.trusted]).ok).toBe(false);
  });

  it('still refuses a bad signature without the sha256 hint', () => {
    const key = signer('k1');
    const doc = policyBytes();
    const { document_sha256: _hint, ...bare } = signDocument(doc, key.privateKeyPem, 'k1');
    const forged = { ...bare, signature: Buffer.alloc(64, 1).toString('base64') };
    expect(verifySignature(doc, encodeSignatureFile(bare), [key.trusted]).ok).toBe(true);
    expect(verifySignature(doc, encodeSignatureFile(forged), [key.trusted])).toEqual({ ok: false, reason: 'signature does not match (tampered?)' });
  });

  it('gives public keys as raw base64 (32 bytes) and PEM, both usable', () => {
    const pair = generateSigningKeyPair();
    expect(Buffer.from(pair.publicKeyRaw, 'base64')).toHaveLength(32);
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(parsePublicKey(pair.publicKeyRaw).export({ format: 'pem', type: 'spki' })).toBe(pair.publicKeyPem);
    expect(() => parsePublicKey('bm90IGEga2V5')).toThrow(/raw 32-byte Ed25519/);
  });

  it('names malformed signature files and unusable trusted keys', () => {
    const doc = policyBytes();
    expect(verifySignature(doc, Buffer.from('nope'), [])).toEqual({ ok: false, reason: 'malformed signature file: not JSON' });
    expect(verifySignature(doc, Buffer.from('{"alg":"rsa","key_id":"k","signature":"AA=="}'), []).ok).toBe(false);
    const key = signer('k1');
    const result = verifySignature(doc, key.sign(doc), [{ id: 'k1', public_key: 'garbage' }]);
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/^trusted key k1 is unusable/) });
  });
});
