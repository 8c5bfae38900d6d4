import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchLeafHashes,
  batchProofs,
  batchSigningBytes,
  cryptoReady,
  merkleInclusionProofs,
  merkleLeafHash,
  merkleRoot,
  signBatch,
  signEvent,
  signingBytes,
  signingKeyPairFromSeed,
  verifyBatchProof,
  verifyBatchRoot,
  verifyEventSignature,
  verifyMerkleInclusion,
  type SignedEvent,
  type Unsigned,
} from '@kaching/contracts';

const here = (p: string) => new URL(p, import.meta.url);
const hex = (s: string) => Buffer.from(s, 'hex');

describe('Merkle trees as RFC 6962/9162 hash them (Certificate Transparency reference vectors)', () => {
  const ref = JSON.parse(readFileSync(here('./vectors/merkle/rfc6962-reference.json'), 'utf8')) as {
    leaves_hex: string[];
    roots_hex: string[];
    inclusion: { tree_size: number; index: number; path_hex: string[] }[];
  };
  const leaves = ref.leaves_hex.map((l) => merkleLeafHash(hex(l)));

  it('gives the published tree head for each of the first 1..8 reference leaves', () => {
    ref.roots_hex.forEach((root, i) => expect(merkleRoot(leaves.slice(0, i + 1)).toString('hex'), `n=${i + 1}`).toBe(root));
  });

  it('gives the published inclusion proofs, and each verifies against its tree head', () => {
    for (const v of ref.inclusion) {
      const proof = merkleInclusionProofs(leaves.slice(0, v.tree_size))[v.index]!;
      expect(proof.map((p) => p.toString('hex')), `${v.index} of ${v.tree_size}`).toEqual(v.path_hex);
      expect(verifyMerkleInclusion(leaves[v.index]!, v.index, v.tree_size, v.path_hex.map(hex), hex(ref.roots_hex[v.tree_size - 1]!))).toBe(true);
    }
  });

  // (The tree size is bound by the signature over {root, tree_size}, not by the path alone: see the batch tests.)
  it('refuses a proof for another index, a changed or missing sibling, or another leaf', () => {
    const root = hex(ref.roots_hex[7]!);
    const path = merkleInclusionProofs(leaves)[5]!;
    expect(verifyMerkleInclusion(leaves[5]!, 5, 8, path, root)).toBe(true);
    expect(verifyMerkleInclusion(leaves[5]!, 4, 8, path, root)).toBe(false);
    expect(verifyMerkleInclusion(leaves[4]!, 5, 8, path, root)).toBe(false);
    const bent = path.map((p, i) => (i === 1 ? Buffer.from(p.map((b, j) => (j === 0 ? b ^ 1 : b))) : p));
    expect(verifyMerkleInclusion(leaves[5]!, 5, 8, bent, root)).toBe(false);
    expect(verifyMerkleInclusion(leaves[5]!, 5, 8, path.slice(0, 2), root)).toBe(false);
    expect(verifyMerkleInclusion(leaves[5]!, 8, 8, path, root)).toBe(false);
  });

  it('property: in random trees of 1..300 leaves every proof verifies and a one-bit change of the leaf never does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(255), (n, pick, bit) => {
        const ls = Array.from({ length: n }, (_, i) => merkleLeafHash(Buffer.from(`leaf-${i}`)));
        const root = merkleRoot(ls);
        const proofs = merkleInclusionProofs(ls);
        const i = pick % n;
        for (let j = 0; j < n; j++) if (!verifyMerkleInclusion(ls[j]!, j, n, proofs[j]!, root)) return false;
        const flipped = Buffer.from(ls[i]!);
        flipped[bit % 32]! ^= 1 << bit % 8;
        return !verifyMerkleInclusion(flipped, i, n, proofs[i]!, root);
      }),
      { numRuns: 60 },
    );
  });
});

interface BatchVectors {
  description: string;
  seed_hex: string;
  public_key_base64: string;
  key_id: string;
  events: { name: string; event: Unsigned<SignedEvent>; signing_input: string; leaf_hash_hex: string; proof: { leaf_index: number; tree_size: number; path: string[] } }[];
  batch_signing_input: string;
  batch_sig: ReturnType<typeof signBatch>;
}

/** The committed batch vectors, rebuilt from their inputs: the events of signed-events.json plus two revisions. */
function buildBatchVectors(): BatchVectors {
  const single = JSON.parse(readFileSync(here('./vectors/signed-events.json'), 'utf8')) as {
    seed_hex: string;
    public_key_base64: string;
    vectors: { name: string; event: SignedEvent }[];
  };
  const strip = (e: SignedEvent): Unsigned<SignedEvent> => {
    const { sig: _sig, ...rest } = e;
    return rest as Unsigned<SignedEvent>;
  };
  const base = single.vectors.map((v) => ({ name: v.name, event: strip(v.event) }));
  const final = base[0]!.event as Unsigned<Extract<SignedEvent, { schema: 'kaching.v1.usage' }>>;
  const named = [
    ...base,
    { name: 'usage-with-tags-and-cache-write', event: { ...final, job: { ...final.job, correlation_id: 'run-42/step-8' }, llm: { ...final.llm!, tokens_cache_write: 1500 }, tags: { feature: 'search', team: 'ml' } } },
    { name: 'usage-revision-later-end', event: { ...final, job: { ...final.job, ended_at: '2026-11-23T03:05:00Z' } } },
  ] as { name: string; event: Unsigned<SignedEvent> }[];
  const keyId = 'vector-batch-key-1';
  const kp = signingKeyPairFromSeed(hex(single.seed_hex));
  const events = named.map((x) => x.event);
  const sig = signBatch(events, keyId, kp.secretKey);
  const proofs = batchProofs(batchLeafHashes(events), sig);
  return {
    description:
      'KACHING signed-batch vectors. Each event is signed through the batch: leaf = SHA-256(0x00 || signing_input), where signing_input is the RFC 8785 JSON of the event without sig; inner node = SHA-256(0x01 || left || right); the tree head splits n leaves at the largest power of two below n (RFC 9162 2.1.1). The agent signs batch_signing_input = RFC 8785 JSON of {"root": base64 head, "schema": "kaching.v1.batch", "tree_size": n} with Ed25519 (key from seed_hex). proof.path is the RFC 9162 inclusion proof, leaf level first, base64. Check with verify_batch.py (Python standard library + openssl).',
    seed_hex: single.seed_hex,
    public_key_base64: Buffer.from(kp.publicKey).toString('base64'),
    key_id: keyId,
    events: named.map((x, i) => ({
      name: x.name,
      event: x.event,
      signing_input: Buffer.from(signingBytes(x.event)).toString('utf8'),
      leaf_hash_hex: batchLeafHashes([x.event])[0]!.toString('hex'),
      proof: { leaf_index: proofs[i]!.leaf_index, tree_size: proofs[i]!.tree_size, path: proofs[i]!.path },
    })),
    batch_signing_input: Buffer.from(batchSigningBytes(Buffer.from(sig.root, 'base64'), sig.tree_size)).toString('utf8'),
    batch_sig: sig,
  };
}

describe('signed batches: one signature over the tree head proves each event on its own', () => {
  const file = here('./vectors/merkle/signed-batch.json');
  let vectors: BatchVectors;
  beforeAll(async () => {
    await cryptoReady();
    vectors = buildBatchVectors();
    // UPDATE_VECTORS=1 rewrites the file after a deliberate change of the inputs
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(file, JSON.stringify(vectors, null, 2) + '\n');
  });

  it('matches the committed vectors exactly (Ed25519 is deterministic)', () => {
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(vectors);
  });

  it('is checked by a second, independent implementation (Python standard library + openssl)', () => {
    const out = execFileSync('python3', [new URL('./vectors/merkle/verify_batch.py', import.meta.url).pathname, file.pathname], { encoding: 'utf8' });
    expect(out.trim()).toBe('ok');
  });

  it('verifies the root once and every stored proof alone; a changed event, proof or root fails', () => {
    const pk = Buffer.from(vectors.public_key_base64, 'base64');
    const events = vectors.events.map((e) => e.event);
    expect(verifyBatchRoot(batchLeafHashes(events), vectors.batch_sig, pk)).toBe(true);
    const proofs = batchProofs(batchLeafHashes(events), vectors.batch_sig);
    events.forEach((e, i) => expect(verifyBatchProof(e, proofs[i]!, pk), vectors.events[i]!.name).toBe(true));
    const changed = { ...events[0]!, deployment_id: '00000000-0000-4000-8000-000000000000' } as Unsigned<SignedEvent>;
    expect(verifyBatchProof(changed, proofs[0]!, pk)).toBe(false);
    expect(verifyBatchProof(events[1]!, proofs[0]!, pk)).toBe(false);
    expect(verifyBatchRoot(batchLeafHashes([...events].reverse()), vectors.batch_sig, pk)).toBe(false);
    expect(verifyBatchRoot(batchLeafHashes(events.slice(1)), vectors.batch_sig, pk)).toBe(false);
    expect(verifyBatchProof(events[2]!, { ...proofs[2]!, tree_size: proofs[2]!.tree_size + 1 }, pk)).toBe(false);
  });

  it('a batch signature is never an event signature, nor the other way round (domain separation)', () => {
    const kp = signingKeyPairFromSeed(hex(vectors.seed_hex));
    const event = vectors.events[0]!.event;
    const asEventSig = { ...event, sig: { algo: 'ed25519', key_id: vectors.key_id, signature: vectors.batch_sig.signature } } as SignedEvent;
    expect(verifyEventSignature(asEventSig, kp.publicKey)).toBe(false);
    // a single event signed alone is not a one-leaf batch either
    const alone = signEvent(event, vectors.key_id, kp.secretKey);
    const oneLeaf = batchLeafHashes([event]);
    const forged = { algo: 'ed25519' as const, key_id: vectors.key_id, tree_size: 1, root: oneLeaf[0]!.toString('base64'), signature: alone.sig.signature };
    expect(verifyBatchRoot(oneLeaf, forged, kp.publicKey)).toBe(false);
  });
});
