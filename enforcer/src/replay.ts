import type pg from 'pg';
import { CHECKPOINT_KEY } from './engine.js';

/**
 * Rebuilds the enforcer's counters from the stream, online: in one transaction it waits for the batches in
 * flight (the lane checkpoint rows), forgets the derived usage state, puts every lane back to 0 and moves every
 * lease's fence on, so the running instances drop their lanes, take them again and re-read from the start.
 * Decisions, alerts, suggestions and notifications stay: their deterministic ids make the replay re-derive them
 * without alerting, notifying or publishing twice.
 */
export async function resetEnforcerState(pool: pg.Pool): Promise<{ lanes: number }> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const lanes = await client.query('select lane from consumer_checkpoint where consumer = $1 order by lane for update', [CHECKPOINT_KEY]);
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
