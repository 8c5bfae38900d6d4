import type pg from 'pg';
import { KachingError } from '../errors/errors.js';

/** Marks a token revoked (idempotent: a second revoke keeps the first time). Ingest caches see it within their TTL. */
export async function revokeIngestToken(
  pool: pg.Pool,
  input: { tokenId: string },
): Promise<{ tokenId: string; deploymentId: string; revokedAt: Date }> {
  const r = await pool.query<{ deployment_id: string; revoked_at: Date }>(
    `update ingest_token set revoked_at = coalesce(revoked_at, now()) where token_id = $1
     returning deployment_id, revoked_at`,
    [input.tokenId],
  );
  const row = r.rows[0];
  if (!row) throw new KachingError('NOT_FOUND', { field: 'token_id', message: `token ${input.tokenId} does not exist` });
  return { tokenId: input.tokenId, deploymentId: row.deployment_id, revokedAt: row.revoked_at };
}
