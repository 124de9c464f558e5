/**
 * Publishes a signed policy to the central location an agent polls: the `.sig` FIRST,
 * then the document.
 *
 * Why that order: agents fetch the document first and its signature second (the
 * document's ETag decides whether anything changed). With the signature written
 * before the document, an agent that sees the new document always reads a signature
 * written no earlier than that document's own: the pair matches. An agent that reads
 * the old document while the new signature is already up gets a mismatch (the
 * signature's `document_sha256` says it is for another document), refuses it as
 * POLICY_SIGNATURE, keeps its last good policy and succeeds on its next poll. Writing
 * the document first would make agents see the NEW document with the OLD signature.
 *
 * Object stores only create (tiering/stores/object-store.ts: never a second object for
 * a key), so replacing an object is delete + create. Between the two the key is absent:
 * an agent polling then sees "not found", which it treats like an unreachable centre
 * (keeps its last good policy). An object already holding the same bytes is left alone,
 * so publishing twice is a no-op.
 *
 * Invariant: the caller verifies the signature against the trusted keys before calling
 * (policy-command.ts does), so a bad pair is never published.
 */
import type { ObjectStore } from '../../tiering/stores/object-store.ts';
import { sha256Hex } from './signature.ts';

export interface PublishedObject {
  key: string;
  replaced: boolean;
  unchanged: boolean;
}

async function replaceObject(store: ObjectStore, key: string, bytes: Uint8Array, contentType: string): Promise<PublishedObject> {
  const existing = await store.head(key);
  if (existing && existing.sizeBytes === bytes.length && existing.sha256 === sha256Hex(bytes)) return { key, replaced: false, unchanged: true };
  if (existing) await store.delete(key);
  await store.putBytes(key, bytes, contentType);
  return { key, replaced: existing !== null, unchanged: false };
}

export async function publishPolicy(store: ObjectStore, key: string, document: Uint8Array, signature: Uint8Array, signatureKey = `${key}.sig`): Promise<PublishedObject[]> {
  const sig = await replaceObject(store, signatureKey, signature, 'application/json');
  const doc = await replaceObject(store, key, document, key.endsWith('.json') ? 'application/json' : 'application/yaml');
  return [sig, doc];
}
