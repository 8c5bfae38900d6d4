import type { JetStreamManager } from '@nats-io/jetstream';

/** Does the stream still hold this sequence? (Expired, purged or deleted messages leave no hole.) */
export type SeqExists = (seq: number) => Promise<boolean>;

/**
 * A SeqExists over one stream: sequences below the stream's first one expired (answered from a
 * first_seq refreshed at most once a second); others are looked up directly.
 */
export function streamSeqExists(jsm: JetStreamManager, stream: string): SeqExists {
  let first = { seq: 0, at: 0 };
  return async (seq) => {
    if (Date.now() - first.at > 1000) first = { seq: (await jsm.streams.info(stream)).state.first_seq, at: Date.now() };
    if (seq < first.seq) return false;
    const m = await jsm.streams.getMessage(stream, { seq }).catch((err: Error) => {
      if (/not found|no message/i.test(err.message)) return null;
      throw err;
    });
    return m !== null;
  };
}

/**
 * The highest sequence up to which `seqs` cover checkpoint+1.. without a hole, holes of messages the
 * stream no longer holds not counting. A consumer's checkpoint says "everything up to here is applied",
 * so it may only move to this limit: after a NATS restart or a crash a message can be redelivered
 * after later ones, and moving past it would skip it for good.
 */
export async function contiguousLimit(checkpoint: number, seqs: readonly number[], exists: SeqExists): Promise<number> {
  let max = checkpoint;
  for (const s of seqs) if (s > max) max = s;
  const have = new Set(seqs);
  for (let s = checkpoint + 1; s < max; s++) {
    if (!have.has(s) && (await exists(s))) return s - 1;
  }
  return max;
}
