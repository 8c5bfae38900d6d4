import type pg from 'pg';
import { refuseHistoryLoss, type ArchiveHistory } from '@kaching/archiver';
import { CHECKPOINT_KEY } from './engine.js';

export interface ResetOptions {
  /**
   * Runs with every lane's checkpoint row locked, before anything changes, given the highest sequence the
   * counters hold: throwing refuses the reset (nothing changed).
   */
  check?(applied: number): Promise<void>;
}

/**
 * Rebuilds the enforcer's counters from the stream, online: in one transaction it waits for the batches in
 * flight (the lane checkpoint rows), forgets the derived usage state, puts every lane back to 0 and moves every
 * lease's fence on, so the running instances drop their lanes, take them again and re-read from the start.
 * Decisions, alerts, suggestions and notifications stay: their deterministic ids make the replay re-derive them
 * without alerting, notifying or publishing twice.
 */
export async function resetEnforcerState(pool: pg.Pool, o: ResetOptions = {}): Promise<{ lanes: number }> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const lanes = await client.query<{ last_seq: string }>('select lane, last_seq from consumer_checkpoint where consumer = $1 order by lane for update', [CHECKPOINT_KEY]);
    await o.check?.(Math.max(0, ...lanes.rows.map((r) => Number(r.last_seq))));
    await client.query('truncate enforcer_usage_daily, enforcer_contribution, enforcer_deployment_state');
    await client.query('update consumer_checkpoint set last_seq = 0, retired_at = null, updated_at = now() where consumer = $1', [CHECKPOINT_KEY]);
    await client.query('update consumer_lease set fence = fence + 1 where consumer = $1', [CHECKPOINT_KEY]);
    await client.query('commit');
    return { lanes: lanes.rowCount ?? 0 };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface EnforcerReplayOptions {
  /** The events stream's first sequence now (read once the lanes are locked). */
  streamFirstSeq(): Promise<number>;
  /** The archive the running enforcers read a lane's history from (KACHING_ARCHIVE_DIR / KACHING_ARCHIVE_URL), or null. */
  history: ArchiveHistory | null;
  /**
   * Reset even though neither the stream nor the archive holds messages the counters include: they then come
   * back without that usage. Without it such a replay is refused (REPLAY_HISTORY_GAP).
   */
  acceptHistoryLoss?: boolean;
}

/**
 * `kaching replay enforcer`: the reset, refused like a projection's full replay when the stream no longer starts
 * at 1, the counters already include what came before, and the archive does not hold every one of those messages.
 */
export async function replayEnforcer(pool: pg.Pool, o: EnforcerReplayOptions): Promise<{ lanes: number; fromArchive: boolean }> {
  let fromArchive = false;
  const r = await resetEnforcerState(pool, o.acceptHistoryLoss ? {} : {
    check: async (applied) => {
      if (applied === 0) return;
      fromArchive = await refuseHistoryLoss({
        firstSeq: await o.streamFirstSeq(), applied, history: o.history, what: 'the enforcer', remedy: 'put the archive where the enforcer reads it (KACHING_ARCHIVE_DIR / KACHING_ARCHIVE_URL), or --accept-history-loss',
      });
    },
  });
  return { ...r, fromArchive };
}
