import { microPerMillionToAtto, names, PriceBook, STREAM_SCHEMA_FINGERPRINT } from '@kaching/contracts';
import { decodeMessage } from '../processor.js';
import { copyLine, priceDecoded, stageRow, type Decoded } from '../records.js';
import { generateMessages } from './generate.js';

/** µs per message of the projector's own per-message steps. */
export interface ProjectorStageCosts {
  /** Avro decode plus the revision key (digest taken from the message id). */
  decode: number;
  /** The COPY text line of the staging row. */
  copyText: number;
  /** The event's cost from the price book at its attribution instant (raw and rollups, since the cost work). */
  price: number;
}

/** Microbenchmark of decode and COPY text (in this process, one thread, warm JIT) over the bench generator's messages. */
export async function projectorStageCosts(jobs = 15_000): Promise<ProjectorStageCosts> {
  const msgs = generateMessages(names('stagebench'), { deploymentId: '0b7d6f0e-2c1a-4a8e-9f3b-5d2e1c0a9b8f', orgId: '7d0e4b8e-4a52-4f0e-9d61-1f2a3b4c5d6e', jobs, seed: 3 });
  const n = msgs.length;
  const time = <T>(fn: (i: number) => T): { us: number; out: T[] } => {
    for (let i = 0; i < Math.min(2000, n); i++) fn(i);
    const out: T[] = new Array(n);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) out[i] = fn(i);
    return { us: Math.round((((performance.now() - t0) * 1000) / n) * 100) / 100, out };
  };
  const decoded = time((i) => decodeMessage(msgs[i]!.data, STREAM_SCHEMA_FINGERPRINT, i + 1, undefined, msgs[i]!.msgId) as Decoded);
  // two versions of the generator's model, so a lookup picks one by time as in production
  const v = (version: number, from: number, to: number | null) => ({
    provider: 'local', model: 'llama3.1:70b', version, effectiveFrom: from, effectiveTo: to, source: 'manual', tiers: [],
    input: microPerMillionToAtto('0.600000'), output: microPerMillionToAtto('2.400000'), cacheRead: null, cacheWrite: null, reasoning: null,
    gpuSecond: 0n, cpuSecond: 0n,
  });
  const book = new PriceBook().install([v(1, 0, Date.parse('2025-01-01')), v(2, Date.parse('2025-01-01'), null)], [], 1);
  const price = time((i) => priceDecoded([decoded.out[i]!], book));
  const copy = time((i) => copyLine(stageRow(decoded.out[i]!)));
  return { decode: decoded.us, copyText: copy.us, price: price.us };
}
