import { createPublicKey, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { AuthError, describeJudgement, fetchAgentKey, judgeKey, type AgentKey, type ErrorCode, type KeyJudgement } from '@kaching/contracts';

// The key model and its judgement live in contracts (the archive's deep verify judges keys the same way).
export { REVOKE_REASONS, describeJudgement, fetchAgentKey, judgeKey, type AgentKey, type KeyJudgement, type RevokeReason } from '@kaching/contracts';

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

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** node:crypto KeyObject for a raw Ed25519 public key. */
export function ed25519KeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}
