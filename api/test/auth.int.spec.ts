import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { jwtIssuer } from '@kaching/contracts';
import { addUser, commands, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { seedOrg, type SeededOrg } from './support/seed.js';
import { call, findCookie, signIn, type SignedIn } from './support/people.js';
import { makePki } from '../../test/support/pki.js';

// Sign-in, sessions, CSRF, the sign-in throttle and bearer JWTs, over real HTTP against a real
// Postgres. The API's clock is injected: expiry and throttle windows move by setting `clock`.

let env: IsolatedEnv;
let nc: NatsConnection;
let api: ApiHandle;
let A: SeededOrg;
let B: SeededOrg;
let clock = Date.parse('2030-01-10T09:00:00Z');
const PW = { adminA: 'correct horse battery A', viewerA: 'correct horse battery V', viewerB: 'correct horse battery B' };

const url = () => api.url;

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  A = await seedOrg(env.pool, 'alpha');
  B = await seedOrg(env.pool, 'beta');
  await addUser(env.pool, { orgId: A.orgId, login: 'Ada@Alpha.example', role: 'admin', password: PW.adminA });
  await addUser(env.pool, { orgId: A.orgId, login: 'vic@alpha.example', role: 'viewer', password: PW.viewerA });
  await addUser(env.pool, { orgId: B.orgId, login: 'bo@beta.example', role: 'viewer', password: PW.viewerB });
  api = await start(
    { ...loadConfig(env.env), port: 0, sessionCacheTtlMs: 300, signin: { accountLimit: 5, sourceLimit: 12, windowS: 900 } },
    { pool: env.pool, nc, clock: () => clock },
  );
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

/** Moves the API's clock to a new sign-in window, so one test's attempts do not count in the next. */
function nextWindow(): void {
  clock += 3600_000;
}

describe('passwords and sign-in', () => {
  it('stores only a scrypt hash with its parameters; the login is case-insensitive', async () => {
    const row = (await env.pool.query(`select * from org_user where login = 'ada@alpha.example'`)).rows[0];
    expect(row.password_hash).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]{44}$/);
    expect(JSON.stringify(row)).not.toContain(PW.adminA);
    const s = await signIn(url(), 'ADA@alpha.EXAMPLE', PW.adminA);
    expect(s.sessionId).toMatch(/^[0-9a-f]{24}$/);
  });

  it('sets an HttpOnly, SameSite=Lax session cookie (not Secure over plain HTTP); the secret is stored hashed', async () => {
    const r = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: PW.viewerA } });
    expect(r.status).toBe(200);
    const set = findCookie(r.setCookies, 'kaching_session')!;
    expect(set).toMatch(/^kaching_session=ks_[0-9a-f]{24}_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200$/);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const secret = set.split(';')[0]!.split('_').slice(3).join('_');
    const row = (await env.pool.query('select * from user_session where session_id = $1', [r.json.session_id])).rows[0];
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.secret_hash).toHaveLength(32);
    expect(r.json.user).toMatchObject({ login: 'vic@alpha.example', role: 'viewer' });
  });

  it('a session sees only its own org, through RLS like an API key', async () => {
    const a = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    const b = await signIn(url(), 'bo@beta.example', PW.viewerB);
    const da = await call(url(), 'GET', '/v1/deployments', { cookie: a.cookie });
    const db = await call(url(), 'GET', '/v1/deployments', { cookie: b.cookie });
    expect(da.json.items.map((d: { deployment_id: string }) => d.deployment_id)).toEqual([A.deploymentId]);
    expect(db.json.items.map((d: { deployment_id: string }) => d.deployment_id)).toEqual([B.deploymentId]);
    expect(da.headers.get('vary')).toContain('Cookie');
    const foreign = await call(url(), 'GET', `/v1/deployments/${B.deploymentId}/utilisation`, { cookie: a.cookie });
    expect([foreign.status, foreign.json.error.code]).toEqual([404, 'NOT_FOUND']);
  });

  it('a wrong password and an unknown login get the same 401 SIGNIN_FAILED', async () => {
    nextWindow();
    const wrong = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: 'not the password' } });
    const unknown = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'nobody@alpha.example', password: 'not the password' } });
    expect([wrong.status, wrong.json.error.code]).toEqual([401, 'SIGNIN_FAILED']);
    expect([unknown.status, unknown.text]).toEqual([wrong.status, wrong.text]);
    expect(wrong.setCookies).toEqual([]);
  });
});

// each refused attempt costs a real scrypt run (0.5–1.5 s on the shared 2-core machine)
describe('sign-in throttle', { timeout: 180_000 }, () => {
  it('after 5 attempts on an account the 6th is refused with 429 and Retry-After — even with the right password — and a new window lets it in', async () => {
    nextWindow();
    for (let i = 0; i < 5; i++) {
      const r = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: `guess ${i} wrong` } });
      expect([r.status, r.json.error.code]).toEqual([401, 'SIGNIN_FAILED']);
    }
    const right = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: PW.viewerA } });
    expect([right.status, right.json.error.code]).toEqual([429, 'SIGNIN_THROTTLED']);
    expect(Number(right.headers.get('retry-after'))).toBe(900);
    expect(right.setCookies).toEqual([]);
    // the HTML form says so too
    const page = await call(url(), 'GET', '/signin');
    const token = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const form = await call(url(), 'POST', '/v1/auth/signin', { cookie: findCookie(page.setCookies, 'kaching_signin')!.split(';')[0]!, form: { login: 'vic@alpha.example', password: PW.viewerA, csrf: token } });
    expect([form.status, form.text.includes('data-code="SIGNIN_THROTTLED"'), form.text.includes('try again in 15 min')]).toEqual([429, true, true]);
    // the other account from the same source is not locked by this one
    expect((await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'ada@alpha.example', password: PW.adminA } })).status).toBe(200);
    clock += 600_000;
    const later = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: PW.viewerA } });
    expect([later.status, Number(later.headers.get('retry-after'))]).toEqual([429, 300]);
    clock += 300_000;
    expect((await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'vic@alpha.example', password: PW.viewerA } })).status).toBe(200);
  });

  it('an unknown login is throttled exactly like a known one (no user enumeration)', async () => {
    nextWindow();
    const seq = async (login: string) => {
      const out: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await call(url(), 'POST', '/v1/auth/signin', { body: { login, password: `guess ${i} wrong` } });
        out.push(`${r.status} ${r.json.error.code} ${r.headers.get('retry-after') ?? ''}`);
      }
      return out;
    };
    const known = await seq('ada@alpha.example');
    nextWindow();
    const unknown = await seq('ghost@alpha.example');
    expect(known).toEqual([...Array(5).fill('401 SIGNIN_FAILED '), '429 SIGNIN_THROTTLED 900']);
    expect(unknown).toEqual(known);
  });

  it('one source is limited across accounts (12 attempts a window); X-Forwarded-For does not reset it', async () => {
    nextWindow();
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await call(url(), 'POST', '/v1/auth/signin', { body: { login: `spray-${i}@alpha.example`, password: 'Winter2030!!' }, headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      codes.push(r.status);
    }
    expect(codes).toEqual(Array(12).fill(401));
    const next = await call(url(), 'POST', '/v1/auth/signin', { body: { login: 'bo@beta.example', password: PW.viewerB }, headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect([next.status, next.json.error.code]).toEqual([429, 'SIGNIN_THROTTLED']);
  });
});

describe('CSRF', () => {
  let admin: SignedIn;
  beforeAll(async () => {
    nextWindow();
    admin = await signIn(url(), 'ada@alpha.example', PW.adminA);
  });
  const status = async () => (await env.pool.query('select status from suggestion where suggestion_id = $1', [A.suggestionId])).rows[0].status;

  it('a cookie-authenticated write without X-CSRF-Token is refused with 403 CSRF_TOKEN_MISSING and changes nothing', async () => {
    const r = await call(url(), 'POST', `/v1/suggestions/${A.suggestionId}`, { cookie: admin.cookie, body: { status: 'dismissed' } });
    expect([r.status, r.json.error.code]).toEqual([403, 'CSRF_TOKEN_MISSING']);
    expect(await status()).toBe('new');
  });

  it("a wrong token, or another session's, is refused with 403 CSRF_TOKEN_INVALID", async () => {
    const other = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    for (const csrf of ['x'.repeat(43), other.csrf]) {
      const r = await call(url(), 'POST', `/v1/suggestions/${A.suggestionId}`, { cookie: admin.cookie, csrf, body: { status: 'dismissed' } });
      expect([r.status, r.json.error.code]).toEqual([403, 'CSRF_TOKEN_INVALID']);
    }
    const del = await call(url(), 'DELETE', `/v1/auth/sessions/${other.sessionId}`, { cookie: admin.cookie });
    expect([del.status, del.json.error.code]).toEqual([403, 'CSRF_TOKEN_MISSING']);
    expect(await status()).toBe('new');
  });

  it('with the right token the write goes through; an API key in the Authorization header needs none', async () => {
    const r = await call(url(), 'POST', `/v1/suggestions/${A.suggestionId}`, { cookie: admin.cookie, csrf: admin.csrf, body: { status: 'shown' } });
    expect(r.status).toBe(200);
    expect(await status()).toBe('shown');
    const k = await call(url(), 'POST', `/v1/suggestions/${A.suggestionId}`, { bearer: A.readKey, body: { status: 'accepted' } });
    expect(k.status).toBe(200);
    // GET /v1/auth/session hands the dashboard its token
    const who = await call(url(), 'GET', '/v1/auth/session', { cookie: admin.cookie });
    expect(who.json).toMatchObject({ via: 'session', csrf_token: admin.csrf, user: { login: 'ada@alpha.example', role: 'admin' }, org_id: A.orgId });
  });

  it('the HTML sign-in form needs its double-submit token (login CSRF)', async () => {
    const forged = await call(url(), 'POST', '/v1/auth/signin', { form: { login: 'ada@alpha.example', password: PW.adminA } });
    expect(forged.status).toBe(403);
    expect(forged.text).toContain('data-code="CSRF_TOKEN_MISSING"');
    expect(findCookie(forged.setCookies, 'kaching_session')).toBeUndefined();
    const page = await call(url(), 'GET', '/signin');
    const token = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const cookie = findCookie(page.setCookies, 'kaching_signin')!.split(';')[0]!;
    expect(findCookie(page.setCookies, 'kaching_signin')).toContain('SameSite=Strict');
    const mismatched = await call(url(), 'POST', '/v1/auth/signin', { cookie, form: { login: 'ada@alpha.example', password: PW.adminA, csrf: 'y'.repeat(43) } });
    expect([mismatched.status, mismatched.text.includes('data-code="CSRF_TOKEN_INVALID"')]).toEqual([403, true]);
    const okForm = await call(url(), 'POST', '/v1/auth/signin', { cookie, form: { login: 'ada@alpha.example', password: PW.adminA, csrf: token } });
    expect([okForm.status, okForm.headers.get('location')]).toEqual([303, '/']);
    expect(findCookie(okForm.setCookies, 'kaching_session')).toBeDefined();
  });
});

describe('roles, sign-out, expiry and sessions', () => {
  it('a viewer may read and acknowledge but not configure: 403 ROLE_INSUFFICIENT; an admin may', async () => {
    nextWindow();
    const v = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    const a = await signIn(url(), 'ada@alpha.example', PW.adminA);
    const quota = { deployment_id: A.deploymentId, name: 'people-q', metric: 'model_tokens_in', period: 'daily', hard_limit: 5 };
    const r = await call(url(), 'POST', '/v1/quota', { cookie: v.cookie, csrf: v.csrf, body: quota });
    expect([r.status, r.json.error.code]).toEqual([403, 'ROLE_INSUFFICIENT']);
    expect((await call(url(), 'POST', '/v1/quota', { cookie: a.cookie, csrf: a.csrf, body: quota })).status).toBe(200);
    // operator (installation-wide) endpoints are for operator API keys only
    const op = await call(url(), 'POST', '/v1/prices', { cookie: a.cookie, csrf: a.csrf, body: { provider: 'openai', model_name: 'gpt-x', input_per_1m_micro_usd: 1 } });
    expect([op.status, op.json.error.code]).toEqual([403, 'ROLE_INSUFFICIENT']);
  });

  it('sign-out revokes the session: the cookie is cleared, then refused (401 SESSION_INVALID), and the dashboard redirects to /signin', async () => {
    const s = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    expect((await call(url(), 'GET', '/', { cookie: s.cookie })).status).toBe(200);
    const out = await call(url(), 'POST', '/v1/auth/signout', { cookie: s.cookie, csrf: s.csrf });
    expect(out.status).toBe(200);
    expect(findCookie(out.setCookies, 'kaching_session')).toMatch(/^kaching_session=; .*Max-Age=0/);
    const after = await call(url(), 'GET', '/v1/alerts', { cookie: s.cookie });
    expect([after.status, after.json.error.code]).toEqual([401, 'SESSION_INVALID']);
    const page = await call(url(), 'GET', '/', { cookie: s.cookie });
    expect([page.status, page.headers.get('location')]).toEqual([303, '/signin']);
  });

  it('a session ends after its idle timeout and after its absolute lifetime', async () => {
    const s = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    clock += 3599_000;
    expect((await call(url(), 'GET', '/v1/alerts', { cookie: s.cookie })).status).toBe(200); // used: idle clock restarts
    clock += 3599_000;
    expect((await call(url(), 'GET', '/v1/alerts', { cookie: s.cookie })).status).toBe(200);
    clock += 3601_000;
    const idle = await call(url(), 'GET', '/v1/alerts', { cookie: s.cookie });
    expect([idle.status, idle.json.error.message]).toEqual([401, 'The session ended after inactivity']);

    // used every 50 minutes it never idles out, but 12 hours after sign-in it is over
    const t = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    for (let step = 1; step <= 14; step++) {
      clock += 50 * 60_000;
      expect((await call(url(), 'GET', '/v1/alerts', { cookie: t.cookie })).status, `after ${step * 50} min`).toBe(200);
    }
    clock += 50 * 60_000;
    const expired = await call(url(), 'GET', '/v1/alerts', { cookie: t.cookie });
    expect([expired.status, expired.json.error.message]).toEqual([401, 'The session has expired']);
  });

  it('a viewer lists their own sessions, an admin the org’s; a session of another org is not found', async () => {
    nextWindow();
    const v = await signIn(url(), 'vic@alpha.example', PW.viewerA);
    const a = await signIn(url(), 'ada@alpha.example', PW.adminA);
    const b = await signIn(url(), 'bo@beta.example', PW.viewerB);
    const mine = await call(url(), 'GET', '/v1/auth/sessions', { cookie: v.cookie });
    expect(new Set(mine.json.items.map((s: { login: string }) => s.login))).toEqual(new Set(['vic@alpha.example']));
    expect(mine.json.items.find((s: { session_id: string }) => s.session_id === v.sessionId).current).toBe(true);
    const all = await call(url(), 'GET', '/v1/auth/sessions', { cookie: a.cookie });
    expect(new Set(all.json.items.map((s: { login: string }) => s.login))).toEqual(new Set(['vic@alpha.example', 'ada@alpha.example']));
    expect(JSON.stringify(all.json)).not.toMatch(/secret|hash/);
    const foreign = await call(url(), 'DELETE', `/v1/auth/sessions/${b.sessionId}`, { cookie: a.cookie, csrf: a.csrf });
    expect([foreign.status, foreign.json.error.code]).toEqual([404, 'NOT_FOUND']);
    const adminsOwn = await call(url(), 'DELETE', `/v1/auth/sessions/${a.sessionId}`, { cookie: v.cookie, csrf: v.csrf });
    expect(adminsOwn.status).toBe(404);
    const revoke = await call(url(), 'DELETE', `/v1/auth/sessions/${v.sessionId}`, { cookie: a.cookie, csrf: a.csrf });
    expect(revoke.json).toMatchObject({ revoked: true, already_ended: false });
    expect((await call(url(), 'GET', '/v1/alerts', { cookie: v.cookie })).status).toBe(401);
    expect((await call(url(), 'GET', '/v1/alerts', { cookie: b.cookie })).status).toBe(200);
  });
});

describe('bearer JWTs', () => {
  async function tokenFor(login: string, password: string) {
    const r = await call(url(), 'POST', '/v1/auth/token', { body: { login, password } });
    expect(r.status, r.text).toBe(200);
    return r.json as { access_token: string; expires_in: number; session_id: string };
  }

  it('are EdDSA-signed by the installation key (verifiable with its JWKS), short-lived, and carry org, role and session', async () => {
    nextWindow();
    const t = await tokenFor('ada@alpha.example', PW.adminA);
    expect(t.expires_in).toBe(900);
    const header = decodeProtectedHeader(t.access_token);
    const claims = decodeJwt(t.access_token);
    expect(header).toMatchObject({ alg: 'EdDSA', typ: 'JWT' });
    const installation = (await env.pool.query('select installation_id from installation')).rows[0].installation_id;
    expect(claims).toMatchObject({ org: A.orgId, role: 'admin', sid: t.session_id, iss: jwtIssuer(installation), aud: 'kaching-api' });
    expect(claims.exp! - claims.iat!).toBe(900);
    const jwks = (await call(url(), 'GET', '/.well-known/jwks.json')).json;
    const verified = await jwtVerify(t.access_token, createLocalJWKSet(jwks), { currentDate: new Date(clock) });
    expect(verified.protectedHeader.kid).toBe(header.kid);
    const r = await call(url(), 'GET', '/v1/deployments', { bearer: t.access_token });
    expect(r.json.items.map((d: { deployment_id: string }) => d.deployment_id)).toEqual([A.deploymentId]);
    // a JWT in the Authorization header needs no CSRF token
    expect((await call(url(), 'POST', `/v1/suggestions/${A.suggestionId}`, { bearer: t.access_token, body: { status: 'dismissed' } })).status).toBe(200);
  });

  it('an expired JWT is refused with 401 JWT_EXPIRED', async () => {
    const t = await tokenFor('vic@alpha.example', PW.viewerA);
    clock += 899_000;
    expect((await call(url(), 'GET', '/v1/alerts', { bearer: t.access_token })).status).toBe(200);
    clock += 1_000;
    const r = await call(url(), 'GET', '/v1/alerts', { bearer: t.access_token });
    expect([r.status, r.json.error.code]).toEqual([401, 'JWT_EXPIRED']);
  });

  it('a JWT from a revoked session is refused with 401 JWT_REVOKED: revoked through the API at once, through the CLI within the cache time', async () => {
    nextWindow();
    const t = await tokenFor('vic@alpha.example', PW.viewerA);
    expect((await call(url(), 'GET', '/v1/alerts', { bearer: t.access_token })).status).toBe(200);
    const del = await call(url(), 'DELETE', `/v1/auth/sessions/${t.session_id}`, { bearer: t.access_token });
    expect(del.status).toBe(200);
    const r = await call(url(), 'GET', '/v1/alerts', { bearer: t.access_token });
    expect([r.status, r.json.error.code]).toEqual([401, 'JWT_REVOKED']);

    const u = await tokenFor('vic@alpha.example', PW.viewerA);
    expect((await call(url(), 'GET', '/v1/alerts', { bearer: u.access_token })).status).toBe(200); // now cached as live
    const revoke = commands.find((c) => c.name === 'session revoke')!;
    const done = await revoke.run({ args: { id: u.session_id }, positionals: [], config: { ...loadConfig(env.env) }, json: true, progress: () => undefined, signal: new AbortController().signal });
    expect(done.data).toMatchObject({ revoked: true, already_ended: false });
    const deadline = Date.now() + 10_000;
    let code = '';
    while (Date.now() < deadline) {
      const x = await call(url(), 'GET', '/v1/alerts', { bearer: u.access_token });
      if (x.status === 401) {
        code = x.json.error.code;
        break;
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(code).toBe('JWT_REVOKED');
  });

  it('signing out of the browser session revokes the JWTs issued from it; a JWT refreshes only while its session lives', async () => {
    nextWindow();
    const s = await signIn(url(), 'ada@alpha.example', PW.adminA);
    const noCsrf = await call(url(), 'POST', '/v1/auth/token', { cookie: s.cookie, body: {} });
    expect([noCsrf.status, noCsrf.json.error.code]).toEqual([403, 'CSRF_TOKEN_MISSING']);
    const t = (await call(url(), 'POST', '/v1/auth/token', { cookie: s.cookie, csrf: s.csrf, body: {} })).json;
    expect(t.session_id).toBe(s.sessionId);
    const refreshed = await call(url(), 'POST', '/v1/auth/token', { bearer: t.access_token, body: {} });
    expect(refreshed.status).toBe(200);
    await call(url(), 'POST', '/v1/auth/signout', { cookie: s.cookie, csrf: s.csrf });
    for (const jwt of [t.access_token, refreshed.json.access_token]) {
      const r = await call(url(), 'GET', '/v1/alerts', { bearer: jwt });
      expect([r.status, r.json.error.code]).toEqual([401, 'JWT_REVOKED']);
    }
    const again = await call(url(), 'POST', '/v1/auth/token', { bearer: t.access_token, body: {} });
    expect(again.status).toBe(401);
  });

  it('a tampered JWT, or one signed by another key with the right claims, is refused with 401 JWT_INVALID; an API key cannot mint JWTs', async () => {
    nextWindow();
    const t = await tokenFor('vic@alpha.example', PW.viewerA);
    const [h, p, sig] = t.access_token.split('.');
    const claims = decodeJwt(t.access_token);
    const lifted = Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url');
    const tampered = await call(url(), 'GET', '/v1/alerts', { bearer: `${h}.${lifted}.${sig}` });
    expect([tampered.status, tampered.json.error.code]).toEqual([401, 'JWT_INVALID']);
    expect(p).not.toBe(lifted);
    const { privateKey } = generateKeyPairSync('ed25519');
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'EdDSA', kid: decodeProtectedHeader(t.access_token).kid! }).sign(privateKey);
    const f = await call(url(), 'GET', '/v1/alerts', { bearer: forged });
    expect([f.status, f.json.error.code]).toEqual([401, 'JWT_INVALID']);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.x`;
    expect((await call(url(), 'GET', '/v1/alerts', { bearer: none })).json.error.code).toBe('JWT_INVALID');
    const k = await call(url(), 'POST', '/v1/auth/token', { bearer: A.readKey, body: {} });
    expect([k.status, k.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
  });
});

describe('over TLS', () => {
  it('serves HTTPS with API_TLS_CERT/API_TLS_KEY; the session cookie is then Secure and __Host- prefixed, and only that name is accepted', async () => {
    nextWindow();
    const dir = mkdtempSync(join(tmpdir(), 'kaching-api-tls-'));
    const pki = makePki(dir);
    const server = pki.server('api');
    const tlsApi = await start(
      { ...loadConfig({ ...env.env, API_TLS_CERT: server.certFile, API_TLS_KEY: server.keyFile }), port: 0 },
      { pool: env.pool, nc, clock: () => clock },
    );
    try {
      expect(tlsApi.url).toMatch(/^https:/);
      const post = (path: string, body: unknown, cookie?: string) =>
        new Promise<{ status: number; setCookie: string[]; body: string }>((resolve, reject) => {
          const r = request(`${tlsApi.url}${path}`, { method: body === undefined ? 'GET' : 'POST', ca: pki.ca.cert, headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) } }, (res) => {
            let text = '';
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode!, setCookie: res.headers['set-cookie'] ?? [], body: text }));
          });
          r.on('error', reject);
          r.end(body === undefined ? undefined : JSON.stringify(body));
        });
      const r = await post('/v1/auth/signin', { login: 'vic@alpha.example', password: PW.viewerA });
      expect(r.status).toBe(200);
      const set = findCookie(r.setCookie, '__Host-kaching_session')!;
      expect(set).toMatch(/^__Host-kaching_session=ks_\S+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure$/);
      const value = set.split(';')[0]!.split('=')[1]!;
      expect((await post('/v1/deployments', undefined, `__Host-kaching_session=${value}`)).status).toBe(200);
      // the unprefixed name is what plain HTTP uses; over TLS it is not looked at
      expect((await post('/v1/deployments', undefined, `kaching_session=${value}`)).status).toBe(401);
    } finally {
      await tlsApi.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
