import { refuseHistoryLoss, type ArchiveHistory, type ArchivedRecord, type HistoryCursor } from '@kaching/archiver';
import type pg from 'pg';
import { KachingError, type ProjectionName } from '@kaching/contracts';
import { decodeMessage } from './processor.js';
import type { Decoded } from './records.js';


/** An archived message decoded exactly as the stream's copy would be. */
export function decodeArchived(m: ArchivedRecord): Decoded | null {
  return decodeMessage(m.data, m.fingerprint, m.seq, undefined, m.msgId);
}

type Add = (d: Decoded | null, seq: number) => Promise<void> | undefined;

/**
 * Archived messages fed into a replay around the stream's: everything older than the stream, and the
 * holes inside it (the archiver purges lane by lane, so one lane may be purged further than another).
 * With `dense`, the part older than the stream must have no gap (REPLAY_HISTORY_GAP otherwise).
 */
export class HistoryFeed {
  private cursor: Promise<HistoryCursor<ArchivedRecord>>;
  private head: ArchivedRecord | null = null;
  /** The lowest sequence not yet fed from either side. */
  private low: number;
  fed = 0;

  constructor(history: ArchiveHistory, fromSeq: number, private readonly dense: { streamFirstSeq: number } | null) {
    // only what decoding needs; the lanes' next chunks are read while this one is applied
    this.cursor = history.recordCursor({ fromSeq });
    this.cursor.catch(() => undefined);
    this.low = fromSeq;
  }

  /**
   * Feeds the archived messages between the previous stream message and `seq`. Where the stream runs without
   * a hole the archive is not read at all (its copy of those messages is the same).
   */
  async before(seq: number, add: Add): Promise<void> {
    if (seq > this.low) await this.upTo(seq - 1, add);
    this.checkDense(seq);
    this.low = Math.max(this.low, seq + 1);
  }

  /** Feeds what is left up to upTo (the stream's end when the replay began). */
  async rest(upTo: number, add: Add): Promise<void> {
    await this.upTo(upTo, add);
    if (this.dense) this.checkDense(this.dense.streamFirstSeq);
  }

  async close(): Promise<void> {
    this.head = null;
    await (await this.cursor.catch(() => null))?.close();
  }

  private async upTo(last: number, add: Add): Promise<void> {
    const c = await this.cursor;
    for (;;) {
      if (!this.head || this.head.seq < this.low) this.head = await c.next(this.low);
      const m = this.head;
      if (!m || m.seq > last) return;
      if (this.dense && m.seq < this.dense.streamFirstSeq && m.seq !== this.low) this.gap(m.seq);
      this.low = m.seq + 1;
      this.fed++;
      const full = add(decodeArchived(m), m.seq);
      if (full) await full;
    }
  }

  private checkDense(upTo: number): void {
    if (this.dense && this.low < Math.min(upTo, this.dense.streamFirstSeq)) this.gap(Math.min(upTo, this.dense.streamFirstSeq));
  }

  private gap(at: number): never {
    throw new KachingError('REPLAY_HISTORY_GAP', {
      message: `neither the archive nor the stream holds messages ${this.low}..${at - 1}: a full replay would lose their history (live tables untouched)`,
    });
  }
}

/**
 * A full replay reads the stream from its first message. When the stream no longer starts at 1 and the live
 * projection already applied what came before, swapping in the rebuild would delete that history unless the
 * archive holds it (the check shared with the enforcer's replay: refuseHistoryLoss).
 */
export async function refuseHistoryGap(pool: pg.Pool, projection: ProjectionName, firstSeq: number, history: ArchiveHistory | null): Promise<boolean> {
  if (firstSeq <= 1) return false;
  const r = await pool.query<{ applied: string | null }>('select max(last_seq)::text as applied from consumer_checkpoint where consumer = $1', [projection]);
  return refuseHistoryLoss({
    firstSeq, applied: Number(r.rows[0]?.applied ?? 0), history, what: projection,
    remedy: 'replay --since/--from-seq to rebuild a recent part, or --accept-history-loss',
  });
}
