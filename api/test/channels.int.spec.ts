import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { asOrg, baseConfig, channelKey, commands as contractsCommands, DELIVERY_DEFAULTS, deliverDue } from '@kaching/contracts';
import { loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { startReceiver } from '../../test/support/receiver.js';
import { expectSlackShape } from '../../test/support/slack.js';
import { waitUntil } from '../../test/support/wait.js';
import { client, seedOrg, type SeededOrg } from './support/seed.js';

let env: IsolatedEnv;
let api: ApiHandle;
let A: SeededOrg;
let B: SeededOrg;
const receivers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  env = await isolatedEnv();
  [A, B] = [await seedOrg(env.pool, 'alpha'), await seedOrg(env.pool, 'beta')];
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats() });
});

afterAll(async () => {
  await api?.close();
  await Promise.all(receivers.map((r) => r.close()));
  await env?.cleanup();
});

async function receiver(answer?: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(answer);
  receivers.push(r);
  return r;
}

const cli = (name: string, args: Record<string, string>) =>
  contractsCommands.find((c) => c.name === name)!.run({
    args, positionals: [], config: baseConfig(env.env), json: true, progress: () => undefined, signal: new AbortController().signal,
  });

describe('/v1/channels', () => {
  it('creates a webhook channel whose secret is shown once and stored encrypted; a test message verifies with standardwebhooks', async () => {
    const hook = await receiver();
    const admin = client(api.url, A.adminKey);
    const r = await admin('POST', '/v1/channels', { kind: 'webhook', url: hook.url, name: 'ops', deployment_id: A.deploymentId, codes: ['QUOTA_EXCEEDED'] });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ kind: 'webhook', url: hook.url, name: 'ops', deployment_id: A.deploymentId, codes: ['QUOTA_EXCEEDED'], severities: null });
    const secret = r.json.secret as string;
    expect(secret).toMatch(/^whsec_/);
    const row = (await env.pool.query('select * from enforcer_webhook where webhook_id = $1', [r.json.channel_id])).rows[0];
    expect(row.secret).toBeNull();
    expect(JSON.stringify(row) + row.secret_enc.toString('latin1')).not.toContain(secret.slice(6));
    // never again: not in the list, not in the channel
    const one = await admin('GET', `/v1/channels/${r.json.channel_id}`);
    expect(one.status).toBe(200);
    expect(one.text).not.toContain(secret.slice(6));
    expect((await admin('GET', '/v1/channels')).text).not.toContain('secret');

    const t = await admin('POST', `/v1/channels/${r.json.channel_id}/test`);
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ status: 'delivered', attempts: 1, last_status: 204, next_attempt_at: null });
    expect(hook.hits).toHaveLength(1);
    expect(new Webhook(secret).verify(hook.hits[0]!.body, hook.hits[0]!.headers)).toMatchObject({ type: 'channel.test', data: { channel_id: r.json.channel_id } });
    const log = await client(api.url, A.readKey)('GET', `/v1/channels/${r.json.channel_id}/deliveries`);
    expect(log.json.items).toEqual([expect.objectContaining({ delivery_id: t.json.delivery_id, status: 'delivered', attempts: 1 })]);
  });

  it("a Slack channel's test message has Slack's shape; its URL token is never listed", async () => {
    const slack = await receiver();
    const admin = client(api.url, A.adminKey);
    const r = await admin('POST', '/v1/channels', { kind: 'slack', url: slack.url + '/T0/B0/tok3n', severities: ['error', 'warn'] });
    expect(r.status).toBe(201);
    const list = await admin('GET', '/v1/channels');
    expect(list.text).not.toContain('tok3n');
    const t = await admin('POST', `/v1/channels/${r.json.channel_id}/test`);
    expect(t.json.status).toBe('delivered');
    expect(slack.hits).toHaveLength(1);
    expectSlackShape(JSON.parse(slack.hits[0]!.body));
    expect(slack.hits[0]!.headers['webhook-signature']).toBeUndefined();
  });

  it('filters the list by deployment, alert code and severity', async () => {
    const admin = client(api.url, A.adminKey);
    const url = 'https://example.com/filters';
    const other = (await admin('POST', '/v1/deployments', { name: 'alpha-2' })).json.deployment_id as string;
    const mk = async (b: object) => (await admin('POST', '/v1/channels', { kind: 'webhook', url, ...b })).json.channel_id as string;
    const all = await mk({});
    const dep2 = await mk({ deployment_id: other });
    const budget = await mk({ codes: ['BUDGET_EXCEEDED'] });
    const info = await mk({ severities: ['info'] });
    const ids = async (q: string) => ((await admin('GET', `/v1/channels?${q}`)).json.items as { channel_id: string; url: string }[]).filter((c) => c.url === url).map((c) => c.channel_id).sort();
    expect(await ids('')).toEqual([all, dep2, budget, info].sort());
    expect(await ids(`deployment_id=${A.deploymentId}`)).toEqual([all, budget, info].sort());
    expect(await ids('code=QUOTA_EXCEEDED')).toEqual([all, dep2, info].sort());
    expect(await ids('severity=error')).toEqual([all, dep2, budget].sort());
    expect(await ids(`deployment_id=${other}&code=QUOTA_EXCEEDED&severity=error`)).toEqual([all, dep2].sort());
  });

  it('bad input answers 400 with a CHANNEL_* code naming the field and the rule, and stores nothing', async () => {
    const admin = client(api.url, A.adminKey);
    const before = (await env.pool.query('select count(*)::int as n from enforcer_webhook')).rows[0].n;
    const cases: [object, string, string][] = [
      [{ kind: 'webhook', url: 'not a url' }, 'CHANNEL_URL_INVALID', 'url'],
      [{ kind: 'webhook', url: 'http://example.com/x' }, 'CHANNEL_URL_INVALID', 'url'],
      [{ kind: 'email', url: 'https://example.com/x' }, 'CHANNEL_KIND_UNKNOWN', 'kind'],
      [{ kind: 'webhook', url: 'https://example.com/x', codes: ['QUOTA_EXCEEDED', 'NOPE'] }, 'CHANNEL_FILTER_INVALID', 'codes.1'],
      [{ kind: 'webhook', url: 'https://example.com/x', severities: ['fatal'] }, 'CHANNEL_FILTER_INVALID', 'severities.0'],
      [{ kind: 'webhook', url: 'https://example.com/x', deployment_id: B.deploymentId }, 'CHANNEL_FILTER_INVALID', 'deployment_id'],
    ];
    for (const [body, code, field] of cases) {
      const r = await admin('POST', '/v1/channels', body);
      expect([r.status, r.json.error.code, r.json.error.field], JSON.stringify(body)).toEqual([400, code, field]);
      expect(r.json.error.rule).toBeTruthy();
    }
    for (const q of ['code=NOPE', 'severity=fatal', 'deployment_id=x']) {
      const r = await admin('GET', `/v1/channels?${q}`);
      expect([r.status, r.json.error.code]).toEqual([400, 'CHANNEL_FILTER_INVALID']);
    }
    expect((await env.pool.query('select count(*)::int as n from enforcer_webhook')).rows[0].n).toBe(before);
    const ro = await client(api.url, A.readKey)('POST', '/v1/channels', { kind: 'webhook', url: 'https://example.com/x' });
    expect([ro.status, ro.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
  });

  it('a test to a receiver that is down stays queued with its backoff and is delivered when the receiver is back', async () => {
    const hook = await receiver((_h, n) => (n < 1 ? 503 : 204));
    const admin = client(api.url, A.adminKey);
    const id = (await admin('POST', '/v1/channels', { kind: 'webhook', url: hook.url })).json.channel_id as string;
    const t = await admin('POST', `/v1/channels/${id}/test`);
    expect(t.json).toMatchObject({ status: 'retrying', attempts: 1, last_status: 503, last_error: 'HTTP 503' });
    expect(Date.parse(t.json.next_attempt_at)).toBeGreaterThan(Date.parse(t.json.last_attempt_at));
    // the enforcer's notifier runs this pass on its timer; here the test drives it
    const key = await channelKey(env.pool);
    await waitUntil(async () => {
      await deliverDue(env.pool, key, DELIVERY_DEFAULTS);
      return (await admin('GET', `/v1/channels/${id}/deliveries`)).json.items[0].status === 'delivered';
    }, 10_000);
    const d = (await admin('GET', `/v1/channels/${id}/deliveries`)).json.items[0];
    expect(d).toMatchObject({ status: 'delivered', attempts: 2, last_status: 204, last_error: null, next_attempt_at: null });
    expect(hook.hits.map((h) => h.headers['webhook-id'])).toEqual([hook.hits[0]!.headers['webhook-id'], hook.hits[0]!.headers['webhook-id']]);
  });

  it('a delivery still failing past the give-up age is marked failed and leaves the queue', async () => {
    const hook = await receiver(() => 500);
    const admin = client(api.url, A.adminKey);
    const id = (await admin('POST', '/v1/channels', { kind: 'webhook', url: hook.url })).json.channel_id as string;
    expect((await admin('POST', `/v1/channels/${id}/test`)).json.status).toBe('retrying');
    await env.pool.query('update enforcer_notification set next_attempt_at = now() where webhook_id = $1', [id]);
    await deliverDue(env.pool, await channelKey(env.pool), { ...DELIVERY_DEFAULTS, giveUpAfterMs: 0 });
    const d = (await admin('GET', `/v1/channels/${id}/deliveries`)).json.items[0];
    expect(d).toMatchObject({ status: 'failed', attempts: 2, last_status: 500, next_attempt_at: null });
    expect(hook.hits).toHaveLength(2);
  });

  it("one org never sees, tests, reads the deliveries of or deletes another's channel; the channel key is not readable by the org role", async () => {
    const a = await client(api.url, A.adminKey)('POST', '/v1/channels', { kind: 'webhook', url: 'https://example.com/a-only' });
    const b = client(api.url, B.adminKey);
    expect((await b('GET', '/v1/channels')).text).not.toContain(a.json.channel_id);
    for (const [m, p] of [['GET', ''], ['GET', '/deliveries'], ['POST', '/test'], ['DELETE', '']] as const) {
      const r = await b(m, `/v1/channels/${a.json.channel_id}${p}`);
      expect([m + p, r.status, r.json?.error.code]).toEqual([m + p, 404, 'NOT_FOUND']);
    }
    await expect(asOrg(env.pool, A.orgId, (c) => c.query('select * from channel_key'))).rejects.toThrow(/permission denied/);
    const del = await client(api.url, A.adminKey)('DELETE', `/v1/channels/${a.json.channel_id}`);
    expect(del.status).toBe(204);
    expect((await client(api.url, A.adminKey)('GET', `/v1/channels/${a.json.channel_id}`)).status).toBe(404);
  });
});

describe('kaching channel add|list|remove|test', () => {
  it('add prints the secret once; list filters; test delivers; remove deletes with the delivery log', async () => {
    const hook = await receiver();
    const added = (await cli('channel add', { org: B.orgId, kind: 'webhook', url: hook.url, codes: 'BUDGET_EXCEEDED,QUOTA_EXCEEDED', severities: 'error' })).data as { channel_id: string; secret: string };
    expect(added.secret).toMatch(/^whsec_/);
    const listed = (await cli('channel list', { org: B.orgId, code: 'BUDGET_EXCEEDED' })).data as { items: { channel_id: string }[] };
    expect(listed.items.map((c) => c.channel_id)).toEqual([added.channel_id]);
    expect(((await cli('channel list', { org: B.orgId, severity: 'warn' })).data as { items: unknown[] }).items).toHaveLength(0);
    const t = await cli('channel test', { id: added.channel_id });
    expect([t.exitCode, (t.data as { status: string }).status]).toEqual([0, 'delivered']);
    expect(new Webhook(added.secret).verify(hook.hits[0]!.body, hook.hits[0]!.headers)).toMatchObject({ type: 'channel.test' });
    await expect(cli('channel add', { org: B.orgId, kind: 'pager', url: hook.url })).rejects.toMatchObject({ code: 'CHANNEL_KIND_UNKNOWN' });
    await cli('channel remove', { id: added.channel_id });
    expect((await env.pool.query('select count(*)::int as n from enforcer_notification where webhook_id = $1', [added.channel_id])).rows[0].n).toBe(0);
    await expect(cli('channel remove', { id: added.channel_id })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('numbers for people in the API', () => {
  it('utilisation cards carry contracts-formatted text next to the exact values', async () => {
    const r = await client(api.url, A.readKey)('GET', `/v1/deployments/${A.deploymentId}/utilisation`);
    expect(r.status).toBe(200);
    const ctx = (r.json.cards as { key: string; cap: string; cap_text: string; used: string; used_text: string }[]).find((c) => c.key === 'context')!;
    expect(ctx.cap).toMatch(/^100000(\.0+)?$/);
    expect(ctx.cap_text).toBe('100 kB');
    const cost = (r.json.cards as { key: string; used_text: string }[]).find((c) => c.key === 'cost')!;
    expect(cost.used_text).toMatch(/^\$\d[\d,]*\.\d\d$/);
  });
});
