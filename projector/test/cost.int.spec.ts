import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, setModelPrice, setPriceAlias, type StreamRecord, type UsageEvent } from '@kaching/contracts';
import { loadConfig, replay, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publish, usageRecord } from '../../enforcer/test/helpers.js';
import { tableSnapshot, waitCaughtUp, waitFor } from './helpers.js';

// Cost in every projection: each event priced once, at its attribution instant, by the version in force then;
// a price arriving (or changing) later re-prices what is stored; a replay stores the same costs.

const TZ = 'Asia/Kolkata';
const AT = new Date('2026-11-20T10:00:00Z');
const M = 1_000_000;

let env: IsolatedEnv;
let nc: NatsConnection;
let projector: ProjectorHandle;
let org: string;
let dep: string;
let lastSeq = 0;

function event(o: { llm: UsageEvent['llm']; agentType?: string; tags?: Record<string, string>; at?: Date; status?: UsageEvent['job']['status']; correlationId?: string }): StreamRecord {
  const r = usageRecord(dep, org, o.at ?? AT, { llm: o.llm, ...(o.status ? { status: o.status } : {}), ...(o.correlationId ? { correlationId: o.correlationId } : {}) });
  if (r.kind !== 'usage') throw new Error('usage record expected');
  if (o.agentType) r.usage.agent.agent_type = o.agentType;
  if (o.tags) r.usage.tags = o.tags;
  return r;
}

async function costOf(correlationId: string): Promise<string | null> {
  const r = await env.pool.query('select cost_micro_usd::text as c from usage_sample where correlation_id = $1', [correlationId]);
  return r.rows[0]?.c ?? null;
}

async function modelDaily(): Promise<Record<string, unknown>[]> {
  const r = await env.pool.query(
    `select day::text, provider, model_name, agent_type, requests::int, tokens_in::int, tokens_out::int, tokens_cache_read::int, tokens_cache_write::int,
       tokens_reasoning::int, cost_micro_usd::text, unpriced_requests::int
       from usage_rollup_model_daily where deployment_id = $1 order by model_name, agent_type`,
    [dep],
  );
  return r.rows;
}

async function publishAll(recs: StreamRecord[]): Promise<void> {
  lastSeq = await publish(nc, env.names, recs);
  await waitCaughtUp(env.pool, lastSeq);
}

const ids = { gpt: randomUUID(), sonnet: randomUUID(), mystery: randomUUID(), revised: randomUUID() };

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  org = randomUUID();
  dep = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [org, 'cost']);
  await env.pool.query(`insert into deployment (deployment_id, org_id, name, timezone) values ($1, $2, 'd', $3)`, [dep, org, TZ]);
  await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 2_500_000, output_per_1m_micro_usd: 10_000_000, cached_input_per_1m_micro_usd: 1_250_000 });
  await setModelPrice(env.pool, {
    provider: 'anthropic', model_name: 'claude-sonnet-4', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000,
    cached_input_per_1m_micro_usd: 300_000, cache_write_per_1m_micro_usd: 3_750_000,
  });
  projector = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 50, repriceIntervalMs: 200 });
});

afterAll(async () => {
  await projector?.close();
  await env?.cleanup();
});

describe('cost in the projections', () => {
  it('raw samples, hourly, daily and the per-model daily rollup carry each event cost in integer micro-USD', async () => {
    await publishAll([
      // 10,000 in (4,000 cached) × $2.50 / $1.25, 1,000 out (300 reasoning, no own price) × $10: 15,000 + 5,000 + 10,000 µ$
      event({ correlationId: ids.gpt, agentType: 'coder', tags: { team: 'ml' }, llm: { provider: 'openai', model_name: 'gpt-4o', tokens_in: 10_000, tokens_out: 1_000, tokens_cached_in: 4_000, tokens_reasoning: 300 } }),
      // 20,000 in (5,000 read, 2,000 written) × $3 / $0.30 / $3.75, 2,000 out × $15: 39,000 + 1,500 + 7,500 + 30,000 µ$
      event({ correlationId: ids.sonnet, agentType: 'reviewer', tags: { team: 'web' }, llm: { provider: 'anthropic', model_name: 'claude-sonnet-4', tokens_in: 20_000, tokens_out: 2_000, tokens_cached_in: 5_000, tokens_cache_write: 2_000 } }),
      // no price for this model yet
      event({ correlationId: ids.mystery, agentType: 'coder', llm: { provider: 'acme', model_name: 'mystery-1', tokens_in: 1_000, tokens_out: 100 } }),
    ]);
    expect(await costOf(ids.gpt)).toBe(String(15_000 + 5_000 + 10_000));
    expect(await costOf(ids.sonnet)).toBe(String(39_000 + 1_500 + 7_500 + 30_000));
    expect(await costOf(ids.mystery)).toBeNull();
    // 10:00 UTC is 15:30 in Kolkata: the same local day
    expect(await modelDaily()).toEqual([
      { day: '2026-11-20', provider: 'anthropic', model_name: 'claude-sonnet-4', agent_type: 'reviewer', requests: 1, tokens_in: 20_000, tokens_out: 2_000, tokens_cache_read: 5_000, tokens_cache_write: 2_000, tokens_reasoning: 0, cost_micro_usd: '78000', unpriced_requests: 0 },
      { day: '2026-11-20', provider: 'openai', model_name: 'gpt-4o', agent_type: 'coder', requests: 1, tokens_in: 10_000, tokens_out: 1_000, tokens_cache_read: 4_000, tokens_cache_write: 0, tokens_reasoning: 300, cost_micro_usd: '30000', unpriced_requests: 0 },
      { day: '2026-11-20', provider: 'acme', model_name: 'mystery-1', agent_type: 'coder', requests: 1, tokens_in: 1_000, tokens_out: 100, tokens_cache_read: 0, tokens_cache_write: 0, tokens_reasoning: 0, cost_micro_usd: '0', unpriced_requests: 1 },
    ]);
    const daily = await env.pool.query('select cost_micro_usd::text as c from usage_rollup_daily where deployment_id = $1', [dep]);
    expect(daily.rows).toEqual([{ c: '108000' }]);
    const hourly = await env.pool.query('select agent_type, cost_micro_usd::text as c from usage_rollup_hourly where deployment_id = $1 order by agent_type', [dep]);
    expect(hourly.rows).toEqual([{ agent_type: 'coder', c: '30000' }, { agent_type: 'reviewer', c: '78000' }]);
    const tags = await env.pool.query(`select tags ->> 'team' as team from usage_sample where correlation_id = $1`, [ids.gpt]);
    expect(tags.rows).toEqual([{ team: 'ml' }]);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a newer revision of a job replaces its cost (running, then succeeded with more tokens)', async () => {
    const llm = (tin: number) => ({ provider: 'openai', model_name: 'gpt-4o', tokens_in: tin, tokens_out: 0 });
    await publishAll([
      event({ correlationId: ids.revised, status: 'running', at: new Date(AT.getTime() + 60_000), llm: llm(1_000) }),
      event({ correlationId: ids.revised, at: new Date(AT.getTime() + 120_000), llm: llm(4_000) }),
    ]);
    expect(await costOf(ids.revised)).toBe(String(4_000 * 2.5));
    const row = (await modelDaily()).find((r) => r.model_name === 'gpt-4o')!;
    expect(row).toMatchObject({ requests: 2, tokens_in: 14_000, cost_micro_usd: String(30_000 + 10_000) });
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a price arriving for an unpriced model re-prices the stored event (raw, rollups, per-model day)', async () => {
    await setModelPrice(env.pool, { provider: 'acme', model_name: 'mystery-1', effective_from: '2026-06-01T00:00:00Z', input_per_1m_micro_usd: 1_000_000, output_per_1m_micro_usd: 2_000_000 });
    await waitFor(async () => (await costOf(ids.mystery)) !== null, 30_000, 'the unpriced event re-priced');
    expect(await costOf(ids.mystery)).toBe(String(1_000 + 200));
    const row = (await modelDaily()).find((r) => r.model_name === 'mystery-1')!;
    expect(row).toMatchObject({ cost_micro_usd: '1200', unpriced_requests: 0 });
    await waitFor(async () => (await verifyProjections(env.pool)).length === 0, 30_000, 'rollups re-priced');
  });

  it('a price version effective in the past re-prices the events after it, and only those', async () => {
    // gpt-4o halves its input price from 10:01 UTC: the first job (10:00) keeps its cost, the revised one (10:02) changes
    await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: new Date(AT.getTime() + 60_000).toISOString(), input_per_1m_micro_usd: 1_250_000, output_per_1m_micro_usd: 10_000_000 });
    await waitFor(async () => (await costOf(ids.revised)) === String(4_000 * 1.25), 30_000, 'the later event re-priced');
    expect(await costOf(ids.gpt)).toBe('30000');
    await waitFor(async () => (await verifyProjections(env.pool)).length === 0, 30_000, 'rollups re-priced');
    expect((await modelDaily()).find((r) => r.model_name === 'gpt-4o')).toMatchObject({ cost_micro_usd: String(30_000 + 5_000) });
  });

  it('an alias prices a dated model name as its base model, and the stored event is re-priced', async () => {
    const id = randomUUID();
    await publishAll([event({ correlationId: id, llm: { provider: 'openai', model_name: 'gpt-4o-2026-11-01', tokens_in: 1_000, tokens_out: 0 } })]);
    expect(await costOf(id)).toBeNull();
    await setPriceAlias(env.pool, { alias: 'gpt-4o-2026-*', provider: 'openai', model_name: 'gpt-4o' });
    // 10:00 is before the half price of 10:01: the first version's $2.50 per 1M
    await waitFor(async () => (await costOf(id)) === '2500', 30_000, 'the aliased event priced');
    await waitFor(async () => (await verifyProjections(env.pool)).length === 0, 30_000, 'rollups re-priced');
  });

  it('replaying raw and rollups stores identical costs', async () => {
    const tables: [string, string][] = [
      ['usage_sample', 'deployment_id, correlation_id'],
      ['usage_rollup_hourly', 'deployment_id, bucket_start, agent_type'],
      ['usage_rollup_daily', 'deployment_id, day'],
      ['usage_rollup_model_daily', 'deployment_id, day, provider, model_name, agent_type'],
      ['projector_rollup_job', 'deployment_id, correlation_id'],
    ];
    const before = await Promise.all(tables.map(([t, o]) => tableSnapshot(env.pool, t, o)));
    const cfg = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' };
    await replay(cfg, 'raw', { batchSize: 2 });
    await replay(cfg, 'rollups', { batchSize: 2 });
    const after = await Promise.all(tables.map(([t, o]) => tableSnapshot(env.pool, t, o)));
    expect(after).toEqual(before);
    expect(before.join('')).toContain('"cost_micro_usd":"30000"');
  });
});
