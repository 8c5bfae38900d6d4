import { createPublicKey, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { AuthError, UnavailableError, type ErrorCode, type RevokeReason } from '@kaching/contracts';

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

const REFUSAL: Record<Exclude<KeyJudgement, 'usable'>, ErrorCode> = {
  compromised: 'KEY_REVOKED',
  superseded_before_report: 'KEY_REVOKED',
  not_yet_valid: 'KEY_NOT_YET_VALID',
  expired: 'KEY_EXPIRED',
};

interface CacheEntry {
  key: AgentKey | null;
  until: number;
}

/** Agent signing keys by (deployment, key_id), cached for a short TTL like tokens. */
export class KeyStore {
  private cache = new Map<string, CacheEntry>();
  private inflight = new Map<string, Promise<AgentKey | null>>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMs: number,
  ) {}

  /** The key a report made at `reportTimeMs` may be verified with (see judgeKey), or the AuthError saying why not. */
  async usableKey(deploymentId: string, keyId: string, reportTimeMs: number, field = 'sig.key_id'): Promise<AgentKey> {
    const key = await this.get(deploymentId, keyId);
    if (!key) throw new AuthError('KEY_UNKNOWN', { field });
    const j = judgeKey(key, reportTimeMs);
    if (j !== 'usable') throw new AuthError(REFUSAL[j], { field, rule: `key:${j}`, message: describeJudgement(key, j, reportTimeMs) });
    return key;
  }

  /** Forgets a cached key (a register or revoke was announced), so the change applies at once. */
  drop(deploymentId: string, keyId: string): void {
    this.cache.delete(`${deploymentId}/${keyId}`);
  }

  async get(deploymentId: string, keyId: string, now = Date.now()): Promise<AgentKey | null> {
    const k = `${deploymentId}/${keyId}`;
    const hit = this.cache.get(k);
    if (hit && hit.until > now) return hit.key;
    let p = this.inflight.get(k);
    if (!p) {
      p = fetchAgentKey(this.pool, deploymentId, keyId).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    const key = await p;
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(k, { key, until: Date.now() + this.ttlMs });
    return key;
  }
}

export async function fetchAgentKey(pool: pg.Pool, deploymentId: string, keyId: string): Promise<AgentKey | null> {
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

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** node:crypto KeyObject for a raw Ed25519 public key. */
export function ed25519KeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}
