import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, localDay, localMidnight, addDays, setModelPrice, type StreamRecord } from '@kaching/contracts';
import { issueApiKey, loadConfig as apiConfig, start as startApi, type ApiHandle } from '@kaching/api';
import { start as startEnforcer, type EnforcerHandle } from '@kaching/enforcer';
import { loadConfig as projectorConfig, start as startProjector, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { addBudget, addQuota, controlMessages, publish, seedDeployment, seedOrg, usageRecord, waitFor } from '../../enforcer/test/helpers.js';

/**
 * A deployment's day is its local day of the instant a report is attributed to (ended_at ?? started_at):
 * events a minute either side of local midnight, in zones from UTC−11 to UTC+14 and with half-hour offsets,
 * land on the right days in the daily rollups, the peak concurrency and the enforcer's ledger alike; the
 * dashboard's "today" follows the API's (pinned) clock; a timezone change moves every day-keyed row.
 */
const DAY = '2026-11-20';
const ZONES = ['Europe/Berlin', 'Asia/Kolkata', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'America/St_Johns'];
// Around Berlin's DST changes (2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00) the offset is +02:00: local
// 00:30 on 03-30 and on 10-25 is 22:30 UTC the evening before. A fixed +01:00 would file both a day early.
const DST_EVENTS = ['2026-03-29T22:30:00Z', '2026-10-24T22:30:00Z'];
const DST_DAYS = ['2026-03-30', '2026-10-25'];

let env: IsolatedEnv;
let nc: NatsConnection;
let org: string;
let projector: ProjectorHandle;
let enforcer: EnforcerHandle;
const deps = new Map<string, string>();
let dstDep: string;

const ctx = (bytes: number) => ({ cpu: bytes / 100 });
const rec = (dep: string, at: Date, bytes: number, agent: string): StreamRecord => {
  const r = usageRecord(dep, org, at, { ...ctx(bytes), agentId: agent });
  if (r.kind === 'usage') r.usage.metrics.context_bytes_written = bytes;
  return r;
};
const agent = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

async function caughtUp(lastSeq: number): Promise<void> {
  await waitFor(async () => {
    const r = await env.pool.query(`select consumer, max(last_seq)::int as s from consumer_checkpoint group by consumer`);
    const done = new Map(r.rows.map((x) => [x.consumer, x.s]));
    return ['raw', 'rollups', 'concurrency', 'enforcer'].every((c) => (done.get(c) ?? 0) >= lastSeq);
  }, 60_000, `all consumers at ${lastSeq}`);
}

async function daily(dep: string): Promise<Record<string, { bytes: string; peak: number; seats: number }>> {
  const r = await env.pool.query(
    `select day::text, context_bytes_written::text as bytes, orchestration_peak_concurrency as peak, seats_active as seats
       from usage_rollup_daily where deployment_id = $1 order by day`, [dep]);
  return Object.fromEntries(r.rows.map((x) => [x.day, { bytes: x.bytes, peak: x.peak, seats: x.seats }]));
}

async function ledger(dep: string): Promise<Record<string, string>> {
  const r = await env.pool.query(`select day::text, value::text from enforcer_usage_daily where deployment_id = $1 and metric = 'context_bytes_written' order by day`, [dep]);
  return Object.fromEntries(r.rows.map((x) => [x.day, x.value]));
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  org = await seedOrg(env.pool);
  const recs: StreamRecord[] = [];
  let n = 0;
  for (const tz of ZONES) {
    const dep = await seedDeployment(env.pool, org, { timezone: tz });
    deps.set(tz, dep);
    const midnight = localMidnight(DAY, tz).getTime();
    // one minute before local midnight (the previous local day) and one minute after (DAY)
    recs.push(rec(dep, new Date(midnight - 60_000), 100, agent(++n)), rec(dep, new Date(midnight + 60_000), 1000, agent(++n)));
  }
  dstDep = await seedDeployment(env.pool, org, { timezone: 'Europe/Berlin' });
  for (const t of DST_EVENTS) recs.push(rec(dstDep, new Date(t), 7, agent(++n)));
  const last = await publish(nc, env.names, recs);
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1' });
  enforcer = await startEnforcer({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', batchSize: 50, licensePublicKey: null });
  await caughtUp(last);
});

afterAll(async () => {
  await enforcer?.close();
  await projector?.close();
  await env?.cleanup();
});

describe("a deployment's day is its local day", () => {
  for (const tz of ZONES) {
    it(`${tz}: the minute before local midnight is the previous day, the minute after is ${DAY} — rollups, peak and ledger agree`, async () => {
      const dep = deps.get(tz)!;
      const before = addDays(DAY, -1);
      expect(await daily(dep)).toEqual({ [before]: { bytes: '100', peak: 1, seats: 1 }, [DAY]: { bytes: '1000', peak: 1, seats: 1 } });
      expect(await ledger(dep)).toEqual({ [before]: '100', [DAY]: '1000' });
    });
  }

  it('Europe/Berlin around its DST changes: local 00:30 (+02:00) is that day, not the one a fixed +01:00 gives', async () => {
    expect(Object.keys(await daily(dstDep))).toEqual(DST_DAYS);
    expect(Object.keys(await ledger(dstDep))).toEqual(DST_DAYS);
    expect(DST_EVENTS.map((t) => localDay(Date.parse(t) + 3_600_000, 'UTC'))).toEqual(['2026-03-29', '2026-10-24']);
  });

  it('verify-projections recomputes the same local days from the raw samples', async () => {
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it("the dashboard's today follows the API's clock in the deployment's zone", async () => {
    const tz = 'Pacific/Kiritimati';
    const dep = deps.get(tz)!;
    await addQuota(env.pool, dep, org, { name: 'ctx-daily', metric: 'context_bytes_written', period: 'daily', hard: 10_000, soft: null });
    const key = (await issueApiKey(env.pool, { orgId: org, scopes: ['read'] })).apiKey;
    const midnight = localMidnight(DAY, tz).getTime();
    const card = async (at: number) => {
      const api: ApiHandle = await startApi({ ...apiConfig(env.env), port: 0 }, { pool: env.pool, nc, clock: () => at });
      try {
        const r = await fetch(`${api.url}/v1/deployments/${dep}/utilisation`, { headers: { authorization: `Bearer ${key}` } });
        const body = (await r.json()) as { cards: { key: string; used: string; series: { day: string; value: string }[] }[] };
        return body.cards.find((c) => c.key === 'context')!;
      } finally {
        await api.close();
      }
    };
    // five minutes before local midnight it is still the previous local day (in UTC it is already the day before that)
    expect((await card(midnight - 5 * 60_000)).used).toBe('100');
    const after = await card(midnight + 5 * 60_000);
    expect(after.used).toBe('1000');
    expect(after.series.slice(-2)).toEqual([{ day: addDays(DAY, -1), value: '100' }, { day: DAY, value: '1000' }]);
  });

  it('a timezone change moves every day-keyed row to the new zone, in one transaction, and verify stays clean', async () => {
    const dep = deps.get('Asia/Kolkata')!;
    const key = (await issueApiKey(env.pool, { orgId: org, scopes: ['read', 'admin'] })).apiKey;
    const api = await startApi({ ...apiConfig(env.env), port: 0 }, { pool: env.pool, nc });
    try {
      const r = await fetch(`${api.url}/v1/deployments/${dep}`, {
        method: 'PATCH', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ timezone: 'Pacific/Pago_Pago' }),
      });
      expect(r.status).toBe(200);
    } finally {
      await api.close();
    }
    // 18:29 and 18:31 UTC on the 19th: both on the 19th in Pago Pago (UTC−11)
    const before = addDays(DAY, -1);
    expect(await daily(dep)).toEqual({ [before]: { bytes: '1100', peak: 1, seats: 2 } });
    expect(await ledger(dep)).toEqual({ [before]: '1100' });
    expect(await verifyProjections(env.pool)).toEqual([]);
    // new events for it are attributed in the new zone
    const midnight = localMidnight(DAY, 'Pacific/Pago_Pago').getTime();
    const last = await publish(nc, env.names, [rec(dep, new Date(midnight + 60_000), 5, agent(900))]);
    await caughtUp(last);
    expect((await daily(dep))[DAY]?.bytes).toBe('5');
    expect((await ledger(dep))[DAY]).toBe('5');
  });
});

describe('one ledger: the card and the decision show the same number', () => {
  it('a cost budget in Asia/Kolkata with reasoning tokens: the card says what the enforcer compared', async () => {
    const tz = 'Asia/Kolkata';
    const dep = await seedDeployment(env.pool, org, { timezone: tz, enforcement: 'hard' });
    // $3 per 1M input, $15 per 1M output, $60 per 1M reasoning (priced apart from the rest of the output)
    await setModelPrice(env.pool, { provider: 'acme', model_name: 'thinker', effective_from: '2026-01-01T00:00:00Z', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000, reasoning_per_1m_micro_usd: 60_000_000 });
    await addBudget(env.pool, dep, org, { scope: 'spend', metric: 'cost_usd', period: 'daily', limit: 1, action: 'block' });
    await enforcer.close();
    enforcer = await startEnforcer({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', batchSize: 50, licensePublicKey: null });
    // 20:00 UTC = 01:30 the next day in Kolkata: the UTC day and the local day differ
    const at = new Date(`${DAY}T20:00:00Z`);
    const llm = { model_name: 'thinker', provider: 'acme', tokens_in: 100_000, tokens_out: 30_000, tokens_reasoning: 20_000 };
    // each: 0.3 + 10k × 15/1M + 20k × 60/1M = 0.3 + 0.15 + 1.2 = $1.65
    const recs = [0, 1].map((i) => usageRecord(dep, org, new Date(at.getTime() + i * 60_000), { llm }));
    const last = await publish(nc, env.names, recs);
    await caughtUp(last);
    await enforcer.flush();
    const decision = await waitFor(async () => (await controlMessages(nc, env.names)).find((d) => d.deployment_id === dep && d.code === 'BUDGET_EXCEEDED'), 20_000, 'the budget decision');
    expect(decision.observed).toBe(3.3);
    expect(decision.period?.window_start).toBe(localMidnight(addDays(DAY, 1), tz).toISOString());
    const key = (await issueApiKey(env.pool, { orgId: org, scopes: ['read'] })).apiKey;
    const api = await startApi({ ...apiConfig(env.env), port: 0 }, { pool: env.pool, nc, clock: () => at.getTime() + 3_600_000 });
    try {
      const r = await fetch(`${api.url}/v1/deployments/${dep}/utilisation`, { headers: { authorization: `Bearer ${key}` } });
      const cost = ((await r.json()) as { cards: { key: string; used: string; cap: string; pct: number }[] }).cards.find((c) => c.key === 'cost')!;
      expect(Number(cost.used)).toBe(decision.observed);
      expect(cost).toMatchObject({ cap: '1.000000', pct: 330 });
    } finally {
      await api.close();
    }
  });
});
