import { names, STREAM_SCHEMA_FINGERPRINT } from '@kaching/contracts';
import { decodeMessage } from '../processor.js';
import { copyLine, stageRow, type Decoded } from '../records.js';
import { generateMessages } from './generate.js';

/** µs per message of the projector's own per-message steps. */
export interface ProjectorStageCosts {
  /** Avro decode plus the revision key (digest taken from the message id). */
  decode: number;
  /** The COPY text line of the staging row. */
  copyText: number;
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
  const copy = time((i) => copyLine(stageRow(decoded.out[i]!)));
  return { decode: decoded.us, copyText: copy.us };
}
