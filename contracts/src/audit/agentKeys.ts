import type pg from 'pg';
import { UnavailableError } from '../errors/errors.js';

/**
 * Agent signing keys as ingest judges them and as every later re-verification (`kaching audit verify`,
 * `kaching archive verify --deep`) judges them again: one definition, here.
 */

// Why a key was revoked: credentials/agentKey.ts (compromise: nothing it signed is trusted; superseded: a
// planned rotation, reports made before the revocation stay acceptable).
import type { RevokeReason } from '../credentials/agentKey.js';

export interface AgentKey {
  deploymentId: string;
  keyId: string;
  publicKey: Uint8Array;
  validFrom: number;
  validTo: number | null;
  revokedAt: number | null;
  /** Set whenever revokedAt is (the migration marks older revocations compromise). */
  revokeReason: RevokeReason | null;
}

/** What a key says about a report the agent made at a given instant. */
export type KeyJudgement = 'usable' | 'compromised' | 'superseded_before_report' | 'not_yet_valid' | 'expired';

/**
 * Judges a key at the instant the agent made the report (`ended_at ?? started_at` for usage, `observed_at`
 * for job status), not at the instant ingest sees it: an event that waited in an agent's disk queue across
 * a rotation was honest when it was signed. Ingest bounds how old that instant may be (INGEST_MAX_AGE_MS).
 */
export function judgeKey(key: AgentKey, reportTimeMs: number): KeyJudgement {
  if (key.revokedAt !== null) {
    if (key.revokeReason !== 'superseded') return 'compromised';
    if (reportTimeMs >= key.revokedAt) return 'superseded_before_report';
  }
  if (reportTimeMs < key.validFrom) return 'not_yet_valid';
  if (key.validTo !== null && reportTimeMs >= key.validTo) return 'expired';
  return 'usable';
}

const iso = (ms: number) => new Date(ms).toISOString();

/** One sentence a person can act on; the same words for ingest's refusal and `audit verify`. */
export function describeJudgement(key: AgentKey, j: KeyJudgement, reportTimeMs: number): string {
  const at = iso(reportTimeMs);
  switch (j) {
    case 'compromised':
      return `key ${key.keyId} was revoked for compromise at ${iso(key.revokedAt!)}: nothing it signed is trusted`;
    case 'superseded_before_report':
      return `key ${key.keyId} was superseded at ${iso(key.revokedAt!)}; the report was made at ${at}, after that`;
    case 'not_yet_valid':
      return `key ${key.keyId} is valid from ${iso(key.validFrom)}; the report was made at ${at}, before that`;
    case 'expired':
      return `key ${key.keyId} was valid until ${iso(key.validTo!)}; the report was made at ${at}, after that`;
    case 'usable':
      return `key ${key.keyId} was valid at ${at}`;
  }
}

export async function fetchAgentKey(pool: Pick<pg.Pool, 'query'>, deploymentId: string, keyId: string): Promise<AgentKey | null> {
  let r;
  try {
    r = await pool.query<{ public_key: Buffer; valid_from: Date; valid_to: Date | null; revoked_at: Date | null; revoke_reason: RevokeReason | null }>(
      'select public_key, valid_from, valid_to, revoked_at, revoke_reason from agent_key where deployment_id = $1 and key_id = $2',
      [deploymentId, keyId],
    );
  } catch (cause) {
    throw new UnavailableError('DATABASE_UNAVAILABLE', { cause, retryAfterS: 2 });
  }
  const x = r.rows[0];
  if (!x) return null;
  return {
    deploymentId,
    keyId,
    publicKey: new Uint8Array(x.public_key),
    validFrom: x.valid_from.getTime(),
    validTo: x.valid_to ? x.valid_to.getTime() : null,
    revokedAt: x.revoked_at ? x.revoked_at.getTime() : null,
    revokeReason: x.revoked_at ? (x.revoke_reason ?? 'compromise') : null,
  };
}
