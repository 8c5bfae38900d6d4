import { ArchiveHistory, type ArchivedMessage } from '@kaching/archiver';
import { KachingError } from '@kaching/contracts';
import { decodeMessage } from './processor.js';
import type { Decoded } from './records.js';


/** An archived message decoded exactly as the stream's copy would be. */
export function decodeArchived(m: ArchivedMessage): Decoded | null {
  return decodeMessage(m.data, m.fingerprint, m.seq, undefined, m.msgId);
}

type Add = (d: Decoded | null, seq: number) => Promise<void> | undefined;

/**
 * Archived messages fed into a replay around the stream's: everything older than the stream, and the
 * holes inside it (the archiver purges lane by lane, so one lane may be purged further than another).
 * With `dense`, the part older than the stream must have no gap (REPLAY_HISTORY_GAP otherwise).
 */
export class HistoryFeed {
  private readonly it: AsyncIterator<ArchivedMessage>;
  private head: ArchivedMessage | null | undefined;
  private next: number;
  fed = 0;
  lastSeq = 0;

  constructor(history: ArchiveHistory, fromSeq: number, private readonly dense: { streamFirstSeq: number } | null) {
    this.it = history.messages({ fromSeq })[Symbol.asyncIterator]();
    this.next = fromSeq;
  }

  private async peek(): Promise<ArchivedMessage | null> {
    if (this.head === undefined) {
      const r = await this.it.next();
      this.head = r.done ? null : r.value;
    }
    return this.head;
  }

  /** Feeds the archived messages before the stream message `seq` (and drops the archive's copy of it). */
  async before(seq: number, add: Add): Promise<void> {
    for (let m = await this.peek(); m && m.seq <= seq; m = await this.peek()) {
      this.head = undefined;
      if (m.seq === seq) break;
      await this.feed(m, add);
    }
    this.checkDense(seq);
  }

  /** Feeds what is left up to upTo (the stream's end when the replay began). */
  async rest(upTo: number, add: Add): Promise<void> {
    for (let m = await this.peek(); m && m.seq <= upTo; m = await this.peek()) {
      this.head = undefined;
      await this.feed(m, add);
    }
    if (this.dense) this.checkDense(this.dense.streamFirstSeq);
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }

  private async feed(m: ArchivedMessage, add: Add): Promise<void> {
    if (this.dense && m.seq < this.dense.streamFirstSeq) {
      if (m.seq !== this.next) this.gap(m.seq);
      this.next = m.seq + 1;
    }
    this.fed++;
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    const full = add(decodeArchived(m), m.seq);
    if (full) await full;
  }

  private checkDense(upTo: number): void {
    if (this.dense && this.next < Math.min(upTo, this.dense.streamFirstSeq)) this.gap(Math.min(upTo, this.dense.streamFirstSeq));
  }

  private gap(at: number): never {
    throw new KachingError('REPLAY_HISTORY_GAP', {
      message: `neither the archive nor the stream holds messages ${this.next}..${at - 1}: a full replay would lose their history (live tables untouched)`,
    });
  }
}
