import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { AuthError, KachingError } from '@kaching/contracts';
import type { ApiContext } from './context.js';
import { readCookie, cookieName, SESSION_COOKIE } from './cookies.js';
import { authenticateApiKey, hasScope, type Caller } from '../routines/apikeys.js';
import { authenticateSession, csrfMatches, csrfTokenOf, endedBecause, sessionById, type SessionPolicy, type SessionState } from '../auth/sessions.js';
import { scopesOfRole } from '../auth/users.js';
import type { JwtAuthority } from '../auth/jwt.js';

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Session checks behind JWTs, cached for a short while: a JWT is accepted only while the session it
 * came from is live. Revocations through this process drop the entry at once; elsewhere (CLI, another
 * API instance) they take effect within ttlMs.
 */
export class SessionCheckCache {
  private readonly entries = new Map<string, { state: SessionState | undefined; at: number }>();
  constructor(private readonly pool: pg.Pool, private readonly ttlMs: number) {}

  /** Freshness is real elapsed time (not the API's domain clock): the entry's state is judged against that clock by the caller. */
  async get(sessionId: string): Promise<SessionState | undefined> {
    const now = performance.now();
    const hit = this.entries.get(sessionId);
    if (hit && now - hit.at < this.ttlMs) return hit.state;
    const state = await sessionById(this.pool, sessionId);
    if (this.entries.size > 10_000) this.entries.clear();
    this.entries.set(sessionId, { state, at: now });
    return state;
  }

  forget(sessionId: string): void {
    this.entries.delete(sessionId);
  }
}

export interface AuthServices {
  jwt: JwtAuthority;
  sessions: SessionCheckCache;
  policy: SessionPolicy;
}

/** The session cookie's caller; writes must carry the session's CSRF token. */
async function sessionCaller(ctx: ApiContext, req: FastifyRequest, raw: string): Promise<Caller> {
  const s = await authenticateSession(ctx.pool, raw, ctx.now(), ctx.auth.policy);
  if (!SAFE_METHODS.has(req.method)) {
    const presented = req.headers[CSRF_HEADER];
    if (typeof presented !== 'string' || presented === '') throw new AuthError('CSRF_TOKEN_MISSING');
    if (!csrfMatches(s.secret, presented)) throw new AuthError('CSRF_TOKEN_INVALID');
  }
  return { orgId: s.orgId, scopes: scopesOfRole(s.role), via: 'session', userId: s.userId, sessionId: s.sessionId, role: s.role, csrfToken: csrfTokenOf(s.secret) };
}

/** A bearer JWT's caller: signature and expiry first, then its session must still be live. */
async function jwtCaller(ctx: ApiContext, token: string): Promise<Caller> {
  const now = ctx.now();
  const claims = await ctx.auth.jwt.verify(token, now);
  const session = await ctx.auth.sessions.get(claims.sid);
  if (!session || session.orgId !== claims.org || session.userId !== claims.sub) throw new AuthError('JWT_REVOKED', { message: 'The session the JWT was issued from does not exist' });
  const ended = endedBecause(session, now, ctx.auth.policy);
  if (ended) throw new AuthError('JWT_REVOKED', { message: `${ended}; the JWTs issued from it no longer count` });
  return { orgId: claims.org, scopes: scopesOfRole(claims.role), via: 'jwt', userId: claims.sub, sessionId: claims.sid, role: claims.role };
}

/**
 * Who is calling. An Authorization header wins (an API key, or a JWT); browsers never send one on
 * their own, so it needs no CSRF token. Otherwise the session cookie, whose writes need one.
 */
export async function resolveCaller(ctx: ApiContext, req: FastifyRequest): Promise<Caller> {
  const h = req.headers.authorization;
  if (h !== undefined) {
    const raw = h.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
    if (raw && JWT_SHAPE.test(raw)) return jwtCaller(ctx, raw);
    return authenticateApiKey(ctx.pool, raw);
  }
  const cookie = readCookie(req, cookieName(req, SESSION_COOKIE));
  if (cookie) return sessionCaller(ctx, req, cookie);
  throw new AuthError('API_KEY_MISSING', { message: 'Sign in, or send Authorization: Bearer <API key or JWT>' });
}

function forbidden(caller: Caller, need: string): KachingError {
  return caller.via === 'api_key'
    ? new AuthError('API_KEY_SCOPE', { message: `This endpoint needs the "${need}" scope` })
    : new AuthError('ROLE_INSUFFICIENT', { message: `This endpoint needs the "${need}" scope, which the ${caller.role} role does not have` });
}

/**
 * Routes say what they need in config.auth: a scope, 'none' (public), or 'page' (an HTML page for
 * signed-in people: without a live session cookie the browser is sent to /signin).
 */
export function installAuth(app: FastifyInstance, ctx: ApiContext): void {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const need = req.routeOptions.config?.auth;
    if (!need || need === 'none') return;
    if (need === 'page') {
      const cookie = readCookie(req, cookieName(req, SESSION_COOKIE));
      const ok = cookie
        ? await authenticateSession(ctx.pool, cookie, ctx.now(), ctx.auth.policy).then(
            () => true,
            (e: unknown) => {
              if (e instanceof AuthError) return false;
              throw e;
            },
          )
        : false;
      if (!ok) return reply.header('cache-control', 'no-store').redirect('/signin', 303);
      return;
    }
    const caller = await resolveCaller(ctx, req);
    if (!hasScope(caller, need)) throw forbidden(caller, need);
    req.caller = caller;
  });
}
