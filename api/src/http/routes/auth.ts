import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, InputError, KachingError, isKachingError } from '@kaching/contracts';
import { withOrg, callerOf, type ApiContext } from '../context.js';
import { resolveCaller } from '../auth.js';
import { clearCookie, cookieName, readCookie, setCookie, SESSION_COOKIE, SIGNIN_COOKIE } from '../cookies.js';
import { anyObject, ok } from '../schemas.js';
import { checkCredentials, type SignedInUser } from '../../auth/signin.js';
import { createSession, endedBecause, listSessions, revokeSession, sessionById, touchSession } from '../../auth/sessions.js';
import { signinPage, SIGNIN_HEADERS } from '../../signin/page.js';

interface SigninBody {
  login: string;
  password: string;
  /** The form's copy of the kaching_signin cookie (HTML form posts only). */
  csrf?: string;
}

const credentials = {
  login: { type: 'string', minLength: 1, maxLength: 200 },
  password: { type: 'string', minLength: 1, maxLength: 1024 },
} as const;
const sessionParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{24}$' } }, additionalProperties: false } as const;
const html = { produces: 'text/html', response: { 200: { description: 'OK', type: 'string' } } };

const isForm = (req: FastifyRequest) => (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Renders the sign-in page with a fresh login-CSRF token (also set as the kaching_signin cookie). */
function sendSigninPage(req: FastifyRequest, reply: FastifyReply, status: number, view: { login?: string; error?: KachingError }) {
  const csrf = randomBytes(32).toString('base64url');
  setCookie(reply, req, SIGNIN_COOKIE, csrf, { maxAgeS: 3600, sameSite: 'Strict' });
  if (view.error?.retryAfterS !== undefined) void reply.header('retry-after', String(view.error.retryAfterS));
  return reply
    .code(status)
    .headers(SIGNIN_HEADERS)
    .type('text/html; charset=utf-8')
    .send(
      signinPage({
        csrf,
        ...(view.login ? { login: view.login } : {}),
        ...(view.error ? { error: { code: view.error.code, message: view.error.code === 'SIGNIN_THROTTLED' ? `Too many sign-in attempts; try again in ${Math.ceil((view.error.retryAfterS ?? 60) / 60)} min` : view.error.message } } : {}),
      }),
    );
}

export function authRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const throttle = ctx.config.signin;

  app.get('/signin', { config: { auth: 'none' }, schema: { summary: 'Sign-in page (HTML form)', tags: ['auth'], ...html } }, async (req, reply) =>
    sendSigninPage(req, reply, 200, {}),
  );

  // The sign-in form posts application/x-www-form-urlencoded; only this scope parses it.
  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    scope.post<{ Body: SigninBody }>(
      '/v1/auth/signin',
      {
        config: { auth: 'none' },
        schema: {
          summary: 'Sign in with login and password: sets the session cookie (JSON answers carry the CSRF token for writes)', tags: ['auth'],
          body: { type: 'object', required: ['login', 'password'], properties: { ...credentials, csrf: { type: 'string', maxLength: 100 } }, additionalProperties: false },
          response: ok({ type: 'object', properties: { session_id: { type: 'string' }, org_id: { type: 'string' }, user: anyObject, expires_at: { type: 'string' }, csrf_token: { type: 'string' } } }),
        },
      },
      async (req, reply) => {
        const form = isForm(req);
        if (form) {
          // login CSRF: a form posted from elsewhere cannot know the cookie's value
          const cookie = readCookie(req, cookieName(req, SIGNIN_COOKIE));
          const presented = req.body.csrf;
          if (!cookie || !presented) return sendSigninPage(req, reply, 403, { login: req.body.login, error: new AuthError('CSRF_TOKEN_MISSING', { message: 'The sign-in form expired; please try again' }) });
          if (!sameToken(cookie, presented)) return sendSigninPage(req, reply, 403, { login: req.body.login, error: new AuthError('CSRF_TOKEN_INVALID', { message: 'The sign-in form expired; please try again' }) });
        }
        const now = ctx.now();
        let user: SignedInUser;
        try {
          user = await checkCredentials(ctx.pool, { login: req.body.login, password: req.body.password, source: req.ip, now, throttle });
        } catch (e) {
          if (form && isKachingError(e) && e.status < 500) return sendSigninPage(req, reply, e.status, { login: req.body.login, error: e });
          throw e;
        }
        const s = await createSession(ctx.pool, {
          orgId: user.org_id, userId: user.user_id, kind: 'browser', now, policy: ctx.auth.policy,
          ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}), source: req.ip,
        });
        setCookie(reply, req, SESSION_COOKIE, s.token, { maxAgeS: ctx.auth.policy.ttlS, sameSite: 'Lax' });
        clearCookie(reply, req, SIGNIN_COOKIE);
        void reply.header('cache-control', 'no-store');
        if (form) return reply.redirect('/', 303);
        return {
          session_id: s.sessionId, org_id: user.org_id, user: { user_id: user.user_id, login: user.login, role: user.role },
          expires_at: s.expiresAt.toISOString(), csrf_token: s.csrfToken,
        };
      },
    );
  });

  app.post('/v1/auth/signout', { config: { auth: 'read' }, schema: { summary: 'Sign out: revokes the session (and the JWTs issued from it)', tags: ['auth'], response: ok(anyObject) } }, async (req, reply) => {
    const caller = callerOf(req);
    if (!caller.sessionId) throw new AuthError('SESSION_INVALID', { message: 'An API key has no session to sign out of' });
    await revokeSession(ctx.pool, caller.sessionId, ctx.now());
    ctx.auth.sessions.forget(caller.sessionId);
    clearCookie(reply, req, SESSION_COOKIE);
    return reply.header('cache-control', 'no-store').send({ session_id: caller.sessionId, signed_out: true });
  });

  app.get('/v1/auth/session', { config: { auth: 'read' }, schema: { summary: 'Who is calling: user, role, org, session expiry, and (cookie sessions) the CSRF token', tags: ['auth'], response: ok(anyObject) } }, async (req, reply) => {
    const caller = callerOf(req);
    void reply.header('cache-control', 'no-store');
    if (!caller.sessionId) return { via: caller.via, org_id: caller.orgId, key_id: caller.keyId, scopes: caller.scopes };
    const s = await sessionById(ctx.pool, caller.sessionId);
    return {
      via: caller.via, org_id: caller.orgId, session_id: caller.sessionId, scopes: caller.scopes,
      user: { user_id: caller.userId, login: s?.login, role: caller.role },
      expires_at: s?.expiresAt.toISOString(),
      ...(caller.csrfToken ? { csrf_token: caller.csrfToken } : {}),
    };
  });

  app.post<{ Body: { login?: string; password?: string } | undefined }>(
    '/v1/auth/token',
    {
      config: { auth: 'none' },
      schema: {
        summary: 'A short-lived bearer JWT (EdDSA): for the signed-in session (cookie + CSRF token, or a still valid JWT), or for login + password (a new token session)',
        tags: ['auth'],
        body: { type: 'object', properties: credentials, additionalProperties: false },
        response: ok({ type: 'object', properties: { access_token: { type: 'string' }, token_type: { type: 'string' }, expires_in: { type: 'integer' }, expires_at: { type: 'string' }, session_id: { type: 'string' } } }),
      },
    },
    async (req, reply) => {
      const now = ctx.now();
      const body = req.body ?? {};
      let sessionId: string;
      if (body.login !== undefined || body.password !== undefined) {
        if (body.login === undefined || body.password === undefined) throw new InputError('FIELD_REQUIRED', { field: body.login === undefined ? 'login' : 'password' });
        const user = await checkCredentials(ctx.pool, { login: body.login, password: body.password, source: req.ip, now, throttle });
        sessionId = (await createSession(ctx.pool, { orgId: user.org_id, userId: user.user_id, kind: 'token', now, policy: ctx.auth.policy, source: req.ip })).sessionId;
      } else {
        const caller = await resolveCaller(ctx, req);
        if (!caller.sessionId) throw new AuthError('API_KEY_SCOPE', { message: 'JWTs are issued to signed-in users; an API key is already a bearer credential' });
        sessionId = caller.sessionId;
      }
      const s = await sessionById(ctx.pool, sessionId);
      const ended = s ? endedBecause(s, now, ctx.auth.policy) : 'The session does not exist';
      if (!s || ended) throw new AuthError('SESSION_INVALID', { message: ended });
      await touchSession(ctx.pool, s.sessionId, now);
      const jwt = await ctx.auth.jwt.issue({ sub: s.userId, org: s.orgId, role: s.role, sid: s.sessionId }, now, s.expiresAt);
      return reply.header('cache-control', 'no-store').send({
        access_token: jwt.token, token_type: 'Bearer', expires_in: Math.max(0, Math.round((jwt.expiresAt.getTime() - now.getTime()) / 1000)),
        expires_at: jwt.expiresAt.toISOString(), session_id: s.sessionId,
      });
    },
  );

  app.get<{ Querystring: { all?: boolean } }>(
    '/v1/auth/sessions',
    {
      config: { auth: 'read' },
      schema: {
        summary: "Live sessions: an admin sees the org's, a viewer their own (all=true includes ended ones)", tags: ['auth'],
        querystring: { type: 'object', properties: { all: { type: 'boolean' } }, additionalProperties: false },
        response: ok({ type: 'object', properties: { items: { type: 'array' } } }),
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const mine = !caller.scopes.includes('admin');
      if (mine && !caller.userId) return { items: [] };
      const items = await withOrg(ctx, req, (c) =>
        listSessions(c, { ...(mine ? { userId: caller.userId! } : {}), ...(req.query.all ? {} : { activeAt: ctx.now() }) }),
      );
      return reply.header('cache-control', 'no-store').send({ items: items.map((s) => ({ ...s, current: s.session_id === caller.sessionId })) });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/auth/sessions/:id',
    { config: { auth: 'read' }, schema: { summary: 'Revoke a session (your own; an admin any of the org)', tags: ['auth'], params: sessionParams, response: ok(anyObject) } },
    async (req) => {
      const caller = callerOf(req);
      const admin = caller.scopes.includes('admin');
      const revoked = await withOrg(ctx, req, async (c) => {
        const r = await c.query<{ user_id: string }>('select user_id from user_session where session_id = $1', [req.params.id]);
        const row = r.rows[0];
        // another user's session is invisible to a viewer, exactly like one of another org
        if (!row || (!admin && row.user_id !== caller.userId)) throw new KachingError('NOT_FOUND', { message: `No session ${req.params.id}` });
        return revokeSession(c, req.params.id, ctx.now());
      });
      ctx.auth.sessions.forget(req.params.id);
      return { session_id: req.params.id, revoked: true, already_ended: !revoked };
    },
  );

  app.get('/.well-known/jwks.json', { config: { auth: 'none' }, schema: { summary: "The installation's JWT verification keys (JWK set)", tags: ['auth'], response: ok(anyObject) } }, async () =>
    ctx.auth.jwt.jwks(ctx.now()),
  );
}
