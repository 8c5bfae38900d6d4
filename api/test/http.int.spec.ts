import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { NatsConnection } from '@nats-io/transport-node';
import { baseConfig, type ConfigChange } from '@kaching/contracts';
import { commands, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { waitUntil } from '../../test/support/wait.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { client, seedOrg, type SeededOrg } from './support/seed.js';

let env: IsolatedEnv;
let api: ApiHandle;
let nc: NatsConnection;
let A: SeededOrg;
// "Now" for the API and the seeded rows: 23:30 UTC, the hour in which "today" once meant two different days
const AT = new Date('2026-11-20T23:30:00Z');

beforeAll(async () => {
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'alpha', { at: AT });
  nc = await env.nats();
  api = await start({ ...loadConfig(env.env), port: 0, admissionTimeoutMs: 300 }, { pool: env.pool, nc, clock: () => AT.getTime() });
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

describe('auth', () => {
  it('answers 401 without a key, with a malformed or unknown key, and for a revoked or expired key', async () => {
    const none = await client(api.url)('GET', '/v1/alerts');
    expect([none.status, none.json.error.code]).toEqual([401, 'API_KEY_MISSING']);
    for (const bad of ['nope', 'ka_0123456789abcdef01234567_' + 'x'.repeat(43), A.readKey.slice(0, -1) + (A.readKey.endsWith('A') ? 'B' : 'A')]) {
      const r = await client(api.url, bad)('GET', '/v1/alerts');
      expect([r.status, r.json.error.code]).toEqual([401, 'API_KEY_INVALID']);
    }
    const expired = await issueApiKey(env.pool, { orgId: A.orgId, scopes: 'read', expiresAt: new Date(Date.now() - 1000) });
    expect((await client(api.url, expired.apiKey)('GET', '/v1/alerts')).json.error.code).toBe('API_KEY_INVALID');
    const revoke = commands.find((c) => c.name === 'apikey revoke')!;
    const k = await issueApiKey(env.pool, { orgId: A.orgId, scopes: 'read' });
    expect((await client(api.url, k.apiKey)('GET', '/v1/alerts')).status).toBe(200);
    await revoke.run(cliCtx({ 'key-id': k.keyId }));
    expect((await client(api.url, k.apiKey)('GET', '/v1/alerts')).status).toBe(401);
  });

  it('a read key cannot use admin endpoints; an admin key cannot use operator endpoints', async () => {
    const r = await client(api.url, A.readKey)('POST', '/v1/quota', { deployment_id: A.deploymentId, name: 'q', metric: 'model_tokens_in', period: 'daily', hard_limit: 5 });
    expect([r.status, r.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
    const p = await client(api.url, A.adminKey)('POST', '/v1/prices', { provider: 'openai', model_name: 'gpt-x', input_per_1m_micro_usd: 1 });
    expect([p.status, p.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
  });

  it('stores only a hash of the secret', async () => {
    const k = await issueApiKey(env.pool, { orgId: A.orgId, scopes: 'read' });
    const row = (await env.pool.query('select * from api_key where key_id = $1', [k.keyId])).rows[0];
    const secret = k.apiKey.split('_').slice(2).join('_');
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.key_hash).toHaveLength(32);
  });
});

describe('HTTP behaviour', () => {
  it('reads carry Cache-Control and a strong ETag; If-None-Match answers 304 until the data changes', async () => {
    const a = client(api.url, A.readKey);
    const first = await a('GET', `/v1/alerts?deployment_id=${A.deploymentId}`);
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('private, max-age=60');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/); // strong (no W/) sha-256 of the body
    const again = await a('GET', `/v1/alerts?deployment_id=${A.deploymentId}`, undefined, { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    expect(again.headers.get('etag')).toBe(etag);
    const other = await a('GET', `/v1/alerts?deployment_id=${A.deploymentId}`, undefined, { 'if-none-match': '"something-else"' });
    expect(other.status).toBe(200);
    await client(api.url, A.adminKey)('POST', `/v1/alerts/${A.alertId}/ack`);
    const changed = await a('GET', `/v1/alerts?deployment_id=${A.deploymentId}`, undefined, { 'if-none-match': etag });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(changed.json.items[0].acknowledged).toBe(true);
  });

  it('errors use catalogue codes: unknown route, validation (with field and rule), malformed JSON, unknown field', async () => {
    const a = client(api.url, A.adminKey);
    const nf = await a('GET', '/v1/nope');
    expect([nf.status, nf.json.error.code]).toEqual([404, 'NOT_FOUND']);
    const fmt = await a('GET', '/v1/concurrency?deployment_id=not-a-uuid');
    expect(fmt.status).toBe(400);
    expect(fmt.json.error).toMatchObject({ code: 'FIELD_FORMAT', field: 'deployment_id', rule: 'format:uuid' });
    const req = await a('GET', '/v1/concurrency');
    expect(req.json.error).toMatchObject({ code: 'FIELD_REQUIRED', field: 'deployment_id' });
    const json = await a('POST', '/v1/quota', '{"deployment_id":');
    expect([json.status, json.json.error.code]).toEqual([400, 'MALFORMED_JSON']);
    const unk = await a('POST', '/v1/quota', { deployment_id: A.deploymentId, name: 'q', metric: 'jobs', period: 'daily', evil: 1 });
    expect(unk.json.error).toMatchObject({ code: 'FIELD_UNKNOWN', field: 'evil' });
    const en = await a('POST', '/v1/quota', { deployment_id: A.deploymentId, name: 'q', metric: 'jobs', period: 'yearly' });
    expect(en.json.error).toMatchObject({ code: 'FIELD_ENUM', field: 'period' });
    const range = await a('GET', '/v1/alerts?limit=5000');
    expect(range.json.error).toMatchObject({ code: 'FIELD_RANGE', field: 'limit' });
    const cur = await a('GET', '/v1/alerts?cursor=garbage');
    expect(cur.json.error).toMatchObject({ code: 'FIELD_FORMAT', field: 'cursor' });
  });

  it('lists paginate with limit and an opaque cursor, without gaps or repeats', async () => {
    await env.pool.query(`select ensure_hourly_partitions(now() - interval '27 hours', now())`);
    for (let h = 2; h < 27; h++) {
      await env.pool.query(
        `insert into usage_rollup_hourly (deployment_id, bucket_start, agent_type, org_id, jobs) values ($1, date_trunc('hour', now()) - make_interval(hours => $3), 'pager', $2, $3)`,
        [A.deploymentId, A.orgId, h],
      );
    }
    const a = client(api.url, A.readKey);
    const seen: number[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const r = await a('GET', `/v1/usage/hourly?agent_type=pager&limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.json.items.map((i: { jobs: string }) => Number(i.jobs)));
      cursor = r.json.next_cursor;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => 26 - i));
  });

  it('/openapi.json validates with swagger-parser and lists every route; /docs lists every operation', async () => {
    const doc = (await client(api.url)('GET', '/openapi.json')).json;
    await SwaggerParser.validate(structuredClone(doc));
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${path}`);
    const registered = api.routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
    expect(registered.length).toBeGreaterThan(35);
    expect([...documented].sort()).toEqual([...new Set(registered)].sort());
    for (const must of ['GET /v1/usage/daily', 'GET /v1/usage/hourly', 'GET /v1/concurrency', 'GET /v1/limits/effective', 'GET /v1/alerts', 'POST /v1/alerts/{id}/ack',
      'GET /v1/suggestions', 'POST /v1/suggestions/{id}', 'GET /v1/decisions', 'GET /v1/usage/export.csv', 'POST /v1/quota', 'POST /v1/budget',
      'POST /v1/license/activate', 'POST /v1/tokens', 'POST /v1/keys', 'POST /v1/budget/check', 'GET /v1/deployments/{id}/nodes', 'GET /v1/deployments/{id}/agent-types',
      'GET /metrics', 'GET /healthz', 'GET /readyz', 'GET /']) {
      expect(documented.has(must), must).toBe(true);
    }
    const docs = await client(api.url)('GET', '/docs');
    expect(docs.headers.get('content-type')).toContain('text/html');
    for (const r of api.routes) expect(docs.text).toContain(r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}'));
  });

  it('serves /metrics, /healthz and /readyz', async () => {
    const c = client(api.url);
    expect((await c('GET', '/healthz')).json).toEqual({ ok: true });
    expect((await c('GET', '/readyz')).json).toMatchObject({ ok: true, postgres: true, nats: true });
    const m = await c('GET', '/metrics');
    expect(m.text).toContain('kaching_api_requests_total');
  });
});

describe('admin writes publish config changes', () => {
  it('quota, budget, token, key and deployment changes each publish on the config subject', async () => {
    const got: ConfigChange[] = [];
    const sub = nc.subscribe(env.names.configWildcard, { callback: (_e, m) => void got.push(m.json<ConfigChange>()) });
    await nc.flush();
    const a = client(api.url, A.adminKey);
    const q = await a('POST', '/v1/quota', { deployment_id: A.deploymentId, name: 'tokens', metric: 'model_tokens_out', period: 'monthly', hard_limit: '2000000', soft_threshold: 1500000 });
    expect(q.status).toBe(200);
    expect(q.json.hard_limit).toBe('2000000.000000');
    const b = await a('POST', '/v1/budget', { deployment_id: A.deploymentId, scope: 'gpu', metric: 'gpu_seconds', period: 'daily', limit_units: 3600, action: 'throttle', action_params: { max_concurrency: 2 } });
    expect(b.status).toBe(200);
    const bad = await a('POST', '/v1/budget', { deployment_id: A.deploymentId, scope: 'gpu', metric: 'gpu_seconds', period: 'daily', limit_units: 3600, action: 'throttle' });
    expect(bad.json.error).toMatchObject({ code: 'FIELD_REQUIRED', field: 'action_params.max_concurrency' });
    const t = await a('POST', '/v1/tokens', { action: 'issue', deployment_id: A.deploymentId, scopes: ['ingest:usage'] });
    const rot = await a('POST', '/v1/tokens', { action: 'rotate', token_id: t.json.token_id });
    expect(rot.json.replaced_token_id).toBe(t.json.token_id);
    const old = (await env.pool.query('select revoked_at from ingest_token where token_id = $1', [t.json.token_id])).rows[0];
    expect(old.revoked_at).not.toBeNull();
    const p1 = await a('GET', `/v1/tokens?deployment_id=${A.deploymentId}&limit=2`);
    const p2 = await a('GET', `/v1/tokens?deployment_id=${A.deploymentId}&limit=2&cursor=${p1.json.next_cursor}`);
    const ids = [...p1.json.items, ...p2.json.items].map((x: { token_id: string }) => x.token_id);
    expect(new Set(ids).size).toBe(3); // seeded + issued + rotated, no repeats
    expect(p2.json.next_cursor).toBeNull();
    expect(JSON.stringify(p1.json)).not.toContain(rot.json.token); // secrets are never listed
    const kx = await a('POST', '/v1/keys', { action: 'register', deployment_id: A.deploymentId, key_id: 'kx', public_key: Buffer.alloc(32, 9).toString('base64') });
    // no valid_from: valid from now minus INGEST_MAX_AGE_MS, so reports already in flight are accepted
    expect(Date.now() - Date.parse(kx.json.valid_from)).toBeGreaterThanOrEqual(loadConfig(env.env).keyInFlightMs - 60_000);
    const badReason = await a('POST', '/v1/keys', { action: 'revoke', deployment_id: A.deploymentId, key_id: 'kx', reason: 'lost' });
    expect(badReason.status).toBe(400);
    expect(badReason.json.error.field).toBe('reason');
    expect((await a('POST', '/v1/keys', { action: 'revoke', deployment_id: A.deploymentId, key_id: 'kx', reason: 'superseded' })).json).toMatchObject({ reason: 'superseded' });
    const listed = await a('GET', `/v1/keys?deployment_id=${A.deploymentId}`);
    expect(listed.json.items.find((k: { key_id: string }) => k.key_id === 'kx')).toMatchObject({ revoke_reason: 'superseded' });
    await a('PATCH', `/v1/deployments/${A.deploymentId}`, { timezone: 'Europe/Berlin' });
    const tz = await a('PATCH', `/v1/deployments/${A.deploymentId}`, { timezone: 'Mars/Base' });
    expect(tz.json.error).toMatchObject({ code: 'FIELD_FORMAT', field: 'timezone' });
    const expected = ['budget', 'deployment', 'key', 'key', 'quota', 'token', 'token'];
    // the API published each change after its write; wait until they all arrived, then check there was no more
    await waitUntil(() => got.length >= expected.length, 10_000, 'the config-change messages');
    await nc.flush();
    sub.unsubscribe();
    expect(got.map((g) => g.kind).sort()).toEqual(expected.sort());
    for (const g of got) expect(g.deployment_id).toBe(A.deploymentId);
    const lim = await client(api.url, A.readKey)('GET', `/v1/limits/effective?deployment_id=${A.deploymentId}`);
    expect(lim.json.quotas.map((x: { name: string }) => x.name)).toEqual(['context', 'tokens']);
    expect(lim.json.budgets.find((x: { scope: string }) => x.scope === 'gpu').action_params).toEqual({ max_concurrency: 2 });
    expect(lim.json.license).toMatchObject({ plan_id: 'team', seats_limit: 10, nodes_limit: 4 });
  });

  it('operators add plans and versioned model prices', async () => {
    const op = (await issueApiKey(env.pool, { orgId: A.orgId, scopes: ['read', 'operator'] })).apiKey;
    const c = client(api.url, op);
    expect((await c('PUT', '/v1/plans/business', { name: 'Business', rank: 2, meta: { limits: { seats: 50 } } })).status).toBe(200);
    expect((await c('POST', '/v1/prices', { provider: 'openai', model_name: 'gpt-x', input_per_1m_micro_usd: 2_000_000 })).json.version).toBe(1);
    expect((await c('POST', '/v1/prices', { provider: 'openai', model_name: 'gpt-x', input_per_1m_micro_usd: 3_000_000 })).json.version).toBe(2);
    const prices = await c('GET', '/v1/prices');
    expect(prices.json.items).toHaveLength(1);
    expect(prices.json.items[0]).toMatchObject({ version: 2, input_per_1m_micro_usd: '3000000' });
    expect((await c('GET', '/v1/plans')).json.items.map((p: { plan_id: string }) => p.plan_id)).toEqual(['team', 'business']);
  });
});

describe('POST /v1/budget/check', () => {
  it('answers 503 when no enforcer answers in time', async () => {
    const r = await client(api.url, A.readKey)('POST', '/v1/budget/check', { deployment_id: A.deploymentId, scope: 'llm', estimate_units: 5 });
    expect([r.status, r.json.error.code]).toEqual([503, 'STREAM_UNAVAILABLE']);
  });

  it('forwards the request over NATS and answers 200 on allow, 402 on deny, with the remaining budget', async () => {
    // a responder on the real check subject standing in for the enforcer
    const sub = nc.subscribe(env.names.checkSubject(A.deploymentId), {
      callback: (_e, m) => {
        const req = m.json<{ estimate_units: number; scope: string; deployment_id: string }>();
        const remaining = 100;
        const allow = req.estimate_units <= remaining;
        m.respond(JSON.stringify({ allow, deployment_id: req.deployment_id, scope: req.scope, limit_units: 1000, used_units: 900, reserved_units: 0, remaining_units: remaining, ...(allow ? {} : { reason: 'over budget', action: 'block' }) }));
      },
    });
    await nc.flush();
    const a = client(api.url, A.readKey);
    const ok = await a('POST', '/v1/budget/check', { deployment_id: A.deploymentId, scope: 'llm', estimate_units: 50 });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ allow: true, remaining_units: 100 });
    const no = await a('POST', '/v1/budget/check', { deployment_id: A.deploymentId, scope: 'llm', estimate_units: 500 });
    expect(no.status).toBe(402);
    expect(no.json.error.code).toBe('BUDGET_DENIED');
    expect(no.json.admission).toMatchObject({ allow: false, remaining_units: 100, action: 'block' });
    sub.unsubscribe();
  });
});

describe('dashboard data', () => {
  it('utilisation cards compute used, cap and % of cap in exact arithmetic', async () => {
    const u = await client(api.url, A.readKey)('GET', `/v1/deployments/${A.deploymentId}/utilisation`);
    const card = (k: string) => u.json.cards.find((c: { key: string }) => c.key === k);
    expect(card('seats')).toMatchObject({ used: '1', cap: '10', pct: 10 });
    expect(card('nodes')).toMatchObject({ used: '1', cap: '4', pct: 25 });
    expect(card('context')).toMatchObject({ used: '1000', pct: 1 });
    expect(card('seats').series).toHaveLength(14);
  });

  it('concurrency answers the minute series with its peak and daily peaks; drill-down lists nodes and agent types with usage', async () => {
    const a = client(api.url, A.readKey);
    const c = await a('GET', `/v1/concurrency?deployment_id=${A.deploymentId}`);
    expect(c.json.items).toHaveLength(1);
    expect(c.json.peak.jobs_running).toBe(3);
    expect(c.json.daily_peaks[0].peak).toBe(3);
    const nodes = await a('GET', `/v1/deployments/${A.deploymentId}/nodes`);
    expect(nodes.json.items[0]).toMatchObject({ node_id: A.nodeId, jobs: '1', model_tokens: '1500', agent_types: ['coder'] });
    const types = await a('GET', `/v1/deployments/${A.deploymentId}/agent-types`);
    expect(types.json.items).toContainEqual(expect.objectContaining({ agent_type: 'coder', agents: '1', jobs: '1', model_tokens_in: '1000' }));
    const detail = await a('GET', `/v1/deployments/${A.deploymentId}/agent-types/coder`);
    expect(detail.json.agents[0].agent_id).toBe(A.agentId);
    expect((await a('GET', `/v1/deployments/${A.deploymentId}/agent-types/nobody`)).status).toBe(404);
  });

  it('sends a browser without a session from the dashboard to the sign-in page; serves the script to anyone', async () => {
    const html = await client(api.url)('GET', '/');
    expect(html.status).toBe(200);
    expect(html.text).toContain('data-testid="signin-form"');
    expect(html.text).not.toContain('data-testid="cards"');
    // the dashboard's ES modules: the entry and every module it imports, transitively, are served as JavaScript
    const seen = new Set<string>();
    const load = async (path: string): Promise<void> => {
      if (seen.has(path)) return;
      seen.add(path);
      const js = await client(api.url)('GET', path);
      expect(js.status, path).toBe(200);
      expect(js.headers.get('content-type'), path).toContain('javascript');
      for (const m of js.text.matchAll(/from '(\.\.?\/[^']+)'/g)) await load(new URL(m[1]!, `http://x${path}`).pathname);
    };
    await load('/ui/main.js');
    expect([...seen]).toEqual(expect.arrayContaining(['/ui/main.js', '/ui/views/cards.js', '/ui/dom.js', '/ui/format.js']));
    expect((await client(api.url)('GET', '/ui/../package.json')).status).toBe(404);
  });
});

describe('CLI (operator bootstrap, directly on the database)', () => {
  it('creates an org, a deployment and an API key that then works over HTTP', async () => {
    const run = (name: string, args: Record<string, string>) => commands.find((c) => c.name === name)!.run(cliCtx(args));
    const org = (await run('org create', { name: 'gamma' })).data as { org_id: string };
    const dep = (await run('deployment create', { org: org.org_id, name: 'g1', timezone: 'Asia/Tokyo', enforcement: 'hard' })).data as { deployment_id: string; enforcement: string };
    expect(dep.enforcement).toBe('hard');
    const key = (await run('apikey issue', { org: org.org_id, scopes: 'read,admin', expires: '30d' })).data as { api_key: string; scopes: string[] };
    expect(key.scopes).toEqual(['read', 'admin']);
    const r = await client(api.url, key.api_key)('GET', '/v1/deployments');
    expect(r.json.items.map((d: { deployment_id: string }) => d.deployment_id)).toEqual([dep.deployment_id]);
    await expect(run('apikey issue', { org: org.org_id, scopes: 'root' })).rejects.toThrow(/Unknown scope/);
  });
});

describe('kaching api', () => {
  it('runs the API alone until the signal fires', async () => {
    const prev = process.env.API_PORT;
    process.env.API_PORT = '0';
    try {
      const ac = new AbortController();
      let url = '';
      const run = commands.find((c) => c.name === 'api')!.run({ ...cliCtx({}), signal: ac.signal, progress: (l: string) => { url = /on (http\S+)/.exec(l)?.[1] ?? url; } });
      for (let i = 0; i < 100 && !url; i++) await new Promise((r) => setTimeout(r, 50));
      expect((await client(url)('GET', '/healthz')).json).toEqual({ ok: true });
      ac.abort();
      expect((await run).data).toMatchObject({ stopped: true });
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      if (prev === undefined) delete process.env.API_PORT;
      else process.env.API_PORT = prev;
    }
  });
});

function cliCtx(args: Record<string, string>) {
  return {
    args,
    positionals: [],
    config: { ...baseConfig(env.env) },
    json: true,
    progress: () => undefined,
    signal: new AbortController().signal,
  };
}
