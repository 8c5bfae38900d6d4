import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { batchSigningBytes, canonicalize, merkleLeafHash, merkleRoot, type BatchSignature, type SignedEvent, type Unsigned } from './protocol/mod.js';

// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Signs events the way DESIGN.md says any third-party agent can: Ed25519 (Node's built-in crypto,
 * no native addon) over the RFC 8785 canonical JSON of the event without `sig`.
 */
export class EventSigner {
  private readonly key: KeyObject;
  readonly publicKey: string;

  constructor(
    readonly keyId: string,
    secretKeyB64: string,
  ) {
    const raw = Buffer.from(secretKeyB64.trim(), 'base64');
    // libsodium's 64-byte secret key is seed ‖ public key; a bare 32-byte seed works too.
    if (raw.length !== 64 && raw.length !== 32) throw new Error('the agent secret key must be 32 or 64 bytes of base64');
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    const jwk = createPublicKey(this.key).export({ format: 'jwk' }) as { x: string };
    this.publicKey = Buffer.from(jwk.x, 'base64url').toString('base64');
  }

  static fromFile(keyId: string, file: string): EventSigner {
    return new EventSigner(keyId, readFileSync(file, 'utf8'));
  }

  sign<E extends SignedEvent>(unsigned: Unsigned<E>): E {
    const { sig: _old, ...rest } = unsigned as Unsigned<E> & { sig?: unknown };
    const signature = sign(null, signingBytes(rest), this.key).toString('base64');
    return { ...rest, sig: { algo: 'ed25519', key_id: this.keyId, signature } } as E;
  }

  /**
   * One signature for a whole batch (README "Signed batches"): Ed25519 over {root, schema, tree_size}, where
   * root is the RFC 9162 Merkle tree head of the events' signing bytes in the order sent.
   */
  signBatch(events: readonly Unsigned<SignedEvent>[]): BatchSignature {
    const root = merkleRoot(events.map((e) => merkleLeafHash(signingBytes(e))));
    const signature = sign(null, batchSigningBytes(root, events.length), this.key).toString('base64');
    return { algo: 'ed25519', key_id: this.keyId, tree_size: events.length, root: root.toString('base64'), signature };
  }
}

/** UTF-8 of the RFC 8785 JSON of the event without `sig`: what both kinds of signature cover. */
function signingBytes(event: object): Buffer {
  const { sig: _sig, ...rest } = event as Record<string, unknown>;
  return Buffer.from(canonicalize(rest), 'utf8');
}
