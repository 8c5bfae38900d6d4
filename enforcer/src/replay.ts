import type pg from 'pg';
import { CHECKPOINT_KEY } from './engine.js';

/**
 * Forgets the derived usage state so the next start replays the whole stream. Decisions, alerts and
 * suggestions stay: their deterministic ids make the replay re-derive them without alerting twice.
 */
export async function resetEnforcerState(pool: pg.Pool): Promise<void> {
  await pool.query(`begin; truncate enforcer_usage_daily, enforcer_contribution, enforcer_deployment_state;
    update consumer_checkpoint set last_seq = 0, retired_at = null, updated_at = now() where consumer = '${CHECKPOINT_KEY}'; commit`);
}
