import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands as cliCommands, type CommandContext } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { client } from './support/seed.js';

// GET /v1/upsell ("who to upsell this week", spec query C) over seeded alerts of several orgs, at a pinned clock.

const NOW = new Date('2026-11-21T12:00:00Z');
const H = 3_600_000;
const D = 24 * H;
const at = (ms: number) => new Date(NOW.getTime() + ms);

let env: IsolatedEnv;
let api: ApiHandle;
let clock = NOW.getTime();
let opKey: string;
let adminKey: string;
let readKey: string;
const dep: Record<'x1' | 'x2' | 'y1' | 'z1', string> = { x1: '', x2: '', y1: '', z1: '' };

async function alert(d: string, code: string, created: Date, scope: string, metric: string, period: string, observed: number): Promise<void> {
  const id = randomUUID();
  await env.pool.query(
    `insert into alert (alert_id, deployment_id, org_id, decision_id, created_at, severity, code, message, context)
     values ($1, $2, (select org_id from deployment where deployment_id = $2), $3, $4, 'warn', $5, 'near', $6)`,
    [id, d, `dec-${id}`, created, code, { scope, metric, period: { kind: period }, observed, action: 'warn' }],
  );
}

async function quota(d: string, name: string, metric: string, period: string, hard: number | null, soft: number): Promise<void> {
  await env.pool.query(
    `insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold)
     values ($1, $2, (select org_id from deployment where deployment_id = $2), $3, $4, $5, $6, $7)`,
    [randomUUID(), d, name, metric, period, hard, soft],
  );
}

beforeAll(async () => {
  env = await isolatedEnv();
  const x = await createOrg(env.pool, { name: 'xco' });
  const y = await createOrg(env.pool, { name: 'yco' });
  const z = await createOrg(env.pool, { name: 'zco' });
  dep.x1 = String((await createDeployment(env.pool, x.org_id, { name: 'x-prod' })).deployment_id);
  dep.x2 = String((await createDeployment(env.pool, x.org_id, { name: 'x-lab' })).deployment_id);
  dep.y1 = String((await createDeployment(env.pool, y.org_id, { name: 'y-prod' })).deployment_id);
  dep.z1 = String((await createDeployment(env.pool, z.org_id, { name: 'z-prod' })).deployment_id);
  await env.pool.query(`insert into pricing_plan (plan_id, name, rank, meta) values
    ('team', 'Team', 1, '{"limits":{"context_bytes_written":100000,"model_tokens_in":500}}'),
    ('business', 'Business', 2, '{"limits":{"context_bytes_written":300000,"model_tokens_in":5000}}'),
    ('enterprise', 'Enterprise', 3, '{"limits":{"context_bytes_written":null,"model_tokens_in":null}}')`);
  await env.pool.query(
    `insert into license (license_id, org_id, deployment_id, plan_id, features, valid_from, valid_to, signed_blob) values ($1, $2, $3, 'team', '{}', '2020-01-01', '2099-01-01', '\\x00')`,
    [randomUUID(), x.org_id, dep.x1],
  );
  await quota(dep.x1, 'context', 'context_bytes_written', 'monthly', 100_000, 80_000);
  await quota(dep.x1, 'tokens', 'model_tokens_in', 'daily', 400, 300);
  await quota(dep.x2, 'context', 'context_bytes_written', 'monthly', null, 80_000);
  await quota(dep.y1, 'tokens', 'model_tokens_in', 'daily', 1000, 800);

  // x1: 3 near-limit alerts on "context" (the newest observed 90,000) and 1 on "tokens"; an exceeded alert does not count
  await alert(dep.x1, 'QUOTA_NEARING', at(-1 * H), 'context', 'context_bytes_written', 'monthly', 90_000);
  await alert(dep.x1, 'QUOTA_NEARING', at(-2 * D), 'context', 'context_bytes_written', 'monthly', 85_000);
  await alert(dep.x1, 'QUOTA_NEARING', at(-6 * D), 'context', 'context_bytes_written', 'monthly', 81_000);
  await alert(dep.x1, 'QUOTA_NEARING', at(-3 * D), 'tokens', 'model_tokens_in', 'daily', 350);
  await alert(dep.x1, 'QUOTA_EXCEEDED', at(-1 * H), 'context', 'context_bytes_written', 'monthly', 101_000);
  // y1: window edges: now − 7 d is outside, now − 7 d + 1 s and now itself inside, now + 1 s (after "now") outside
  await alert(dep.y1, 'QUOTA_NEARING', at(-7 * D), 'tokens', 'model_tokens_in', 'daily', 810);
  await alert(dep.y1, 'QUOTA_NEARING', at(-7 * D + 1000), 'tokens', 'model_tokens_in', 'daily', 820);
  await alert(dep.y1, 'QUOTA_NEARING', at(0), 'tokens', 'model_tokens_in', 'daily', 900);
  await alert(dep.y1, 'QUOTA_NEARING', at(1000), 'tokens', 'model_tokens_in', 'daily', 990);
  // x2: as many alerts as y1 but older, so it ranks after it
  await alert(dep.x2, 'QUOTA_NEARING', at(-3 * H), 'context', 'context_bytes_written', 'monthly', 82_000);
  await alert(dep.x2, 'QUOTA_NEARING', at(-4 * H), 'context', 'context_bytes_written', 'monthly', 81_000);
  // z1: only last month
  await alert(dep.z1, 'QUOTA_NEARING', at(-8 * D), 'context', 'context_bytes_written', 'monthly', 90_000);

  opKey = (await issueApiKey(env.pool, { orgId: z.org_id, scopes: ['read', 'operator'] })).apiKey;
  adminKey = (await issueApiKey(env.pool, { orgId: x.org_id, scopes: ['read', 'admin'] })).apiKey;
  readKey = (await issueApiKey(env.pool, { orgId: x.org_id, scopes: ['read'] })).apiKey;
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc: await env.nats(), clock: () => clock });
});

afterAll(async () => {
  await api?.close();
  await env?.cleanup();
});

const upsell = async (q = '') => {
  const r = await client(api.url, opKey)('GET', `/v1/upsell${q}`);
  expect(r.status, r.text).toBe(200);
  return r.json;
};

describe('GET /v1/upsell', () => {
  it('ranks deployments of every org by near-limit alerts in (now − 7 d, now], ties by the newest alert', async () => {
    clock = NOW.getTime();
    const r = await upsell();
    expect(r.window).toEqual({ from: at(-7 * D).toISOString(), to: NOW.toISOString(), days: 7 });
    expect(r.items.map((i: { deployment_id: string; near_alerts: number; rank: number }) => [i.rank, i.deployment_id, i.near_alerts])).toEqual([
      [1, dep.x1, 4],
      [2, dep.y1, 2],
      [3, dep.x2, 2],
    ]);
    expect(r.items[0]).toMatchObject({ org_name: 'xco', deployment_name: 'x-prod', plan_id: 'team', last_alert_at: at(-1 * H).toISOString() });
    expect(r.items[0].scopes.map((s: { scope: string; near_alerts: number }) => [s.scope, s.near_alerts])).toEqual([['context', 3], ['tokens', 1]]);
    expect(r.items[1]).toMatchObject({ org_name: 'yco', plan_id: null, last_alert_at: NOW.toISOString() });
    expect(r.items[1].scopes[0]).toMatchObject({ scope: 'tokens', near_alerts: 2, observed: '900', cap: '1000.000000' });
  });

  it('each deployment gets the suggestion the enforcer would make for its busiest quota', async () => {
    clock = NOW.getTime();
    const [x1, y1, x2] = (await upsell()).items;
    // team → business: 90,000 of a 100,000 monthly cap; Business raises it 3×
    expect(x1.suggestion).toMatchObject({
      kind: 'upgrade_tier', target_plan: 'business',
      diffs: { metric: 'context_bytes_written', period: 'monthly', observed: '90000', cap: '100000', from_plan: 'team', to_plan: 'business', target_cap: '300000', factor: 3 },
    });
    expect(x1.suggestion.rationale).toBe('Monthly context_bytes_written is at 90% of your cap (90 kB of 100 kB); Business raises it 3× (to 300 kB).');
    // the tokens quota has its own suggestion: 350 of 400 fits Team's 500, but x1 is on Team already → Business
    expect(x1.scopes[1].suggestion).toMatchObject({ target_plan: 'business', diffs: { observed: '350', cap: '400' } });
    // no license: the first plan whose cap covers 900 tokens is Business (Team allows 500)
    expect(y1.suggestion).toMatchObject({ kind: 'upgrade_tier', target_plan: 'business', diffs: { observed: '900', cap: '1000' } });
    // a quota with a soft threshold only: the threshold is the cap; no license, and Team's 100,000 covers 82,000
    expect(x2.suggestion).toMatchObject({ target_plan: 'team', diffs: { observed: '82000', cap: '80000', from_plan: null } });
  });

  it('the window moves with the clock: one day later the 6-day-old alert sits exactly on the edge and drops out', async () => {
    clock = NOW.getTime() + D;
    const r = await upsell();
    const byDep = Object.fromEntries(r.items.map((i: { deployment_id: string; near_alerts: number }) => [i.deployment_id, i.near_alerts]));
    // x1: −6 d is now −7 d (outside); y1: both −7 d + 1 s (now −8 d + 1 s) drops, while the +1 s alert comes in
    expect(byDep).toEqual({ [dep.x1]: 3, [dep.y1]: 2, [dep.x2]: 2 });
    clock = NOW.getTime() + 30 * D;
    expect((await upsell()).items).toEqual([]);
    clock = NOW.getTime();
    const wide = await upsell('?days=30&limit=2');
    expect(wide.items.map((i: { deployment_id: string }) => i.deployment_id)).toEqual([dep.x1, dep.y1]);
  });

  it('refuses callers without the operator scope, and bad query parameters by name', async () => {
    const admin = await client(api.url, adminKey)('GET', '/v1/upsell');
    expect([admin.status, admin.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
    const read = await client(api.url, readKey)('GET', '/v1/upsell');
    expect([read.status, read.json.error.code]).toEqual([403, 'API_KEY_SCOPE']);
    expect((await client(api.url)('GET', '/v1/upsell')).status).toBe(401);
    const bad = await client(api.url, opKey)('GET', '/v1/upsell?days=0');
    expect([bad.status, bad.json.error.code, bad.json.error.field]).toEqual([400, 'FIELD_RANGE', 'days']);
  });

  it('kaching upsell (the CLI, as the operator) prints the same ranking', async () => {
    const upsellCmd = cliCommands.find((c) => c.name === 'upsell')!;
    const ctx: CommandContext = {
      args: { days: '7', limit: '25', at: NOW.toISOString() }, positionals: [], json: false, progress: () => undefined, signal: new AbortController().signal,
      config: { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'error' },
    };
    const r = await upsellCmd.run(ctx);
    clock = NOW.getTime();
    expect(r.data).toEqual(await upsell());
    expect(r.text!.split('\n')[0]).toBe(` 1. xco / x-prod (${dep.x1}): 4 near-limit alert(s); Monthly context_bytes_written is at 90% of your cap (90 kB of 100 kB); Business raises it 3× (to 300 kB).`);
    await expect(upsellCmd.run({ ...ctx, args: { ...ctx.args, days: '0' } })).rejects.toThrow('--days');
  });
});
