import { timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { AuthError, hashIngestSecret, parseIngestToken, UnavailableError } from '@kaching/contracts';

/** What an authenticated request may do. */
export interface TokenPrincipal {
  tokenId: string;
  deploymentId: string;
  orgId: string;
  scopes: ReadonlySet<string>;
  /** The deployment's redaction policy, carried along so the hot path needs no second lookup. */
  redactSegments: readonly string[];
}

interface TokenRow {
  tokenHash: Buffer;
  principal: TokenPrincipal;
  expiresAt: number | null;
  revokedAt: number | null;
}

interface CacheEntry {
  row: TokenRow | null;
  until: number;
}

/**
 * Checks `Authorization: Bearer kt_...` against ingest_token. Rows (and misses) are cached for a
 * short TTL so Postgres stays off the hot path; expiry is re-checked on every use.
 */
export class TokenAuthenticator {
  private cache = new Map<string, CacheEntry>();
  private inflight = new Map<string, Promise<TokenRow | null>>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMs: number,
  ) {}

  async authenticate(authorization: string | undefined | null, now = Date.now()): Promise<TokenPrincipal> {
    if (!authorization) throw new AuthError('TOKEN_MISSING');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new AuthError('TOKEN_MISSING', { message: 'Authorization must be "Bearer <ingest token>"' });
    const parsed = parseIngestToken(m[1]!);
    if (!parsed) throw new AuthError('TOKEN_INVALID');
    const row = await this.lookup(parsed.tokenId, now);
    // Hash compare even on a miss would not hide anything more: the id is not secret, the secret is.
    if (!row || !timingSafeEqual(row.tokenHash, hashIngestSecret(parsed.secret))) throw new AuthError('TOKEN_INVALID');
    if (row.revokedAt !== null && row.revokedAt <= now) throw new AuthError('TOKEN_REVOKED');
    if (row.expiresAt !== null && row.expiresAt <= now) throw new AuthError('TOKEN_EXPIRED');
    return row.principal;
  }

  private async lookup(tokenId: string, now: number): Promise<TokenRow | null> {
    const hit = this.cache.get(tokenId);
    if (hit && hit.until > now) return hit.row;
    let p = this.inflight.get(tokenId);
    if (!p) {
      p = this.fetch(tokenId).finally(() => this.inflight.delete(tokenId));
      this.inflight.set(tokenId, p);
    }
    const row = await p;
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(tokenId, { row, until: Date.now() + this.ttlMs });
    return row;
  }

  private async fetch(tokenId: string): Promise<TokenRow | null> {
    let r;
    try {
      r = await this.pool.query<{
        token_hash: Buffer;
        deployment_id: string;
        org_id: string;
        scopes: string[];
        expires_at: Date | null;
        revoked_at: Date | null;
        redact_segments: string[];
      }>(
        `select t.token_hash, t.deployment_id, t.org_id, t.scopes, t.expires_at, t.revoked_at, d.redact_segments
           from ingest_token t join deployment d on d.deployment_id = t.deployment_id
          where t.token_id = $1`,
        [tokenId],
      );
    } catch (cause) {
      throw new UnavailableError('DATABASE_UNAVAILABLE', { cause, retryAfterS: 2 });
    }
    const x = r.rows[0];
    if (!x) return null;
    return {
      tokenHash: x.token_hash,
      expiresAt: x.expires_at ? x.expires_at.getTime() : null,
      revokedAt: x.revoked_at ? x.revoked_at.getTime() : null,
      principal: {
        tokenId,
        deploymentId: x.deployment_id,
        orgId: x.org_id,
        scopes: new Set(x.scopes),
        redactSegments: x.redact_segments,
      },
    };
  }

  clear(): void {
    this.cache.clear();
  }
}
