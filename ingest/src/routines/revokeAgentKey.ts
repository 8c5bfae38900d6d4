import type pg from 'pg';
import { KachingError } from '@kaching/contracts';

/** Revokes an agent key (idempotent). The row stays so `audit verify` can still explain old events. */
export async function revokeAgentKey(
  pool: pg.Pool,
  input: { deploymentId: string; keyId: string },
): Promise<{ deploymentId: string; keyId: string; revokedAt: Date }> {
  const r = await pool.query<{ revoked_at: Date }>(
    `update agent_key set revoked_at = coalesce(revoked_at, now()) where deployment_id = $1 and key_id = $2 returning revoked_at`,
    [input.deploymentId, input.keyId],
  );
  const row = r.rows[0];
  if (!row) throw new KachingError('NOT_FOUND', { field: 'key_id', message: `key ${input.keyId} is not registered for ${input.deploymentId}` });
  return { deploymentId: input.deploymentId, keyId: input.keyId, revokedAt: row.revoked_at };
}
