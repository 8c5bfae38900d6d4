import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureEventsStream, setModelPrice } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publish, usageRecord, waitFor } from '../../enforcer/test/helpers.js';
import { BillingReceiver } from '../../projector/test/billingReceiver.js';
import { client } from './support/seed.js';

// The billing outbox over HTTP: the dead-letter list, the retry action, the customer mapping; one org never
// sees another's records. Rows are written as the projector's rollups batch writes them (projector/test/billing.int.spec.ts
// covers how they get there and out).

let env: IsolatedEnv;
let api: ApiHandle;
let projector: ProjectorHandle | undefined;
const receiver = new BillingReceiver();
const orgs: { orgId: string; dep: string; read: string; admin: string }[] = [];

async function record(orgId: string, dep: string, status: 'pending' | 'sent' | 'dead', n: number): Promise<string> {
  const r = await env.pool.query<{ id: string }>(
    `insert into billing_outbox (idempotency_key, kind, org_id, deployment_id, correlation_id, revision, cost_micro_usd, delta_micro_usd, record, occurred_at,
       status, attempts, last_status, last_error, sent_at)
     values ($1, 'usage', $2, $3, $4, 'r1', $5, $5, '{}', '2026-11-20T10:00:00Z', $6, $7, $8, $9, case when $6 = 'sent' then now() end)
     returning delivery_id::text as id`,
    [randomUUID(), orgId, dep, `run-${n}`, 1_000 * n, status, status === 'dead' ? 10 : 1, status === 'dead' ? 503 : 200, status === 'dead' ? 'HTTP 503' : null],
  );
  return r.rows[0]!.id;
}

const ids: Record<string, string> = {};

beforeAll(async () => {
  env = await isolatedEnv();
  for (const name of ['a', 'b']) {
    const org = await createOrg(env.pool, { name });
    const dep = String((await createDeployment(env.pool, org.org_id, { name: `${name}-prod` })).deployment_id);
    orgs.push({
      orgId: org.org_id, dep,
      read: (await issueApiKey(env.pool, { orgId: org.org_id, scopes: 'read' })).apiKey,
      admin: (await issueApiKey(env.pool, { orgId: org.org_id, scopes: ['read', 'admin'] })).apiKey,
    });
  }
  const [a, b] = orgs as [typeof orgs[0], typeof orgs[0]];
  ids.sent = await record(a.orgId, a.dep, 'sent', 1);
  ids.dead = await record(a.orgId, a.dep, 'dead', 2);
  ids.pending = await record(a.orgId, a.dep, 'pending', 3);
  ids.otherDead = await record(b.orgId, b.dep, 'dead', 4);
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool });
});

afterAll(async () => {
  await projector?.close();
  await receiver.stop();
  await api?.close();
  await env?.cleanup();
});

describe('billing deliveries API', () => {
  it('GET /v1/billing/deliveries?status=dead lists the dead-letter queue of the caller org only', async () => {
    const a = client(api.url, orgs[0]!.read);
    const dead = await a('GET', '/v1/billing/deliveries?status=dead');
    expect(dead.status).toBe(200);
    expect(dead.json.items).toMatchObject([{ delivery_id: Number(ids.dead), kind: 'usage', run_id: 'run-2', status: 'dead', attempts: 10, last_status: 503, last_error: 'HTTP 503', cost_micro_usd: 2000, cost_usd: '0.002000', next_attempt_at: null }]);
    const all = await a('GET', '/v1/billing/deliveries?limit=2');
    expect(all.json.items.map((x: { delivery_id: number }) => x.delivery_id)).toEqual([Number(ids.pending), Number(ids.dead)]);
    const next = await a('GET', `/v1/billing/deliveries?limit=2&cursor=${all.json.next_cursor}`);
    expect(next.json).toMatchObject({ items: [{ delivery_id: Number(ids.sent), status: 'sent' }], next_cursor: null });
    const b = await client(api.url, orgs[1]!.read)('GET', '/v1/billing/deliveries');
    expect(b.json.items.map((x: { delivery_id: number }) => x.delivery_id)).toEqual([Number(ids.otherDead)]);
  });

  it('bad input: a 400 naming the field', async () => {
    const a = client(api.url, orgs[0]!.read);
    const bad = await a('GET', '/v1/billing/deliveries?status=lost');
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: 'FIELD_ENUM', field: 'status' });
    const badId = await client(api.url, orgs[0]!.admin)('POST', '/v1/billing/deliveries/abc/retry');
    expect(badId.status).toBe(400);
    expect(badId.json.error).toMatchObject({ field: 'id' });
  });

  it('POST /v1/billing/deliveries/:id/retry queues a dead record again (admin only; not another org\'s, not a sent one)', async () => {
    expect((await client(api.url, orgs[0]!.read)('POST', `/v1/billing/deliveries/${ids.dead}/retry`)).status).toBe(403);
    const admin = client(api.url, orgs[0]!.admin);
    expect((await admin('POST', `/v1/billing/deliveries/${ids.otherDead}/retry`)).json.error).toMatchObject({ code: 'NOT_FOUND', field: 'id' });
    const sent = await admin('POST', `/v1/billing/deliveries/${ids.sent}/retry`);
    expect(sent.status).toBe(409);
    expect(sent.json.error).toMatchObject({ code: 'BILLING_DELIVERY_NOT_DEAD', field: 'id' });
    const ok = await admin('POST', `/v1/billing/deliveries/${ids.dead}/retry`);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ delivery_id: Number(ids.dead), status: 'pending', attempts: 0 });
    const row = await env.pool.query('select status, attempts, next_attempt_at <= now() as due from billing_outbox where delivery_id = $1', [ids.dead]);
    expect(row.rows).toEqual([{ status: 'pending', attempts: 0, due: true }]);
    expect((await env.pool.query('select status from billing_outbox where delivery_id = $1', [ids.otherDead])).rows).toEqual([{ status: 'dead' }]);
  });

  it('PUT /v1/billing/customer maps the org to a billing customer id', async () => {
    const admin = client(api.url, orgs[0]!.admin);
    const r = await admin('PUT', '/v1/billing/customer', { customer_id: 'cus_NciAYcXfLnqBoz' });
    expect(r.json).toEqual({ org_id: orgs[0]!.orgId, billing_customer_id: 'cus_NciAYcXfLnqBoz' });
    const bad = await admin('PUT', '/v1/billing/customer', { customer_id: 'cus 1; drop' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ field: 'customer_id' });
    const other = await env.pool.query('select billing_customer_id from org where org_id = $1', [orgs[1]!.orgId]);
    expect(other.rows).toEqual([{ billing_customer_id: null }]);
  });

  it('end to end: a run the billing service keeps refusing shows in the dead-letter list; retried over HTTP, it arrives once', async () => {
    const [a] = orgs as [typeof orgs[0]];
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 2_500_000, output_per_1m_micro_usd: 10_000_000 });
    receiver.respond = () => 500;
    await receiver.listen(0);
    projector = await startProjector({
      ...projectorConfig({ ...env.env, BILLING_SERVICE_URL: receiver.url, BILLING_FORMAT: 'stripe', BILLING_MAX_ATTEMPTS: '2', BILLING_RETRY_BASE_MS: '20', BILLING_POLL_MS: '20' }),
      port: 0, host: '127.0.0.1', projections: ['rollups'], logLevel: 'silent',
    });
    const run = randomUUID();
    await publish(nc, env.names, [usageRecord(a.dep, a.orgId, new Date('2026-11-20T10:00:00Z'), { correlationId: run, llm: { provider: 'openai', model_name: 'gpt-4o', tokens_in: 4_000, tokens_out: 0 } })]);
    const reader = client(api.url, a.read);
    const dead = await waitFor(async () => {
      const r = await reader('GET', '/v1/billing/deliveries?status=dead');
      return r.json.items.find((x: { run_id: string }) => x.run_id === run) as { delivery_id: number; attempts: number; last_status: number; cost_micro_usd: number } | undefined;
    }, 15_000, 'the run dead-lettered');
    expect(dead).toMatchObject({ attempts: 2, last_status: 500, cost_micro_usd: 10_000 });
    receiver.respond = () => 200;
    expect((await client(api.url, a.admin)('POST', `/v1/billing/deliveries/${dead.delivery_id}/retry`)).status).toBe(200);
    await waitFor(async () => {
      const r = await reader('GET', '/v1/billing/deliveries?status=sent');
      return r.json.items.some((x: { run_id: string }) => x.run_id === run);
    }, 15_000, 'the retried run sent');
    const sent = receiver.requests.filter((r) => r.status === 200 && new URLSearchParams(r.body).get('payload[value]') === '10000');
    expect(sent).toHaveLength(1);
    expect(receiver.requests.filter((r) => r.body === sent[0]!.body)).toHaveLength(3);
  });
});
