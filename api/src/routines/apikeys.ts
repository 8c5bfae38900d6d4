import type pg from 'pg';
import { AuthError, InputError } from '@kaching/contracts';
import { API_KEY_PREFIX, newApiKeyId, newSecret, parseApiKey, secretMatches, sha256 } from './secrets.js';

/** read: every GET; admin: org configuration writes; operator: installation-wide tables (plans, model prices). */
export const API_SCOPES = ['read', 'admin', 'operator'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export interface IssuedApiKey {
  keyId: string;
  orgId: string;
  scopes: ApiScope[];
  expiresAt: string | null;
  /** Shown once; only sha256(secret) is stored. */
  apiKey: string;
}

export function parseScopes(raw: string | string[]): ApiScope[] {
  const list = (Array.isArray(raw) ? raw : raw.split(',')).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new InputError('FIELD_REQUIRED', { field: 'scopes', message: 'At least one scope is required' });
  for (const s of list) {
    if (!(API_SCOPES as readonly string[]).includes(s)) {
      throw new InputError('FIELD_ENUM', { field: 'scopes', rule: `enum:${API_SCOPES.join('|')}`, message: `Unknown scope "${s}"` });
    }
  }
  return [...new Set(list)] as ApiScope[];
}

export async function issueApiKey(
  pool: pg.Pool,
  opts: { orgId: string; scopes: ApiScope[] | string; expiresAt?: Date | string | null; label?: string },
): Promise<IssuedApiKey> {
  const scopes = parseScopes(opts.scopes);
  const keyId = newApiKeyId();
  const secret = newSecret();
  const expiresAt = opts.expiresAt ? new Date(opts.expiresAt) : null;
  if (expiresAt && Number.isNaN(expiresAt.getTime())) throw new InputError('FIELD_FORMAT', { field: 'expires_at', rule: 'format:date-time' });
  const org = await pool.query('select 1 from org where org_id = $1', [opts.orgId]);
  if (org.rowCount === 0) throw new InputError('NOT_FOUND', { field: 'org', message: `No org ${opts.orgId}` });
  await pool.query(
    'insert into api_key (key_id, org_id, key_hash, scopes, label, expires_at) values ($1, $2, $3, $4, $5, $6)',
    [keyId, opts.orgId, sha256(secret), scopes, opts.label ?? null, expiresAt],
  );
  return { keyId, orgId: opts.orgId, scopes, expiresAt: expiresAt?.toISOString() ?? null, apiKey: `${API_KEY_PREFIX}${keyId}_${secret}` };
}

export async function revokeApiKey(pool: pg.Pool, keyId: string): Promise<{ keyId: string; revoked: boolean }> {
  const r = await pool.query('update api_key set revoked_at = coalesce(revoked_at, now()) where key_id = $1', [keyId]);
  if (r.rowCount === 0) throw new InputError('NOT_FOUND', { field: 'key-id', message: `No API key ${keyId}` });
  return { keyId, revoked: true };
}

/** Who is calling, after authentication: an API key (machines) or a signed-in user (session cookie or JWT). */
export interface Caller {
  orgId: string;
  scopes: ApiScope[];
  via: 'api_key' | 'session' | 'jwt';
  /** The API key's id (via api_key). */
  keyId?: string;
  /** The user and the session they signed in with (via session or jwt). */
  userId?: string;
  sessionId?: string;
  role?: 'viewer' | 'admin';
  /** Via session: the CSRF token its writes carry (derived from the cookie's secret). */
  csrfToken?: string;
}

/**
 * Resolves a bearer API key to its org. One primary-key lookup by key id, then a constant-time
 * hash comparison: the cost never depends on how many keys exist or how much of the secret matched.
 */
export async function authenticateApiKey(pool: pg.Pool, raw: string | undefined): Promise<Caller> {
  if (!raw) throw new AuthError('API_KEY_MISSING');
  const parsed = parseApiKey(raw);
  if (!parsed) throw new AuthError('API_KEY_INVALID');
  const r = await pool.query<{ org_id: string; key_hash: Buffer; scopes: string[]; expires_at: Date | null; revoked_at: Date | null }>(
    'select org_id, key_hash, scopes, expires_at, revoked_at from api_key where key_id = $1',
    [parsed.keyId],
  );
  const row = r.rows[0];
  // compare even for unknown ids so timing does not reveal which key ids exist
  const ok = secretMatches(parsed.secret, row?.key_hash ?? Buffer.alloc(32));
  if (!row || !ok) throw new AuthError('API_KEY_INVALID');
  if (row.revoked_at) throw new AuthError('API_KEY_INVALID', { message: 'The API key was revoked' });
  if (row.expires_at && row.expires_at.getTime() <= Date.now()) throw new AuthError('API_KEY_INVALID', { message: 'The API key has expired' });
  // best effort, at most once a minute per key
  pool
    .query(`update api_key set last_used_at = now() where key_id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')`, [parsed.keyId])
    .catch(() => undefined);
  return { orgId: row.org_id, via: 'api_key', keyId: parsed.keyId, scopes: row.scopes as ApiScope[] };
}

export function hasScope(caller: Caller, needed: ApiScope): boolean {
  if (caller.scopes.includes(needed)) return true;
  // admin implies read
  return needed === 'read' && caller.scopes.includes('admin');
}
