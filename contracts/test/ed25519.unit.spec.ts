import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import canonicalizeRef from 'canonicalize';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cryptoReady,
  decodeBase64Strict,
  generateSigningKeyPair,
  signDetached,
  signEvent,
  signingBytes,
  signingKeyPairFromSeed,
  validateJobStatus,
  validateUsage,
  verifyDetached,
  verifyEventSignature,
  type SignedEvent,
  type UsageEvent,
  type JobStatusEvent,
} from '@kaching/contracts';
import { unsignedJobStatus, unsignedUsage } from './support/fixtures.js';

const jcs = canonicalizeRef as (x: unknown) => string;

// Raw 32-byte keys ↔ node:crypto KeyObjects via the fixed DER prefixes of RFC 8410.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const nodePrivate = (seed: Uint8Array) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
const nodePublic = (raw: Uint8Array) =>
  createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
const rawPublic = (k: KeyObject) => new Uint8Array(k.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));

beforeAll(() => cryptoReady());

describe('sign and verify events', () => {
  it('a signed event verifies and carries an ed25519 sig of 64 bytes', () => {
    const kp = generateSigningKeyPair();
    expect(kp.publicKey.length).toBe(32);
    expect(kp.secretKey.length).toBe(64);
    const e = signEvent<UsageEvent>(unsignedUsage(), 'k1', kp.secretKey);
    expect(e.sig.algo).toBe('ed25519');
    expect(e.sig.key_id).toBe('k1');
    expect(decodeBase64Strict(e.sig.signature)?.length).toBe(64);
    expect(verifyEventSignature(e, kp.publicKey)).toBe(true);
    expect(validateUsage(e).ok).toBe(true);
  });

  it('signing bytes ignore member order and the sig member', () => {
    const u = unsignedUsage();
    const reordered = Object.fromEntries(Object.entries(u).reverse()) as typeof u;
    const kp = generateSigningKeyPair();
    const signed = signEvent<UsageEvent>(u, 'k1', kp.secretKey);
    expect(Buffer.from(signingBytes(reordered)).equals(Buffer.from(signingBytes(signed)))).toBe(true);
    expect(Buffer.from(signingBytes(signed)).toString()).not.toContain('"sig"');
  });

  it('any change to a signed field, a wrong key or a wrong algo fails verification', () => {
    const kp = generateSigningKeyPair();
    const e = signEvent<UsageEvent>(unsignedUsage(), 'k1', kp.secretKey);
    expect(verifyEventSignature({ ...e, metrics: { ...e.metrics, cpu_seconds: 141.26 } }, kp.publicKey)).toBe(false);
    expect(verifyEventSignature({ ...e, job: { ...e.job, meta: { team: 'other', ticket: 'KC-12' } } }, kp.publicKey)).toBe(false);
    expect(verifyEventSignature(e, generateSigningKeyPair().publicKey)).toBe(false);
    expect(verifyEventSignature({ ...e, sig: { ...e.sig, algo: 'rsa' as 'ed25519' } }, kp.publicKey)).toBe(false);
  });

  it('the key_id is not signed (it only selects the key)', () => {
    const kp = generateSigningKeyPair();
    const e = signEvent<UsageEvent>(unsignedUsage(), 'k1', kp.secretKey);
    expect(verifyEventSignature({ ...e, sig: { ...e.sig, key_id: 'k2' } }, kp.publicKey)).toBe(true);
  });

  it('never throws on garbage: returns false', () => {
    const kp = generateSigningKeyPair();
    const e = signEvent<UsageEvent>(unsignedUsage(), 'k1', kp.secretKey);
    const garbage: unknown[] = [
      null,
      undefined,
      42,
      'x',
      {},
      { sig: null },
      { ...e, sig: { ...e.sig, signature: 'not base64!' } },
      { ...e, sig: { ...e.sig, signature: Buffer.alloc(63).toString('base64') } },
      { ...e, sig: { ...e.sig, signature: 12 } },
      { ...e, metrics: { ...e.metrics, cpu_seconds: Number.NaN } },
      { ...e, job: { ...e.job, correlation_id: '\ud800' } },
    ];
    for (const g of garbage) expect(verifyEventSignature(g as SignedEvent, kp.publicKey)).toBe(false);
    expect(verifyEventSignature(e, new Uint8Array(31))).toBe(false);
    expect(verifyEventSignature(e, 'pk' as unknown as Uint8Array)).toBe(false);
  });

  it('verifyDetached checks sizes and signatures (licenses)', () => {
    const kp = generateSigningKeyPair();
    const msg = new TextEncoder().encode('license blob');
    const sig = signDetached(msg, kp.secretKey);
    expect(verifyDetached(sig, msg, kp.publicKey)).toBe(true);
    expect(verifyDetached(sig, new TextEncoder().encode('license blob!'), kp.publicKey)).toBe(false);
    expect(verifyDetached(sig.subarray(0, 63), msg, kp.publicKey)).toBe(false);
    expect(verifyDetached(sig, msg, kp.publicKey.subarray(0, 31))).toBe(false);
  });
});

describe('decodeBase64Strict', () => {
  it('accepts canonical padded base64', () => {
    expect(decodeBase64Strict('')).toEqual(new Uint8Array(0));
    expect(Buffer.from(decodeBase64Strict('AAEC/w==')!)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(Buffer.from(decodeBase64Strict('+/+/')!)).toEqual(Buffer.from([0xfb, 0xff, 0xbf]));
  });
  it('rejects invalid or non-canonical input', () => {
    for (const s of ['A', 'AA', 'AAA', 'AA=', 'AB==', 'AAB=', 'AA==AA==', '-_-_', 'AA AA', 'AAAA\n', '====', 'AA===']) {
      expect(decodeBase64Strict(s), s).toBeUndefined();
    }
    expect(decodeBase64Strict(undefined as unknown as string)).toBeUndefined();
  });
});

describe('cross-implementation (node:crypto + the `canonicalize` npm package)', () => {
  it('an event signed by node:crypto over the other JCS verifies with contracts', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    for (const unsigned of [unsignedUsage(), unsignedJobStatus()]) {
      const signature = nodeSign(null, Buffer.from(jcs(unsigned), 'utf8'), privateKey).toString('base64');
      const event = { ...unsigned, sig: { algo: 'ed25519' as const, key_id: 'node-key', signature } } as SignedEvent;
      expect(verifyEventSignature(event, rawPublic(publicKey))).toBe(true);
    }
  });

  it('an event signed by contracts verifies with node:crypto over the other JCS', () => {
    const kp = generateSigningKeyPair();
    const pub = nodePublic(kp.publicKey);
    const events: SignedEvent[] = [
      signEvent<UsageEvent>(unsignedUsage(), 'k1', kp.secretKey),
      signEvent<JobStatusEvent>(unsignedJobStatus(), 'k1', kp.secretKey),
    ];
    for (const e of events) {
      const { sig, ...rest } = e;
      expect(nodeVerify(null, Buffer.from(jcs(rest), 'utf8'), pub, Buffer.from(sig.signature, 'base64'))).toBe(true);
    }
  });

  it('the same seed gives the same key pair and the same signature in both libraries', () => {
    const seed = new Uint8Array(32).map((_, i) => i * 7);
    const kp = signingKeyPairFromSeed(seed);
    expect(Buffer.from(kp.publicKey)).toEqual(Buffer.from(rawPublic(createPublicKey(nodePrivate(seed)))));
    const u = unsignedUsage();
    const ours = signEvent<UsageEvent>(u, 'k', kp.secretKey).sig.signature;
    const theirs = nodeSign(null, Buffer.from(jcs(u), 'utf8'), nodePrivate(seed)).toString('base64');
    expect(ours).toBe(theirs);
  });
});

describe('committed signed-event vectors (contracts/test/vectors/signed-events.json)', () => {
  interface Vector {
    name: string;
    signing_input: string;
    signature: string;
    event: SignedEvent;
  }
  const file = JSON.parse(readFileSync(new URL('./vectors/signed-events.json', import.meta.url), 'utf8')) as {
    seed_hex: string;
    public_key_base64: string;
    key_id: string;
    vectors: Vector[];
  };

  it('the seed derives the published public key (RFC 8032 test 1)', () => {
    const kp = signingKeyPairFromSeed(Buffer.from(file.seed_hex, 'hex'));
    expect(Buffer.from(kp.publicKey).toString('base64')).toBe(file.public_key_base64);
    expect(file.vectors.length).toBeGreaterThanOrEqual(3);
  });

  it.each([0, 1, 2])('vector %i: signing input, signature, schema and both verifiers agree', (i) => {
    const v = file.vectors[i]!;
    const pk = decodeBase64Strict(file.public_key_base64)!;
    expect(Buffer.from(signingBytes(v.event)).toString('utf8')).toBe(v.signing_input);
    expect(jcs({ ...v.event, sig: undefined })).toBe(v.signing_input);
    expect(v.event.sig.signature).toBe(v.signature);
    const kp = signingKeyPairFromSeed(Buffer.from(file.seed_hex, 'hex'));
    const { sig: _s, ...unsigned } = v.event;
    expect(signEvent(unsigned as never, file.key_id, kp.secretKey)).toEqual(v.event);
    expect(verifyEventSignature(v.event, pk)).toBe(true);
    expect(nodeVerify(null, Buffer.from(v.signing_input, 'utf8'), nodePublic(pk), Buffer.from(v.signature, 'base64'))).toBe(true);
    const valid = v.event.schema === 'kaching.v1.usage' ? validateUsage(v.event).ok : validateJobStatus(v.event).ok;
    expect(valid).toBe(true);
  });
});
