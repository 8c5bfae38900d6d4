import type pg from 'pg';
import { InputError, KachingError } from '../errors/errors.js';
import { REVOKE_REASONS, type RevokeReason } from './agentKey.js';

/**
 * Without a reason a revocation is for compromise. Of the two possible mistakes, this one is recoverable:
 * an honest event refused by a compromise revocation waits in the agent's dead-letter file and is replayed
 * (re-signed with the new key) once the operator sees it, whereas a leaked key revoked as "superseded" would
 * go on being accepted for any report its holder dates before the revocation, and nobody would notice.
 */
export const DEFAULT_REVOKE_REASON: RevokeReason = 'compromise';

/**
 * Revokes an agent key. Idempotent: the first revocation time stays. A superseded key may later be marked
 * compromised (then nothing it signed is accepted any more); a compromised key is never softened to superseded.
 * The row stays so `audit verify` can still explain old events.
 */
export async function revokeAgentKey(
  pool: pg.Pool,
  input: { deploymentId: string; keyId: string; reason?: RevokeReason },
): Promise<{ deploymentId: string; keyId: string; revokedAt: Date; reason: RevokeReason }> {
  const reason = input.reason ?? DEFAULT_REVOKE_REASON;
  if (!REVOKE_REASONS.includes(reason)) {
    throw new InputError('FIELD_ENUM', { field: 'reason', rule: `enum:${REVOKE_REASONS.join('|')}` });
  }
  const r = await pool.query<{ revoked_at: Date; revoke_reason: RevokeReason }>(
    `update agent_key
       set revoked_at = coalesce(revoked_at, now()),
           revoke_reason = case when revoke_reason = 'compromise' or $3 = 'compromise' then 'compromise' else 'superseded' end
     where deployment_id = $1 and key_id = $2
     returning revoked_at, revoke_reason`,
    [input.deploymentId, input.keyId, reason],
  );
  const row = r.rows[0];
  if (!row) throw new KachingError('NOT_FOUND', { field: 'key_id', message: `key ${input.keyId} is not registered for ${input.deploymentId}` });
  return { deploymentId: input.deploymentId, keyId: input.keyId, revokedAt: row.revoked_at, reason: row.revoke_reason };
}
