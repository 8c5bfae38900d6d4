import { createPublicKey, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { AuthError, UnavailableError } from '@kaching/contracts';

export interface AgentKey {
  deploymentId: string;
  keyId: string;
  publicKey: Uint8Array;
  validFrom: number;
  validTo: number | null;
  revokedAt: number | null;
}

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

  /**
   * The key an event may be verified with: registered for this deployment, not revoked, and inside
   * its validity window both at the event's own time and now.
   */
  async usableKey(deploymentId: string, keyId: string, eventTimeMs: number, now = Date.now()): Promise<AgentKey> {
    const key = await this.get(deploymentId, keyId, now);
    if (!key) throw new AuthError('KEY_UNKNOWN', { field: 'sig.key_id' });
    if (key.revokedAt !== null && key.revokedAt <= now) throw new AuthError('KEY_REVOKED', { field: 'sig.key_id' });
    if (!inWindow(key, eventTimeMs) || !inWindow(key, now)) throw new AuthError('KEY_EXPIRED', { field: 'sig.key_id' });
    return key;
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

export function inWindow(key: AgentKey, t: number): boolean {
  return key.validFrom <= t && (key.validTo === null || t < key.validTo);
}

export async function fetchAgentKey(pool: pg.Pool, deploymentId: string, keyId: string): Promise<AgentKey | null> {
  let r;
  try {
    r = await pool.query<{ public_key: Buffer; valid_from: Date; valid_to: Date | null; revoked_at: Date | null }>(
      'select public_key, valid_from, valid_to, revoked_at from agent_key where deployment_id = $1 and key_id = $2',
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
  };
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** node:crypto KeyObject for a raw Ed25519 public key. */
export function ed25519KeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}
