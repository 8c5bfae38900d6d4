import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, sign } from 'node:crypto';
import { Verifier } from '../src/pipeline/verifier.js';

function keypair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return { raw: new Uint8Array(raw), privateKey };
}

describe('Verifier', () => {
  for (const threads of [0, 2]) {
    it(`verifies good and refuses bad signatures with ${threads} worker threads`, async () => {
      const v = new Verifier(threads);
      try {
        const k1 = keypair();
        const k2 = keypair();
        const msgs = Array.from({ length: 300 }, (_, i) => new TextEncoder().encode(`message ${i}`));
        const sigs = msgs.map((m) => new Uint8Array(sign(null, m, k1.privateKey)));
        const results = await Promise.all(
          msgs.map((m, i) => {
            if (i % 3 === 1) return v.verify(sigs[i]!, msgs[(i + 1) % msgs.length]!, k1.raw); // wrong message
            if (i % 3 === 2) return v.verify(sigs[i]!, m, k2.raw); // wrong key
            return v.verify(sigs[i]!, m, k1.raw);
          }),
        );
        results.forEach((ok, i) => expect(ok).toBe(i % 3 === 0));
        expect(await v.verify(new Uint8Array(10), msgs[0]!, k1.raw)).toBe(false);
      } finally {
        await v.close();
      }
    });
  }
});
