import { createHash } from 'node:crypto';
import { canonicalize } from './canonicalize.js';

/**
 * Merkle trees over a batch of events, hashed as RFC 9162 (Certificate Transparency v2, §2.1) does:
 * a leaf is SHA-256(0x00 ‖ event's signing bytes), an inner node SHA-256(0x01 ‖ left ‖ right), and a tree of
 * n leaves splits at the largest power of two below n. The 0x00/0x01 prefixes keep a leaf from ever being
 * passed off as an inner node (second-preimage attacks). One Ed25519 signature over the root then proves
 * every event of the batch, and each event keeps its own inclusion proof, so it stays verifiable alone.
 */

const LEAF = Buffer.from([0x00]);
const NODE = Buffer.from([0x01]);

/** SHA-256(0x00 ‖ bytes): the leaf hash of one event's signing bytes (JCS of the event without `sig`). */
export function merkleLeafHash(signingBytes: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF).update(signingBytes).digest();
}

function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

/** Largest power of two strictly smaller than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The tree head (MTH) over leaf hashes. An empty batch has no root: there is nothing to sign. */
export function merkleRoot(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 0) throw new RangeError('a Merkle tree needs at least one leaf');
  return rootOf(leaves, 0, leaves.length);
}

function rootOf(leaves: readonly Uint8Array[], from: number, to: number): Buffer {
  if (to - from === 1) return Buffer.from(leaves[from]!);
  const k = split(to - from);
  return nodeHash(rootOf(leaves, from, from + k), rootOf(leaves, from + k, to));
}

/**
 * Every leaf's inclusion proof (RFC 9162 §2.1.3.1 PATH(m, D[n])): sibling hashes from the leaf level up.
 * Built in one pass over the tree, O(n log n) hashes for n leaves.
 */
export function merkleInclusionProofs(leaves: readonly Uint8Array[]): Buffer[][] {
  if (leaves.length === 0) throw new RangeError('a Merkle tree needs at least one leaf');
  const proofs: Buffer[][] = leaves.map(() => []);
  const walk = (from: number, to: number): Buffer => {
    if (to - from === 1) return Buffer.from(leaves[from]!);
    const k = split(to - from);
    const left = walk(from, from + k);
    const right = walk(from + k, to);
    // deeper levels were pushed first, so each path reads leaf level first
    for (let i = from; i < from + k; i++) proofs[i]!.push(right);
    for (let i = from + k; i < to; i++) proofs[i]!.push(left);
    return nodeHash(left, right);
  };
  walk(0, leaves.length);
  return proofs;
}

/** RFC 9162 §2.1.3.2: does `path` prove leaf `index` of a tree of `size` leaves with head `root`? Never throws. */
export function verifyMerkleInclusion(leafHash: Uint8Array, index: number, size: number, path: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (leafHash.length !== 32 || root.length !== 32 || path.some((p) => p.length !== 32)) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

export const BATCH_SCHEMA = 'kaching.v1.batch' as const;

/**
 * What an agent signs for a batch: the UTF-8 RFC 8785 JSON of {"root": base64 tree head, "schema":
 * "kaching.v1.batch", "tree_size": n}. The schema member keeps a batch signature from ever verifying as an
 * event signature (and vice versa); tree_size pins the shape the root was computed over.
 */
export function batchSigningBytes(root: Uint8Array, treeSize: number): Uint8Array {
  return new TextEncoder().encode(canonicalize({ schema: BATCH_SCHEMA, root: Buffer.from(root).toString('base64'), tree_size: treeSize }));
}
