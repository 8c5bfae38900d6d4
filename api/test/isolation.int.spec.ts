import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOrg, issueLicense, licenseKeygen } from '@kaching/contracts';
import { loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { client, ORG_TABLES, seedOrg, type SeededOrg } from './support/seed.js';

let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;
let B: SeededOrg;
let vendor: { publicKey: string; privateKey: string };

beforeAll(async () => {
  env = await isolatedEnv();
  A = await seedOrg(env.pool, 'alpha', { agentType: 'coder' });
  B = await seedOrg(env.pool, 'bravo', { agentType: 'reviewer' });
  vendor = await licenseKeygen();
  api = await start({ ...loadConfig(env.env), port: 0, admissionTimeoutMs: 300, licensePublicKey: vendor.publicKey }, { pool: env.pool, nc: await env.nats() });
  // a current decision for each org in the KV bucket
  const { decisionsBucket } = await import('@kaching/contracts');
  const kv = await decisionsBucket(await env.nats(), env.names);
  for (const o of [A, B]) {
    await kv.put(env.names.decisionKey(o.deploymentId, 'llm'), JSON.stringify({ decision_id: `d-${o.orgId}`, deployment_id: o.deploymentId, org_id: o.orgId, state: 'active', scope: 'llm', code: 'BUDGET_EXCEEDED', action: 'block', message: 'x' }));
  }
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

describe('row-level security in Postgres itself', () => {
  it("a raw query under org A's setting returns no row of org B, in any org-keyed table", async () => {
    for (const table of ORG_TABLES) {
      const { foreign, own } = await asOrg(env.pool, A.orgId, async (c) => {
        const f = await c.query(`select count(*)::int as n from ${table} where org_id = $1`, [B.orgId]);
        const o = await c.query(`select count(*)::int as n from ${table} where org_id <> $1`, [A.orgId]);
        return { foreign: f.rows[0].n as number, own: o.rows[0].n as number };
      });
      expect({ table, foreign }).toEqual({ table, foreign: 0 });
      expect({ table, own }).toEqual({ table, own: 0 });
      // and B's rows are really there for the operator
      const all = await env.pool.query(`select count(*)::int as n from ${table} where org_id = $1`, [B.orgId]);
      expect(all.rows[0].n).toBeGreaterThan(0);
    }
  });

  it('the org role cannot read installation-wide secrets and tables at all: JWT keys, the HQ salt, the sign-in throttle, HQ sync', async () => {
    for (const table of ['signing_key', 'installation', 'signin_throttle', 'hq_outbox', 'hq_sync_state', 'hq_installation', 'hq_rollup_daily']) {
      await expect(asOrg(env.pool, A.orgId, (c) => c.query(`select * from ${table}`)), table).rejects.toThrow(/permission denied/);
    }
  });

  it("writes under org A's setting cannot touch or create org B rows", async () => {
    const r = await asOrg(env.pool, A.orgId, (c) => c.query(`update quota set hard_limit = 1 where org_id = $1`, [B.orgId]));
    expect(r.rowCount).toBe(0);
    await expect(
      asOrg(env.pool, A.orgId, (c) =>
        c.query(`insert into quota (quota_id, deployment_id, org_id, name, metric, period) values (gen_random_uuid(), $1, $2, 'evil', 'x', 'daily')`, [B.deploymentId, B.orgId]),
      ),
    ).rejects.toThrow(/row-level security/);
  });
});

describe('no endpoint lets org A read, export or modify org B', () => {
  const readPaths = (o: SeededOrg) => [
    `/v1/usage/daily?deployment_id=${o.deploymentId}`,
    `/v1/usage/hourly?deployment_id=${o.deploymentId}`,
    `/v1/alerts?deployment_id=${o.deploymentId}`,
    `/v1/suggestions?deployment_id=${o.deploymentId}`,
    `/v1/decisions?deployment_id=${o.deploymentId}`,
  ];
  const scopedPaths = (o: SeededOrg) => [
    `/v1/concurrency?deployment_id=${o.deploymentId}`,
    `/v1/limits/effective?deployment_id=${o.deploymentId}`,
    `/v1/deployments/${o.deploymentId}`,
    `/v1/deployments/${o.deploymentId}/nodes`,
    `/v1/deployments/${o.deploymentId}/agent-types`,
    `/v1/deployments/${o.deploymentId}/agent-types/reviewer`,
    `/v1/deployments/${o.deploymentId}/utilisation`,
    `/v1/deployments/${o.deploymentId}/bottlenecks`,
    `/v1/tokens?deployment_id=${o.deploymentId}`,
    `/v1/keys?deployment_id=${o.deploymentId}`,
  ];

  it('own data is visible (the probes below would see B if they could)', async () => {
    const b = client(api.url, B.adminKey);
    for (const p of readPaths(B)) {
      const r = await b('GET', p);
      expect(r.status, p).toBe(200);
      expect(r.json.items.length, p).toBeGreaterThan(0);
    }
    for (const p of scopedPaths(B)) expect((await b('GET', p)).status, p).toBe(200);
  });

  it('list endpoints filtered by a forged deployment id return nothing of B', async () => {
    const a = client(api.url, A.adminKey);
    for (const p of readPaths(B)) {
      const r = await a('GET', p);
      // a foreign deployment id is either unknown (404) or filters to nothing
      if (r.status === 200) expect(r.json.items, p).toEqual([]);
      else expect(r.json.error.code, p).toBe('NOT_FOUND');
      expect(r.text).not.toContain(B.orgId);
    }
  });

  it('deployment-scoped endpoints answer 404 for a forged deployment id', async () => {
    const a = client(api.url, A.adminKey);
    for (const p of scopedPaths(B)) {
      const r = await a('GET', p);
      expect(r.status, p).toBe(404);
      expect(r.json.error.code).toBe('NOT_FOUND');
      expect(r.text).not.toContain(B.orgId);
    }
  });

  it('unfiltered lists contain only the caller org', async () => {
    const a = client(api.url, A.readKey);
    for (const p of ['/v1/usage/daily', '/v1/usage/hourly', '/v1/alerts', '/v1/suggestions', '/v1/decisions', '/v1/deployments']) {
      const r = await a('GET', p);
      expect(r.status, p).toBe(200);
      expect(r.json.items.length, p).toBeGreaterThan(0);
      for (const item of r.json.items) expect(item.deployment_id, p).toBe(A.deploymentId);
      expect(r.text).not.toContain(B.deploymentId);
    }
    const org = await a('GET', '/v1/org');
    expect(org.json.org_id).toBe(A.orgId);
  });

  it("the CSV export never contains B's rows, also when asked for B's deployment", async () => {
    const a = client(api.url, A.readKey);
    const all = await a('GET', '/v1/usage/export.csv');
    expect(all.status).toBe(200);
    expect(all.text.trim().split('\n')).toHaveLength(2); // header + A's one sample
    expect(all.text).toContain(A.deploymentId);
    expect(all.text).not.toContain(B.deploymentId);
    const forged = await a('GET', `/v1/usage/export.csv?deployment_id=${B.deploymentId}`);
    expect(forged.text.trim().split('\n')).toHaveLength(1); // header only
  });

  it("every write aimed at B's resources fails and changes nothing", async () => {
    const a = client(api.url, A.adminKey);
    const before = await snapshot(B);
    const attempts: [string, string, unknown][] = [
      ['POST', `/v1/alerts/${B.alertId}/ack`, undefined],
      ['POST', `/v1/suggestions/${B.suggestionId}`, { status: 'dismissed' }],
      ['POST', '/v1/quota', { deployment_id: B.deploymentId, name: 'context', metric: 'context_bytes_written', period: 'daily', hard_limit: 1 }],
      ['DELETE', `/v1/quota/${B.quotaId}`, undefined],
      ['POST', '/v1/budget', { deployment_id: B.deploymentId, scope: 'llm', metric: 'cost_usd', period: 'daily', limit_units: 1, action: 'block' }],
      ['DELETE', `/v1/budget/${B.budgetId}`, undefined],
      ['PATCH', `/v1/deployments/${B.deploymentId}`, { enforcement: 'hard' }],
      ['PATCH', `/v1/deployments/${B.deploymentId}/nodes/${B.nodeId}`, { labels: { evil: 'yes' } }],
      ['POST', '/v1/tokens', { action: 'issue', deployment_id: B.deploymentId }],
      ['POST', '/v1/tokens', { action: 'revoke', token_id: B.tokenId }],
      ['POST', '/v1/tokens', { action: 'rotate', token_id: B.tokenId }],
      ['POST', '/v1/keys', { action: 'register', deployment_id: B.deploymentId, key_id: 'evil', public_key: Buffer.alloc(32, 1).toString('base64') }],
      ['POST', '/v1/keys', { action: 'revoke', deployment_id: B.deploymentId, key_id: 'k1' }],
      ['POST', '/v1/budget/check', { deployment_id: B.deploymentId, scope: 'llm', estimate_units: 1 }],
      ['PUT', `/v1/deployments/${B.deploymentId}/flags/otlp`, { enabled: false }],
      ['DELETE', `/v1/deployments/${B.deploymentId}/flags/otlp`, undefined],
    ];
    for (const [m, p, body] of attempts) {
      const r = await a(m, p, body);
      expect({ m, p, status: r.status, code: r.json?.error?.code }).toEqual({ m, p, status: 404, code: 'NOT_FOUND' });
    }
    expect(await snapshot(B)).toEqual(before);
  });

  it("a license issued to org B cannot be activated by org A (neither org-wide nor on B's deployment)", async () => {
    const a = client(api.url, A.adminKey);
    const licB = await issueLicense({ org_id: B.orgId, plan_id: 'team', seats_limit: 999, valid_from: new Date(Date.now() - 1000).toISOString(), valid_to: new Date(Date.now() + 86_400_000).toISOString() }, vendor.privateKey);
    const before = (await env.pool.query('select count(*)::int as n from license')).rows[0].n;
    const r1 = await a('POST', '/v1/license/activate', { license: licB });
    expect([r1.status, r1.json.error.code]).toEqual([400, 'LICENSE_INVALID']);
    const r2 = await a('POST', '/v1/license/activate', { license: licB, deployment_id: B.deploymentId });
    expect([r2.status, r2.json.error.code]).toEqual([404, 'NOT_FOUND']);
    expect((await env.pool.query('select count(*)::int as n from license')).rows[0].n).toBe(before);
  });

  it('org A activates its own vendor-signed license; a tampered one is refused', async () => {
    const a = client(api.url, A.adminKey);
    const lic = await issueLicense({ org_id: A.orgId, deployment_id: A.deploymentId, plan_id: 'team', seats_limit: 25, nodes_limit: 6, valid_from: new Date(Date.now() - 1000).toISOString(), valid_to: new Date(Date.now() + 86_400_000).toISOString() }, vendor.privateKey);
    const doc = JSON.parse(Buffer.from(lic, 'base64').toString('utf8'));
    doc.payload.seats_limit = 10_000;
    const tampered = Buffer.from(JSON.stringify(doc)).toString('base64');
    const bad = await a('POST', '/v1/license/activate', { license: tampered });
    expect([bad.status, bad.json.error.code]).toEqual([400, 'LICENSE_INVALID']);
    const ok = await a('POST', '/v1/license/activate', { license: lic });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ activated: true, org_id: A.orgId, deployment_id: A.deploymentId, status: 'valid' });
    const lim = await a('GET', `/v1/limits/effective?deployment_id=${A.deploymentId}`);
    expect(lim.json.license).toMatchObject({ seats_limit: 25, nodes_limit: 6 });
  });

  it('the same writes succeed on own resources (so the 404s above are isolation, not breakage)', async () => {
    const a = client(api.url, A.adminKey);
    expect((await a('POST', `/v1/alerts/${A.alertId}/ack`)).status).toBe(200);
    expect((await a('POST', `/v1/suggestions/${A.suggestionId}`, { status: 'shown' })).status).toBe(200);
    expect((await a('PATCH', `/v1/deployments/${A.deploymentId}/nodes/${A.nodeId}`, { labels: { rack: 'r1' } })).status).toBe(200);
    const t = await a('POST', '/v1/tokens', { action: 'issue', deployment_id: A.deploymentId });
    expect(t.status).toBe(200);
    expect(t.json.token).toMatch(/^kt_[0-9a-f]{32}_/);
    const k = await a('POST', '/v1/keys', { action: 'register', deployment_id: A.deploymentId, key_id: 'k2', public_key: Buffer.alloc(32, 2).toString('base64') });
    expect(k.status).toBe(200);
  });
});

async function snapshot(o: SeededOrg) {
  const q = async (sql: string) => (await env.pool.query(sql, [o.deploymentId])).rows;
  return {
    alerts: await q('select alert_id, acknowledged from alert where deployment_id = $1'),
    suggestions: await q('select suggestion_id, status from suggestion where deployment_id = $1'),
    quotas: await q('select quota_id, hard_limit, period from quota where deployment_id = $1'),
    budgets: await q('select budget_id, limit_units from budget where deployment_id = $1'),
    deployment: await q('select enforcement, timezone from deployment where deployment_id = $1'),
    nodes: await q('select node_id, labels from node where deployment_id = $1'),
    tokens: await q('select token_id, revoked_at, expires_at from ingest_token where deployment_id = $1 order by token_id'),
    keys: await q('select key_id, revoked_at from agent_key where deployment_id = $1 order by key_id'),
  };
}
