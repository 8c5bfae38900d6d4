import type { BatchProof, BatchSignature, SignedEvent, Unsigned } from '../types/usage.js';
import { decodeBase64Strict, encodeBase64, signDetached, signingBytes, verifyDetached } from './ed25519.js';
import { batchSigningBytes, merkleInclusionProofs, merkleLeafHash, merkleRoot, verifyMerkleInclusion } from '@kaching/sdk/protocol';

/** Signed batches (`BatchSignature`, protocol/events.ts): the server side — proofs per event and their checks. */
export function batchLeafHashes(events: readonly (SignedEvent | Unsigned<SignedEvent>)[]): Buffer[] {
  return events.map((e) => merkleLeafHash(signingBytes(e)));
}

/** Signs a batch as an agent does: leaves in the order given. */
export function signBatch(events: readonly Unsigned<SignedEvent>[], keyId: string, secretKey: Uint8Array): BatchSignature {
  const root = merkleRoot(batchLeafHashes(events));
  const signature = signDetached(batchSigningBytes(root, events.length), secretKey);
  return { algo: 'ed25519', key_id: keyId, tree_size: events.length, root: encodeBase64(root), signature: encodeBase64(signature) };
}

/**
 * Each event's proof, given its leaf hashes and the batch signature already checked against them.
 * `BatchProof` goes into the stored record's ingest facts so the event verifies on its own, for years.
 */
export function batchProofs(leaves: readonly Uint8Array[], sig: BatchSignature): BatchProof[] {
  return merkleInclusionProofs(leaves).map((path, i) => ({
    key_id: sig.key_id,
    root: sig.root,
    signature: sig.signature,
    leaf_index: i,
    tree_size: leaves.length,
    path: path.map(encodeBase64),
  }));
}

/** The tree head of these leaves, if it is the signed one and the signature is valid. Never throws. */
export function verifyBatchRoot(leaves: readonly Uint8Array[], sig: BatchSignature, publicKey: Uint8Array): boolean {
  try {
    if (leaves.length === 0 || sig.tree_size !== leaves.length) return false;
    const claimed = decodeBase64Strict(sig.root);
    const signature = decodeBase64Strict(sig.signature);
    if (!claimed || claimed.length !== 32 || !signature) return false;
    if (!merkleRoot(leaves).equals(claimed)) return false;
    return verifyDetached(signature, batchSigningBytes(claimed, leaves.length), publicKey);
  } catch {
    return false;
  }
}

/** Proves one stored event on its own: its leaf is in the signed tree, and the tree head's signature holds. */
export function verifyBatchProof(event: SignedEvent | Unsigned<SignedEvent>, proof: BatchProof, publicKey: Uint8Array): boolean {
  try {
    const root = decodeBase64Strict(proof.root);
    const signature = decodeBase64Strict(proof.signature);
    const path = proof.path.map((p) => decodeBase64Strict(p));
    if (!root || root.length !== 32 || !signature || path.some((p) => !p)) return false;
    if (!verifyMerkleInclusion(merkleLeafHash(signingBytes(event)), proof.leaf_index, proof.tree_size, path as Uint8Array[], root)) return false;
    return verifyDetached(signature, batchSigningBytes(root, proof.tree_size), publicKey);
  } catch {
    return false;
  }
}
