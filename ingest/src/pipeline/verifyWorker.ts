import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * A verification worker thread (see verifier.ts). It receives jobs as one transferred buffer of
 * [pk 32][sig 64][msg len 4][msg] records and answers one byte per record: 1 valid, 0 not.
 */
type SodiumVerify = (sig: Uint8Array, msg: Uint8Array, pk: Uint8Array) => boolean;
const { sodiumPath } = workerData as { sodiumPath: string | null };
const sodium = sodiumPath ? (createRequire(import.meta.url)(sodiumPath) as { crypto_sign_verify_detached: SodiumVerify }) : null;
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map<string, KeyObject>();

function keyOf(pk: Buffer): KeyObject {
  const id = pk.toString('latin1');
  let k = keys.get(id);
  if (!k) {
    if (keys.size > 10_000) keys.clear();
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pk]), format: 'der', type: 'spki' });
    keys.set(id, k);
  }
  return k;
}

parentPort!.on('message', ({ id, buf, n }: { id: number; buf: ArrayBuffer; n: number }) => {
  const b = Buffer.from(buf);
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const pk = b.subarray(o, o + 32);
    o += 32;
    const sig = b.subarray(o, o + 64);
    o += 64;
    const len = b.readUInt32LE(o);
    o += 4;
    const msg = b.subarray(o, o + len);
    o += len;
    try {
      out[i] = (sodium ? sodium.crypto_sign_verify_detached(sig, msg, pk) : verify(null, msg, keyOf(pk), sig)) ? 1 : 0;
    } catch {
      out[i] = 0;
    }
  }
  parentPort!.postMessage({ id, out }, [out.buffer]);
});
