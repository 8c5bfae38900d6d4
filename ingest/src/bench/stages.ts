import { createRequire } from 'node:module';
import {
  cryptoReady,
  decodeBase64Strict,
  digestOfSigningBytes,
  encodeStreamRecord,
  generateSigningKeyPair,
  signingBytes,
  validateUsage,
  type StreamRecord,
  type UsageEvent,
} from '@kaching/contracts';
import { signedUsage } from './events.js';

/** µs per event of each step ingest takes for one signed usage event, one at a time on this thread. */
export interface IngestStageCosts {
  parse: number;
  validate: number;
  canonicalise: number;
  digest: number;
  verify: number;
  encode: number;
}

/**
 * A microbenchmark of ingest's per-event steps in isolation (in this process, one thread, warm JIT): where
 * an event's CPU goes before the append. Each step runs over the same `n` distinct events.
 */
export async function ingestStageCosts(n = 20_000): Promise<IngestStageCosts> {
  await cryptoReady();
  const kp = generateSigningKeyPair();
  const events = Array.from({ length: n }, () => signedUsage('0b7d6f0e-2c1a-4a8e-9f3b-5d2e1c0a9b8f', 'bench', kp.secretKey));
  const bodies = events.map((e) => JSON.stringify(e));
  const sodium = createRequire(import.meta.url)('sodium-native') as { crypto_sign_verify_detached(s: Uint8Array, m: Uint8Array, k: Uint8Array): boolean };
  const time = <T>(fn: (i: number) => T): { us: number; out: T[] } => {
    for (let i = 0; i < Math.min(2000, n); i++) fn(i); // warm-up
    const out: T[] = new Array(n);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) out[i] = fn(i);
    return { us: Math.round(((performance.now() - t0) * 1000) / n * 100) / 100, out };
  };
  const parsed = time((i) => JSON.parse(bodies[i]!) as UsageEvent);
  const validated = time((i) => validateUsage(parsed.out[i]));
  const canon = time((i) => signingBytes(parsed.out[i]!));
  const digest = time((i) => digestOfSigningBytes(canon.out[i]!));
  const sigs = events.map((e) => decodeBase64Strict(e.sig.signature)!);
  const verify = time((i) => sodium.crypto_sign_verify_detached(sigs[i]!, canon.out[i]!, kp.publicKey));
  if (verify.out.some((ok) => !ok) || validated.out.some((v) => !v.ok)) throw new Error('stage bench: an event did not verify or validate');
  const ingest = { received_at: new Date().toISOString(), org_id: '7d0e4b8e-4a52-4f0e-9d61-1f2a3b4c5d6e', clock_skew_ms: 0, redacted_segments: [], flags: [] };
  const encode = time((i) => encodeStreamRecord({ kind: 'usage', ingest, usage: parsed.out[i]! } as StreamRecord));
  return { parse: parsed.us, validate: validated.us, canonicalise: canon.us, digest: digest.us, verify: verify.us, encode: encode.us };
}
