import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import { AuthError } from '@kaching/contracts';
import { secretMatches, sha256 } from '../routines/secrets.js';
import type { UserRole } from './users.js';

export type SessionKind = 'browser' | 'token';

export interface SessionPolicy {
  /** Absolute lifetime. */
  ttlS: number;
  /** Ends after this long without a request. */
  idleS: number;
}

const SESSION_RULE = /^ks_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

export function parseSessionToken(raw: string): { sessionId: string; secret: string } | undefined {
  const m = SESSION_RULE.exec(raw);
  return m ? { sessionId: m[1]!, secret: m[2]! } : undefined;
}

/**
 * The CSRF token of a session: an HMAC of the session's secret. The server re-derives it from the
 * cookie on every write, so nothing more is stored, and it is worthless without the HttpOnly cookie.
 */
export function csrfTokenOf(secret: string): string {
  return createHmac('sha256', secret).update('kaching.csrf.v1').digest('base64url');
}

export function csrfMatches(secret: string, presented: string): boolean {
  const want = Buffer.from(csrfTokenOf(secret));
  const got = Buffer.from(presented);
  return got.length === want.length && timingSafeEqual(got, want);
}

export interface NewSession {
  sessionId: string;
  /** ks_<id>_<secret>: the cookie value. Shown once; only sha256(secret) is stored. */
  token: string;
  secret: string;
  csrfToken: string;
  expiresAt: Date;
}

export async function createSession(
  pool: pg.Pool,
  opts: { orgId: string; userId: string; kind: SessionKind; now: Date; policy: SessionPolicy; userAgent?: string; source?: string },
): Promise<NewSession> {
  const sessionId = randomBytes(12).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const expiresAt = new Date(opts.now.getTime() + opts.policy.ttlS * 1000);
  await pool.query(
    `insert into user_session (session_id, org_id, user_id, secret_hash, kind, created_at, expires_at, last_seen_at, user_agent, source)
     values ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9)`,
    [sessionId, opts.orgId, opts.userId, sha256(secret), opts.kind, opts.now, expiresAt, opts.userAgent?.slice(0, 300) ?? null, opts.source ?? null],
  );
  return { sessionId, token: `ks_${sessionId}_${secret}`, secret, csrfToken: csrfTokenOf(secret), expiresAt };
}

export interface SessionState {
  sessionId: string;
  orgId: string;
  userId: string;
  login: string;
  role: UserRole;
  kind: SessionKind;
  expiresAt: Date;
  lastSeenAt: Date;
  revokedAt: Date | null;
}

interface SessionRow {
  session_id: string;
  org_id: string;
  user_id: string;
  login: string;
  role: UserRole;
  kind: SessionKind;
  secret_hash: Buffer;
  expires_at: Date;
  last_seen_at: Date;
  revoked_at: Date | null;
}

async function loadSession(pool: pg.Pool, sessionId: string): Promise<SessionRow | undefined> {
  const r = await pool.query<SessionRow>(
    `select s.session_id, s.org_id, s.user_id, u.login, u.role, s.kind, s.secret_hash, s.expires_at, s.last_seen_at, s.revoked_at
     from user_session s join org_user u on u.user_id = s.user_id where s.session_id = $1`,
    [sessionId],
  );
  return r.rows[0];
}

function toState(row: SessionRow): SessionState {
  return {
    sessionId: row.session_id, orgId: row.org_id, userId: row.user_id, login: row.login, role: row.role, kind: row.kind,
    expiresAt: row.expires_at, lastSeenAt: row.last_seen_at, revokedAt: row.revoked_at,
  };
}

/** Why a session no longer counts, or undefined while it does. */
export function endedBecause(s: Pick<SessionState, 'expiresAt' | 'lastSeenAt' | 'revokedAt'>, now: Date, policy: SessionPolicy): string | undefined {
  if (s.revokedAt) return 'The session was signed out or revoked';
  if (s.expiresAt.getTime() <= now.getTime()) return 'The session has expired';
  if (s.lastSeenAt.getTime() + policy.idleS * 1000 <= now.getTime()) return 'The session ended after inactivity';
  return undefined;
}

/**
 * Resolves a session cookie: one primary-key lookup, a constant-time comparison of the secret's hash
 * (also for unknown ids), then the lifetime checks. Marks the session used at most once a minute.
 */
export async function authenticateSession(pool: pg.Pool, raw: string, now: Date, policy: SessionPolicy): Promise<SessionState & { secret: string }> {
  const parsed = parseSessionToken(raw);
  if (!parsed) throw new AuthError('SESSION_INVALID');
  const row = await loadSession(pool, parsed.sessionId);
  const ok = secretMatches(parsed.secret, row?.secret_hash ?? Buffer.alloc(32));
  if (!row || !ok) throw new AuthError('SESSION_INVALID');
  const state = toState(row);
  const ended = endedBecause(state, now, policy);
  if (ended) throw new AuthError('SESSION_INVALID', { message: ended });
  if (now.getTime() - state.lastSeenAt.getTime() >= 60_000) await touchSession(pool, state.sessionId, now);
  return { ...state, secret: parsed.secret };
}

/** The session behind a JWT's sid claim (no secret involved: the JWT signature vouches for it). */
export async function sessionById(pool: pg.Pool, sessionId: string): Promise<SessionState | undefined> {
  const row = await loadSession(pool, sessionId);
  return row ? toState(row) : undefined;
}

export async function touchSession(pool: pg.Pool, sessionId: string, now: Date): Promise<void> {
  await pool.query(`update user_session set last_seen_at = $2 where session_id = $1 and last_seen_at < $2::timestamptz - interval '1 minute'`, [sessionId, now]);
}

/** Revokes one session. Returns false when it did not exist or was revoked already. */
export async function revokeSession(db: pg.Pool | pg.PoolClient, sessionId: string, now: Date): Promise<boolean> {
  const r = await db.query('update user_session set revoked_at = $2 where session_id = $1 and revoked_at is null', [sessionId, now]);
  return (r.rowCount ?? 0) > 0;
}

export interface SessionListItem {
  session_id: string;
  user_id: string;
  login: string;
  kind: SessionKind;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
  revoked_at: string | null;
  user_agent: string | null;
  source: string | null;
}

/** Sessions visible to db (an org's RLS client, or the operator's pool), newest first; no secrets. */
export async function listSessions(db: pg.Pool | pg.PoolClient, filter: { userId?: string; login?: string; activeAt?: Date } = {}): Promise<SessionListItem[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.userId) where.push(`s.user_id = $${params.push(filter.userId)}`);
  if (filter.login) where.push(`u.login = $${params.push(filter.login.trim().toLowerCase())}`);
  if (filter.activeAt) where.push(`s.revoked_at is null and s.expires_at > $${params.push(filter.activeAt)}`);
  const r = await db.query<SessionListItem>(
    `select s.session_id, s.user_id, u.login, s.kind, s.created_at, s.expires_at, s.last_seen_at, s.revoked_at, s.user_agent, s.source
     from user_session s join org_user u on u.user_id = s.user_id
     ${where.length ? `where ${where.join(' and ')}` : ''}
     order by s.created_at desc limit 1000`,
    params,
  );
  return r.rows;
}
