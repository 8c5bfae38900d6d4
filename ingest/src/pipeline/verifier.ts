import { verify as edVerify, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { ed25519KeyObject } from '../auth/keys.js';

/**
 * libsodium's native verify (sodium-native, prebuilt for the common platforms) takes 66 µs here
 * against 141 µs for OpenSSL's through node:crypto, and verification is most of ingest's CPU.
 * Where its prebuild does not load, node:crypto verifies instead.
 */
const require = createRequire(import.meta.url);
type SodiumVerify = (sig: Uint8Array, msg: Uint8Array, pk: Uint8Array) => boolean;
function loadSodium(): { path: string; verify: SodiumVerify } | null {
  try {
    const path = require.resolve('sodium-native');
    const s = require(path) as { crypto_sign_verify_detached: SodiumVerify };
    return { path, verify: s.crypto_sign_verify_detached.bind(s) };
  } catch {
    return null;
  }
}
const sodium = loadSodium();

/**
 * The worker's compiled module. Tests run this file from src/ (through vitest), where only the .ts exists:
 * they use the build in dist/ (`npm install` and `npm test` build first).
 */
function workerUrl(): URL {
  const here = new URL('./verifyWorker.js', import.meta.url);
  return existsSync(fileURLToPath(here)) ? here : new URL('../../dist/pipeline/verifyWorker.js', import.meta.url);
}

interface Pending {
  pk: Uint8Array;
  sig: Uint8Array;
  msg: Uint8Array;
  resolve(ok: boolean): void;
  reject(err: unknown): void;
}

interface Slot {
  w: Worker;
  busy: number;
}

interface Job {
  items: Pending[];
  slot: Slot;
}

const MAX_JOB = 512;
const EARLY_JOB = 32;
const INLINE_BELOW = 4;

/**
 * Ed25519 verification, spread over worker threads. Requests queue up and are flushed on the next
 * turn of the event loop as a few batch-sized jobs (one per idle worker), so the single and batch
 * paths both amortise the thread hop. With 0 workers it verifies inline.
 *
 * Wire format of a job: one transferred buffer of [pk 32][sig 64][msg len 4][msg] records.
 */
export class Verifier {
  private workers: Slot[] = [];
  private queue: Pending[] = [];
  private jobs = new Map<number, Job>();
  private nextId = 1;
  private scheduled = false;
  private closed = false;
  private inlineKeys = new Map<string, KeyObject>();

  constructor(readonly threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(workerUrl(), { workerData: { sodiumPath: sodium?.path ?? null } });
      w.unref();
      const slot: Slot = { w, busy: 0 };
      w.on('message', (m: { id: number; out: Uint8Array }) => {
        slot.busy--;
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        job?.items.forEach((p, i) => p.resolve(m.out[i] === 1));
        if (this.queue.length) this.schedule();
      });
      w.on('error', (err) => this.failWorker(slot, err));
      this.workers.push(slot);
    }
  }

  verify(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): Promise<boolean> {
    if (sig.length !== 64 || pk.length !== 32) return Promise.resolve(false);
    if (this.workers.length === 0 || this.closed) return Promise.resolve(this.verifyInline(sig, msg, pk));
    return new Promise((resolve, reject) => {
      this.queue.push({ pk, sig, msg, resolve, reject });
      // A batch's events reach here one by one as they are canonicalised: hand a worker the first
      // EARLY_JOB at once, so it verifies while this thread prepares the rest.
      if (this.queue.length >= EARLY_JOB) this.flush();
      else this.schedule();
    });
  }

  /** Which implementation verifies: reported at start-up and by the benchmark. */
  static get backend(): 'libsodium' | 'openssl' {
    return sodium ? 'libsodium' : 'openssl';
  }

  private verifyInline(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
    if (sodium) {
      try {
        return sodium.verify(sig, msg, pk);
      } catch {
        return false;
      }
    }
    const id = Buffer.from(pk).toString('latin1');
    let k = this.inlineKeys.get(id);
    if (!k) {
      if (this.inlineKeys.size > 10_000) this.inlineKeys.clear();
      k = ed25519KeyObject(pk);
      this.inlineKeys.set(id, k);
    }
    try {
      return edVerify(null, msg, k, sig);
    } catch {
      return false;
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    // Spread what is queued evenly over the workers; a worker may hold two jobs so it never idles between them.
    // A handful of signatures (single events arriving in requests of their own) are verified here instead:
    // a thread hop costs this thread more (postMessage, the answer's event) than the verify it would carry.
    if (!this.workers.length || this.queue.length < INLINE_BELOW) {
      for (const p of this.queue.splice(0)) p.resolve(this.verifyInline(p.sig, p.msg, p.pk));
      return;
    }
    while (this.queue.length) {
      const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy >= 2) return;
      const size = Math.min(MAX_JOB, Math.ceil(this.queue.length / this.workers.length));
      const items = this.queue.splice(0, size);
      this.dispatch(slot, items);
    }
  }

  private dispatch(slot: Slot, items: Pending[]): void {
    let total = 0;
    for (const p of items) total += 100 + p.msg.length;
    const buf = Buffer.allocUnsafe(total);
    let o = 0;
    for (const p of items) {
      buf.set(p.pk, o);
      buf.set(p.sig, o + 32);
      buf.writeUInt32LE(p.msg.length, o + 96);
      buf.set(p.msg, o + 100);
      o += 100 + p.msg.length;
    }
    // allocUnsafe may hand out a slice of a shared pool: copy into an own ArrayBuffer to transfer it.
    const own = new Uint8Array(total);
    own.set(buf);
    const id = this.nextId++;
    this.jobs.set(id, { items, slot });
    slot.busy++;
    slot.w.postMessage({ id, buf: own, n: items.length }, [own.buffer]);
  }

  private failWorker(slot: Slot, err: unknown): void {
    // A crashed worker must not strand requests: verify what it held inline and drop it from the pool.
    this.workers = this.workers.filter((s) => s !== slot);
    for (const [id, job] of this.jobs) {
      if (job.slot !== slot) continue;
      this.jobs.delete(id);
      for (const p of job.items) p.resolve(this.verifyInline(p.sig, p.msg, p.pk));
    }
    void err;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve(this.verifyInline(p.sig, p.msg, p.pk));
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    for (const job of this.jobs.values()) for (const p of job.items) p.resolve(this.verifyInline(p.sig, p.msg, p.pk));
    this.jobs.clear();
    this.workers = [];
  }
}
