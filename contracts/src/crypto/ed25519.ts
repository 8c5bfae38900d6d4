import sodium from 'libsodium-wrappers';
import type { SignedEvent, Signature, Unsigned } from '../types/usage.js';
import { canonicalize } from '@kaching/sdk/protocol';

let ready = false;
const readyPromise: Promise<void> = sodium.ready.then(() => {
  ready = true;
});

/** Resolves once libsodium is initialised; every other function here needs it. */
export function cryptoReady(): Promise<void> {
  return readyPromise;
}

function requireReady(): void {
  if (!ready) throw new Error('libsodium is not initialised: await cryptoReady() first');
}

export interface SigningKeyPair {
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** libsodium 64-byte secret key (seed ‖ public key). */
  secretKey: Uint8Array;
}

export function generateSigningKeyPair(): SigningKeyPair {
  requireReady();
  const kp = sodium.crypto_sign_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** Deterministic key pair from a 32-byte seed (test vectors, key files). */
export function signingKeyPairFromSeed(seed: Uint8Array): SigningKeyPair {
  requireReady();
  if (seed.length !== 32) throw new RangeError('Ed25519 seed must be 32 bytes');
  const kp = sodium.crypto_sign_seed_keypair(seed);
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

const encoder = new TextEncoder();

/** UTF-8 of the RFC 8785 canonical JSON of the event without its `sig` member: what is signed. */
export function signingBytes(event: SignedEvent | Unsigned<SignedEvent>): Uint8Array {
  const { sig: _sig, ...rest } = event as Record<string, unknown>;
  return encoder.encode(canonicalize(rest));
}

export function signEvent<E extends SignedEvent>(unsigned: Unsigned<E>, keyId: string, secretKey: Uint8Array): E {
  requireReady();
  if (secretKey.length !== 64) throw new RangeError('Ed25519 secret key must be 64 bytes (libsodium format)');
  const signature = sodium.crypto_sign_detached(signingBytes(unsigned as Unsigned<SignedEvent>), secretKey);
  const sig: Signature = { algo: 'ed25519', key_id: keyId, signature: Buffer.from(signature).toString('base64') };
  const { sig: _old, ...rest } = unsigned as Record<string, unknown>;
  return { ...rest, sig } as unknown as E;
}

/** True only if `sig.signature` is a valid Ed25519 signature by `publicKey` over signingBytes(event). Never throws. */
export function verifyEventSignature(event: SignedEvent, publicKey: Uint8Array): boolean {
  try {
    const sig = (event as { sig?: unknown } | null)?.sig as Partial<Signature> | undefined;
    if (!sig || sig.algo !== 'ed25519' || typeof sig.signature !== 'string') return false;
    const raw = decodeBase64Strict(sig.signature);
    if (!raw) return false;
    return verifyDetached(raw, signingBytes(event), publicKey);
  } catch {
    return false;
  }
}

/** Pure detached Ed25519 verification (licenses and events). False on wrong sizes or a bad signature. */
export function verifyDetached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  requireReady();
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(message instanceof Uint8Array)) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Detached Ed25519 signature (licenses). */
export function signDetached(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  requireReady();
  if (secretKey.length !== 64) throw new RangeError('Ed25519 secret key must be 64 bytes (libsodium format)');
  return sodium.crypto_sign_detached(message, secretKey);
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64 (RFC 4648 §4) in canonical form only; undefined for anything else. */
export function decodeBase64Strict(s: string): Uint8Array | undefined {
  if (typeof s !== 'string' || !BASE64_RE.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  // Non-zero padding bits decode fine but are not canonical: re-encoding must give the input back.
  if (buf.toString('base64') !== s) return undefined;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}
