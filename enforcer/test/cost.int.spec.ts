import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { decisionsBucket, ensureEventsStream, setModelPrice, type PolicyDecision, type StreamRecord, effectiveLimits } from '@kaching/contracts';
import { start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { addBudget, checkpoint, controlMessages, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

// Budgets on cost by tag (chargeback), an unknown model raising PRICE_UNKNOWN once, and the ledger re-priced
// when the price arrives: the budget it now exceeds decides, the PRICE_UNKNOWN clears.

/**
 * The enforcer re-evaluates at its own clock after a re-pricing; events are reported "now". A zone where it is
 * around midday now keeps both on one local day whenever the test runs.
 */
function middayZoneNow(): string {
  const utcHour = new Date().getUTCHours();
  // Etc/GMT-N is UTC+N
  const offset = ((12 - utcHour + 36) % 24) - 12;
  return offset === 0 ? 'UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

let env: IsolatedEnv;
let nc: NatsConnection;
let handle: EnforcerHandle;
let org: string;
let dep: string;

const kvDecision = async (scope: string): Promise<PolicyDecision | null> => {
  const kv = await decisionsBucket(nc, env.names);
  const e = await kv.get(env.names.decisionKey(dep, scope));
  return e && e.length ? e.json<PolicyDecision>() : null;
};

function tagged(team: string, llm: { provider: string; model_name: string; tokens_in: number; tokens_out: number }): StreamRecord {
  const r = usageRecord(dep, org, new Date(), { llm });
  if (r.kind === 'usage') r.usage.tags = { team };
  return r;
}

async function caughtUp(seq: number): Promise<void> {
  await waitFor(async () => (await checkpoint(env.pool)) >= seq, 20_000, `checkpoint ${seq}`);
  await handle.flush();
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  org = await seedOrg(env.pool);
  dep = await seedDeployment(env.pool, org, { timezone: middayZoneNow(), enforcement: 'hard' });
  // $3 per 1M in, $15 per 1M out: 1,000 + 1,000 tokens = 18,000 µ$ = $0.018
  await setModelPrice(env.pool, { provider: 'acme', model_name: 'big-1', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000 });
  await addBudget(env.pool, dep, org, { scope: 'tag:team=ml', metric: 'cost_usd', period: 'daily', limit: 0.03, action: 'block' });
  await addBudget(env.pool, dep, org, { scope: 'tag:team=web', metric: 'cost_usd', period: 'daily', limit: 0.03, action: 'block' });
  handle = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', batchSize: 50, licensePublicKey: null, repriceIntervalMs: 200 });
});

afterAll(async () => {
  await handle?.close();
  await env?.cleanup();
});

describe('cost budgets scoped to a tag, and prices arriving late', () => {
  it('a budget scoped tag:team=ml counts only the cost of events tagged team=ml', async () => {
    const big = { provider: 'acme', model_name: 'big-1', tokens_in: 1_000, tokens_out: 1_000 };
    await caughtUp(await publish(nc, env.names, [tagged('ml', big), tagged('ml', big), tagged('web', big)]));
    expect(await kvDecision('tag:team=ml')).toMatchObject({ code: 'BUDGET_EXCEEDED', action: 'block', state: 'active', observed: 0.036, limit: 0.03 });
    expect(await kvDecision('tag:team=web')).toBeNull();
    const eff = await effectiveLimits(env.pool, dep);
    expect(eff.budgets.find((b) => b.scope === 'tag:team=web')).toMatchObject({ used: '0.018' });
    expect(eff.budgets.find((b) => b.scope === 'tag:team=ml')).toMatchObject({ used: '0.036' });
  });

  it('an unknown model raises PRICE_UNKNOWN once; its price arriving re-prices the ledger, the tag budget now decides, PRICE_UNKNOWN clears', async () => {
    const mystery = { provider: 'nobody', model_name: 'mystery-2', tokens_in: 10_000, tokens_out: 0 };
    await caughtUp(await publish(nc, env.names, [tagged('web', mystery)]));
    await caughtUp(await publish(nc, env.names, [tagged('web', mystery)]));
    expect(await kvDecision('model:mystery-2')).toMatchObject({ code: 'PRICE_UNKNOWN', state: 'active' });
    const raised = (await controlMessages(nc, env.names)).filter((m) => m.deployment_id === dep && m.code === 'PRICE_UNKNOWN');
    expect(raised.length).toBe(1);
    expect(await kvDecision('tag:team=web')).toBeNull();

    // $1 per 1M in: each mystery job costs $0.01, the web team reaches 0.018 + 0.02 = $0.038 > $0.03
    await setModelPrice(env.pool, { provider: 'nobody', model_name: 'mystery-2', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 1_000_000 });
    await waitFor(async () => (await kvDecision('tag:team=web'))?.code === 'BUDGET_EXCEEDED', 20_000, 'the web budget decided after re-pricing');
    expect(await kvDecision('tag:team=web')).toMatchObject({ observed: 0.038, action: 'block' });
    await waitFor(async () => (await kvDecision('model:mystery-2'))?.state === 'cleared', 20_000, 'PRICE_UNKNOWN cleared');
    const c = await env.pool.query(`select cost_micro_usd::text as c, price_version from enforcer_contribution where deployment_id = $1 and model_name = 'mystery-2'`, [dep]);
    expect(c.rows).toEqual([{ c: '10000', price_version: 1 }, { c: '10000', price_version: 1 }]);
    const daily = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cost_usd'`, [dep]);
    expect(Number(daily.rows[0].v)).toBeCloseTo(0.018 * 3 + 0.02, 9);
  });
});
