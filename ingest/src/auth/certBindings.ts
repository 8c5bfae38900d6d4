import { timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { AuthError, UnavailableError, type CertIdentity } from '@kaching/contracts';
import type { TokenPrincipal } from './tokens.js';

const NOT_BOUND = { field: 'client_certificate', rule: 'bound:deployment' } as const;

interface Binding {
  sha: Buffer | null;
  subject: string | null;
}

interface CacheEntry {
  bindings: Binding[];
  until: number;
}

/**
 * mTLS pinning (migration 059): the TLS handshake already proved the client holds a certificate from
 * INGEST_TLS_CLIENT_CA; this checks that the certificate is one the token's deployment bound, so a
 * token is worthless without its certificate. Bindings are cached per deployment for the auth TTL
 * (`kaching token bind-cert`/`unbind-cert` announce changes, which drop the entry at once).
 */
export class CertBindings {
  private cache = new Map<string, CacheEntry>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMs: number,
    /** Refuse deployments without any binding (default); false lets any certificate of the CA carry their tokens. */
    private readonly requireBinding: boolean,
  ) {}

  async check(principal: TokenPrincipal, peer: CertIdentity | null): Promise<void> {
    if (!peer) throw new AuthError('CLIENT_CERT_REQUIRED', { field: 'client_certificate', rule: 'required' });
    const bindings = await this.lookup(principal.deploymentId);
    if (bindings.length === 0) {
      if (this.requireBinding) {
        throw new AuthError('CLIENT_CERT_NOT_BOUND', { ...NOT_BOUND, message: "No client certificate is bound to the token's deployment (kaching token bind-cert)" });
      }
      return;
    }
    for (const b of bindings) {
      if (b.sha && timingSafeEqual(b.sha, peer.fingerprint)) return;
      if (b.subject !== null && peer.names.includes(b.subject)) return;
    }
    throw new AuthError('CLIENT_CERT_NOT_BOUND', NOT_BOUND);
  }

  drop(deploymentId: string): void {
    this.cache.delete(deploymentId);
  }

  private async lookup(deploymentId: string): Promise<Binding[]> {
    const now = Date.now();
    const hit = this.cache.get(deploymentId);
    if (hit && hit.until > now) return hit.bindings;
    let rows;
    try {
      rows = (
        await this.pool.query<{ cert_sha256: Buffer | null; subject: string | null }>(
          'select cert_sha256, subject from ingest_cert_binding where deployment_id = $1 and revoked_at is null',
          [deploymentId],
        )
      ).rows;
    } catch (cause) {
      throw new UnavailableError('DATABASE_UNAVAILABLE', { cause, retryAfterS: 2 });
    }
    const bindings = rows.map((r) => ({ sha: r.cert_sha256, subject: r.subject }));
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(deploymentId, { bindings, until: now + this.ttlMs });
    return bindings;
  }
}
