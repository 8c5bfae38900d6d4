import { KachingError } from '@kaching/contracts';
import type { ArchiveHistory } from './history.js';

export interface HistoryCheck {
  /** The stream's first sequence now. */
  firstSeq: number;
  /** The highest sequence the live state already applied (0: none). */
  applied: number;
  /** The archive that holds what left the stream, or null. */
  history: ArchiveHistory | null;
  /** Who counts the history, in the message: "rollups", "the enforcer". */
  what: string;
  /** What the operator can do instead, in the message. */
  remedy: string;
}

/**
 * A full rebuild reads the stream from its first message. When the stream no longer starts at 1 and the live
 * state already applied what came before, the archive must hold every one of 1..firstSeq-1, or the rebuild
 * would delete that history (REPLAY_HISTORY_GAP). True when the archive holds it all (the rebuild then reads it
 * before the stream), false when nothing is missing.
 */
export async function refuseHistoryLoss(c: HistoryCheck): Promise<boolean> {
  if (c.firstSeq <= 1 || c.applied === 0) return false;
  // sequences are unique across lanes: a count of firstSeq - 1 is every one of them
  const archived = c.history ? await c.history.count(1, c.firstSeq) : 0;
  if (archived === c.firstSeq - 1) return true;
  throw new KachingError('REPLAY_HISTORY_GAP', {
    message: `the stream starts at seq ${c.firstSeq}: messages 1..${c.firstSeq - 1}, which ${c.what} already counts, are no longer in it and the archive${c.history ? ` (${c.history.store.location})` : ''} holds ${archived} of them, so a full replay would delete their history; ${c.remedy}`,
  });
}
