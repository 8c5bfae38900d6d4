import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, readLiteLlmFile, setModelPrice, syncPriceBook, type StreamRecord, type UsageEvent } from '@kaching/contracts';
import { createDeployment, createOrg, issueApiKey, loadConfig, start, type ApiHandle } from '@kaching/api';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publish, usageRecord } from '../../enforcer/test/helpers.js';
import { waitCaughtUp } from '../../projector/test/helpers.js';
import { client } from './support/seed.js';

// GET /v1/costs from the projections a real projector wrote, priced by the book; the CSV's cost columns;
// the price change log and aliases over HTTP.

const TZ = 'America/New_York';
const NOW = new Date('2026-11-21T15:00:00Z');

let env: IsolatedEnv;
let nc: NatsConnection;
let api: ApiHandle;
let projector: ProjectorHandle;
let dep: string;
let readKey: string;
let otherKey: string;
let opKey: string;

function job(at: string, o: { provider: string; model: string; tin: number; tout: number; cached?: number; reasoning?: number; agentType: string; team?: string }): StreamRecord {
  const llm: UsageEvent['llm'] = { provider: o.provider, model_name: o.model, tokens_in: o.tin, tokens_out: o.tout, ...(o.cached ? { tokens_cached_in: o.cached } : {}), ...(o.reasoning ? { tokens_reasoning: o.reasoning } : {}) };
  const r = usageRecord(dep, '', new Date(at), { llm });
  if (r.kind !== 'usage') throw new Error('usage');
  r.usage.agent.agent_type = o.agentType;
  if (o.team) r.usage.tags = { team: o.team };
  return r;
}

// Prices: gpt-4o $2.50 in / $1.25 cached / $10 out; sonnet $3 in / $15 out. Costs by hand, in micro-USD:
// a  2026-11-20 14:10Z (09:10 NY, day 20)  gpt-4o  10,000 in (2,000 cached) + 1,000 out = 20,000 + 2,500 + 10,000 = 32,500   coder     ml
// b  2026-11-20 14:40Z (09:40 NY, day 20)  sonnet   4,000 in + 1,000 out (200 reasoning)  = 12,000 + 15,000        = 27,000   reviewer  web
// c  2026-11-21 03:30Z (22:30 NY, day 20)  gpt-4o   1,000 in + 100 out                    =  2,500 + 1,000         =  3,500   coder     ml
// d  2026-11-21 14:20Z (09:20 NY, day 21)  sonnet   2,000 in                               =  6,000                  =  6,000   coder     (untagged)
const DAY20 = 32_500 + 27_000 + 3_500;
const DAY21 = 6_000;

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  const org = await createOrg(env.pool, { name: 'costs' });
  dep = String((await createDeployment(env.pool, org.org_id, { name: 'prod', timezone: TZ })).deployment_id);
  const other = await createOrg(env.pool, { name: 'other' });
  await createDeployment(env.pool, other.org_id, { name: 'other-prod' });
  readKey = (await issueApiKey(env.pool, { orgId: org.org_id, scopes: 'read' })).apiKey;
  otherKey = (await issueApiKey(env.pool, { orgId: other.org_id, scopes: 'read' })).apiKey;
  opKey = (await issueApiKey(env.pool, { orgId: org.org_id, scopes: ['read', 'operator'] })).apiKey;
  await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 2_500_000, cached_input_per_1m_micro_usd: 1_250_000, output_per_1m_micro_usd: 10_000_000 });
  await setModelPrice(env.pool, { provider: 'anthropic', model_name: 'claude-sonnet-4', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000 });
  const recs = [
    job('2026-11-20T14:10:00Z', { provider: 'openai', model: 'gpt-4o', tin: 10_000, tout: 1_000, cached: 2_000, agentType: 'coder', team: 'ml' }),
    job('2026-11-20T14:40:00Z', { provider: 'anthropic', model: 'claude-sonnet-4', tin: 4_000, tout: 1_000, reasoning: 200, agentType: 'reviewer', team: 'web' }),
    job('2026-11-21T03:30:00Z', { provider: 'openai', model: 'gpt-4o', tin: 1_000, tout: 100, agentType: 'coder', team: 'ml' }),
    job('2026-11-21T14:20:00Z', { provider: 'anthropic', model: 'claude-sonnet-4', tin: 2_000, tout: 0, agentType: 'coder' }),
  ];
  for (const r of recs) if (r.kind === 'usage') (r as { ingest: { org_id: string } }).ingest.org_id = org.org_id;
  const last = await publish(nc, env.names, recs);
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1' });
  await waitCaughtUp(env.pool, last);
  api = await start({ ...loadConfig(env.env), port: 0 }, { pool: env.pool, nc, clock: () => NOW.getTime() });
});

afterAll(async () => {
  await api?.close();
  await projector?.close();
  await env?.cleanup();
});

const get = (key: string, path: string) => client(api.url, key)('GET', path);

describe('GET /v1/costs', () => {
  it('by model per local day: total, requests, average per request, groups and series, in exact micro-USD', async () => {
    const r = await get(readKey, `/v1/costs?deployment_id=${dep}&from=2026-11-20&to=2026-11-22&group_by=model&interval=day`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      deployment_id: dep, timezone: TZ, from: '2026-11-20', to: '2026-11-22', group_by: 'model', interval: 'day', currency: 'USD',
      cost_micro_usd: DAY20 + DAY21, cost_usd: '0.069000', requests: 4, average_micro_usd_per_request: 17_250, unpriced_requests: 0,
    });
    expect(r.json.groups).toEqual([
      { key: 'gpt-4o', provider: 'openai', cost_micro_usd: 36_000, cost_usd: '0.036000', requests: 2, average_micro_usd_per_request: 18_000, unpriced_requests: 0 },
      { key: 'claude-sonnet-4', provider: 'anthropic', cost_micro_usd: 33_000, cost_usd: '0.033000', requests: 2, average_micro_usd_per_request: 16_500, unpriced_requests: 0 },
    ]);
    expect(r.json.series).toEqual([
      { bucket: '2026-11-20', key: 'claude-sonnet-4', cost_micro_usd: 27_000, cost_usd: '0.027000', requests: 1 },
      { bucket: '2026-11-20', key: 'gpt-4o', cost_micro_usd: 36_000, cost_usd: '0.036000', requests: 2 },
      { bucket: '2026-11-21', key: 'claude-sonnet-4', cost_micro_usd: 6_000, cost_usd: '0.006000', requests: 1 },
    ]);
  });

  it('by provider, by agent type, and by tag (untagged requests under null)', async () => {
    const q = `/v1/costs?deployment_id=${dep}&from=2026-11-20&to=2026-11-22`;
    const provider = (await get(readKey, `${q}&group_by=provider`)).json;
    expect(provider.groups.map((g: { key: string; cost_micro_usd: number }) => [g.key, g.cost_micro_usd])).toEqual([['openai', 36_000], ['anthropic', 33_000]]);
    const types = (await get(readKey, `${q}&group_by=agent_type`)).json;
    expect(types.groups.map((g: { key: string; cost_micro_usd: number; requests: number }) => [g.key, g.cost_micro_usd, g.requests])).toEqual([['coder', 42_000, 3], ['reviewer', 27_000, 1]]);
    const team = (await get(readKey, `${q}&group_by=tag:team`)).json;
    expect(team.groups.map((g: { key: string | null; cost_micro_usd: number }) => [g.key, g.cost_micro_usd])).toEqual([['ml', 36_000], ['web', 27_000], [null, 6_000]]);
    expect(team.cost_micro_usd).toBe(69_000);
    expect(team.series).toContainEqual({ bucket: '2026-11-20', key: 'ml', cost_micro_usd: 36_000, cost_usd: '0.036000', requests: 2 });
  });

  it('per UTC hour between two instants', async () => {
    const r = await get(readKey, `/v1/costs?deployment_id=${dep}&from=2026-11-20T14:00:00Z&to=2026-11-20T15:00:00Z&group_by=model&interval=hour`);
    expect(r.json).toMatchObject({ from: '2026-11-20T14:00:00.000Z', to: '2026-11-20T15:00:00.000Z', cost_micro_usd: 32_500 + 27_000, requests: 2 });
    expect(r.json.series).toEqual([
      { bucket: '2026-11-20T14:00:00Z', key: 'claude-sonnet-4', cost_micro_usd: 27_000, cost_usd: '0.027000', requests: 1 },
      { bucket: '2026-11-20T14:00:00Z', key: 'gpt-4o', cost_micro_usd: 32_500, cost_usd: '0.032500', requests: 1 },
    ]);
  });

  it('another org cannot read the deployment (404), and bad parameters name the field', async () => {
    const r = await get(otherKey, `/v1/costs?deployment_id=${dep}`);
    expect([r.status, r.json.error.code]).toEqual([404, 'NOT_FOUND']);
    const bad = await get(readKey, `/v1/costs?deployment_id=${dep}&group_by=tag:Team`);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ field: 'group_by' });
    const reversed = await get(readKey, `/v1/costs?deployment_id=${dep}&from=2026-11-22&to=2026-11-20`);
    expect([reversed.status, reversed.json.error.code, reversed.json.error.field]).toEqual([400, 'FIELD_RANGE', 'from']);
    expect((await get(readKey, `/v1/costs?deployment_id=${randomUUID()}`)).status).toBe(404);
  });

  it('the CSV export carries each sample cost in micro-USD and USD, its price version and tags', async () => {
    const r = await get(readKey, `/v1/usage/export.csv?deployment_id=${dep}`);
    const [header, ...rows] = r.text.trim().split('\n');
    const cols = header!.split(',');
    for (const c of ['model_tokens_cache_write', 'cost_micro_usd', 'cost_usd', 'price_version', 'tags']) expect(cols).toContain(c);
    const at = (row: string, c: string) => row.split(',')[cols.indexOf(c)];
    expect(rows.map((row) => at(row, 'cost_micro_usd')).sort()).toEqual(['27000', '32500', '3500', '6000']);
    expect(rows.map((row) => at(row, 'cost_usd')).sort()).toEqual(['0.003500', '0.006000', '0.027000', '0.032500']);
  });
});

describe('the price book over HTTP', () => {
  it('GET /v1/prices/changes lists a sync\'s changes, paged', async () => {
    const bytes = (day: string) => readFileSync(new URL(`../../contracts/test/fixtures/litellm-prices/${day}.json`, import.meta.url));
    for (const day of ['2026-04-26', '2026-07-24']) {
      const f = readLiteLlmFile(bytes(day));
      await syncPriceBook(env.pool, { entries: f.entries, sha256: f.sha256, source: day, effectiveAt: new Date(`${day}T00:00:00Z`) });
    }
    const r = await get(readKey, '/v1/prices/changes?since=2026-07-24T00:00:00Z&model=gpt-5.5-pro');
    expect(r.status).toBe(200);
    expect(r.json.items.length).toBeGreaterThan(0);
    expect(r.json.items[0]).toMatchObject({ provider: 'openai', model: 'gpt-5.5-pro', kind: 'changed', old_value: expect.any(String), new_value: expect.any(String) });
    const page1 = await get(readKey, '/v1/prices/changes?limit=5');
    expect(page1.json.items).toHaveLength(5);
    const page2 = await get(readKey, `/v1/prices/changes?limit=5&after=${page1.json.next_after}`);
    expect(Number(page2.json.items[0].change_id)).toBeGreaterThan(Number(page1.json.items[4].change_id));
  });

  it('aliases: operators set and remove them, everyone reads them; a read key may not write', async () => {
    const denied = await client(api.url, readKey)('PUT', '/v1/prices/aliases/gpt-4o-*', { provider: 'openai', model_name: 'gpt-4o' });
    expect(denied.status).toBe(403);
    const put = await client(api.url, opKey)('PUT', '/v1/prices/aliases/gpt-4o-*', { provider: 'openai', model_name: 'gpt-4o' });
    expect(put.status).toBe(200);
    expect((await get(readKey, '/v1/prices/aliases')).json.items).toEqual([expect.objectContaining({ alias: 'gpt-4o-*', provider: 'openai', model_name: 'gpt-4o' })]);
    const nowhere = await client(api.url, opKey)('PUT', '/v1/prices/aliases/x-*', { provider: 'nobody', model_name: 'nothing' });
    expect([nowhere.status, nowhere.json.error.field]).toEqual([404, 'model_name']);
    expect((await client(api.url, opKey)('DELETE', '/v1/prices/aliases/gpt-4o-*')).status).toBe(200);
    expect((await client(api.url, opKey)('DELETE', '/v1/prices/aliases/gpt-4o-*')).status).toBe(404);
  });
});
