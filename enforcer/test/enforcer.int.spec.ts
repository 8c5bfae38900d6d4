import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  activateLicense, decisionsBucket, effectiveLimits, ensureEventsStream, issueLicense, licenseKeygen, publishConfigChange, setModelPrice,
  validatePolicyDecision, type PolicyDecision,
} from '@kaching/contracts';
import { commands, resetEnforcerState, start, type EnforcerConfig, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { addBudget, addQuota, alertCodes, checkpoint, controlMessages, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

const TZ = 'Europe/Berlin';

describe('enforcer: thresholds, decisions, restarts and replays', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let org: string;
  let dep: string; // quota cpu, hard enforcement, Berlin
  let handle: EnforcerHandle | null = null;
  let cfg: EnforcerConfig;
  const today = new Date();
  const tomorrow = new Date(today.getTime() + 24 * 3600_000);

  const caughtUp = async (h: EnforcerHandle, seq: number) => {
    await waitFor(async () => (await checkpoint(env.pool)) >= seq, 20_000, `checkpoint ${seq}`);
    await h.flush();
  };
  const kvDecision = async (d: string, scope: string): Promise<PolicyDecision | null> => {
    const kv = await decisionsBucket(nc, env.names);
    const e = await kv.get(env.names.decisionKey(d, scope));
    return e && e.length ? e.json<PolicyDecision>() : null;
  };
  const published = async (d: string) => (await controlMessages(nc, env.names)).filter((m) => m.deployment_id === d);

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    org = await seedOrg(env.pool);
    dep = await seedDeployment(env.pool, org, { timezone: TZ, enforcement: 'hard' });
    await env.pool.query(`insert into pricing_plan (plan_id, name, rank, meta) values
      ('starter', 'Starter', 1, '{"limits":{"cpu_seconds":100}}'), ('business', 'Business', 2, '{"limits":{"cpu_seconds":300}}')`);
    await addQuota(env.pool, dep, org, { name: 'cpu', metric: 'cpu_seconds', period: 'daily', hard: 100, soft: 80 });
    const k = await licenseKeygen();
    const blob = await issueLicense({ org_id: org, deployment_id: dep, plan_id: 'starter', valid_from: '2020-01-01', valid_to: '2099-01-01' }, k.privateKey);
    await activateLicense(env.pool, blob, k.publicKey);
    cfg = { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', licensePublicKey: k.publicKey, batchSize: 3 };
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('soft then hard threshold: exactly one QUOTA_NEARING and one QUOTA_EXCEEDED, across a crash mid-stream', async () => {
    // 12 × 10 cpu-seconds: soft (80) crossed by the 8th event (3rd batch of 3), hard (>100) by the 11th
    const last = await publish(nc, env.names, Array.from({ length: 12 }, () => usageRecord(dep, org, today, { cpu: 10 })));
    // crash right after committing the batch that holds QUOTA_NEARING: not acked, not published
    const crashing = await start({ ...cfg, crashAfterBatches: 3 });
    await waitFor(async () => (await checkpoint(env.pool)) >= 9, 20_000, 'third batch');
    await crashing.close();
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING']);
    const pendingBefore = (await env.pool.query('select count(*)::int as n from enforcer_outbox where published_at is null')).rows[0].n;
    expect(pendingBefore).toBeGreaterThan(0);

    handle = await start(cfg);
    await caughtUp(handle, last);
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED']);
    const msgs = (await published(dep)).filter((m) => m.state === 'active');
    expect(msgs.map((m) => m.code).sort()).toEqual(['QUOTA_EXCEEDED', 'QUOTA_NEARING']);
    const kv = await kvDecision(dep, 'cpu');
    expect(kv).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'active', action: 'block', enforcement: 'hard', scope: 'cpu', limit: 100 });
    expect(kv!.observed).toBeGreaterThan(100);
    expect(kv!.period).toMatchObject({ kind: 'daily', timezone: TZ });
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('120');
    const sug = await env.pool.query('select rationale, target_plan, diffs from suggestion where deployment_id = $1 order by created_at', [dep]);
    expect(sug.rows).toHaveLength(2);
    expect(sug.rows[1].target_plan).toBe('business');
    expect(sug.rows[1].rationale).toMatch(/1\.[12]0× your cap \(1[12]0 CPU-s of 100 CPU-s\)/);
    // people read units and grouped numbers; the alert's context keeps the exact values for machines
    const alert = (await env.pool.query(`select message, context from alert where deployment_id = $1 and code = 'QUOTA_EXCEEDED'`, [dep])).rows[0];
    expect(alert.message).toMatch(/^Quota cpu: cpu_seconds 1[12]0 CPU-s exceeds the limit 100 CPU-s /);
    expect(alert.context).toMatchObject({ metric: 'cpu_seconds', limit: 100 });
    expect([110, 120]).toContain(alert.context.observed);
    expect(sug.rows[1].rationale).toContain('Business raises it 3×');
  });

  it('a full replay neither double-counts nor alerts or publishes twice', async () => {
    await handle!.close();
    await resetEnforcerState(env.pool);
    const before = await kvDecision(dep, 'cpu');
    handle = await start(cfg);
    const info = await (await import('@nats-io/jetstream')).jetstreamManager(nc).then((j) => j.streams.info(env.names.eventsStream));
    await caughtUp(handle, info.state.last_seq);
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED']);
    expect((await published(dep)).filter((m) => m.state === 'active')).toHaveLength(2);
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('120');
    expect(await kvDecision(dep, 'cpu')).toEqual(before);
  });

  it('`kaching replay enforcer` while it runs rebuilds the counters without alerting or publishing again', async () => {
    const before = await kvDecision(dep, 'cpu');
    const last = (await (await import('@nats-io/jetstream')).jetstreamManager(nc).then((j) => j.streams.info(env.names.eventsStream))).state.last_seq;
    const cmd = commands.find((c) => c.name === 'replay enforcer')!;
    const r = await cmd.run({ args: {}, positionals: [], config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' }, json: true, progress: () => undefined, signal: new AbortController().signal });
    expect(r.data).toMatchObject({ lanes: expect.any(Number) });
    const used = async () => (await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep])).rows[0].v;
    // the running instance re-reads the whole stream: the counters come back to the same total
    await waitFor(async () => (await checkpoint(env.pool)) >= last && (await used()) === '120', 20_000, 'the replay caught up');
    await handle!.flush();
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED']);
    expect((await published(dep)).filter((m) => m.state === 'active')).toHaveLength(2);
    expect(await kvDecision(dep, 'cpu')).toEqual(before);
  });

  it('a later revision counts only the difference; an older late revision changes nothing', async () => {
    const d2 = await seedDeployment(env.pool, org, { timezone: TZ });
    const t = new Date(today.getTime() - 60_000);
    const running = usageRecord(d2, org, t, { cpu: 5, correlationId: 'job-1', status: 'running' });
    const final = usageRecord(d2, org, t, { cpu: 7, correlationId: 'job-1' });
    (final as { usage: { job: { ended_at: string } } }).usage.job.ended_at = new Date(t.getTime() + 30_000).toISOString();
    const lateOlder = usageRecord(d2, org, t, { cpu: 3, correlationId: 'job-1', status: 'running' });
    await publish(nc, env.names, [running, final]);
    const last = await publish(nc, env.names, [lateOlder]); // an older revision arriving late: must change nothing
    await caughtUp(handle!, last);
    const r = await env.pool.query(`select metric, value::text as v from enforcer_usage_daily where deployment_id = $1 and metric in ('cpu_seconds', 'jobs') order by metric`, [d2]);
    expect(r.rows).toEqual([{ metric: 'cpu_seconds', v: '7' }, { metric: 'jobs', v: '1' }]);
  });

  it('the next period starts fresh: the old decision is cleared and thresholds fire again', async () => {
    let last = await publish(nc, env.names, [usageRecord(dep, org, tomorrow, { cpu: 10 })]);
    await caughtUp(handle!, last);
    expect(await kvDecision(dep, 'cpu')).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'cleared' });
    last = await publish(nc, env.names, Array.from({ length: 8 }, () => usageRecord(dep, org, tomorrow, { cpu: 10 })));
    await caughtUp(handle!, last);
    const kv = await kvDecision(dep, 'cpu');
    expect(kv).toMatchObject({ code: 'QUOTA_NEARING', state: 'active' });
    expect(kv!.observed).toBeGreaterThanOrEqual(80); // usage when the batch that crossed was evaluated
    expect(kv!.decision_id).not.toBe((await env.pool.query(`select decision_id from alert where deployment_id = $1 order by created_at limit 1`, [dep])).rows[0].decision_id);
    expect(await alertCodes(env.pool, dep)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED', 'QUOTA_NEARING']);
  });

  it('a late orchestrator reads current decisions from KV, then receives new ones by watching', async () => {
    const kv = await decisionsBucket(nc, env.names);
    const seen: PolicyDecision[] = [];
    const iter = await kv.watch({ key: `${dep}.>` });
    const watching = (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') continue;
        seen.push(e.json<PolicyDecision>());
        if (seen.some((d) => d.code === 'QUOTA_EXCEEDED' && d.state === 'active')) break;
      }
    })();
    await waitFor(async () => seen.length >= 1, 5000, 'initial KV values');
    expect(seen[0]).toMatchObject({ code: 'QUOTA_NEARING', state: 'active' });
    const last = await publish(nc, env.names, Array.from({ length: 2 }, () => usageRecord(dep, org, tomorrow, { cpu: 10 })));
    await caughtUp(handle!, last);
    await watching;
    iter.stop();
    expect(seen.at(-1)).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'active', observed: 110 });
  });

  it('throttle carries its concurrency cap; raising the limit clears the KV decision', async () => {
    const d3 = await seedDeployment(env.pool, org, { enforcement: 'hard' });
    await addBudget(env.pool, d3, org, { scope: 'agents', metric: 'cpu_seconds', period: 'daily', limit: 50, action: 'throttle', params: { max_concurrency: 2 } });
    const last = await publish(nc, env.names, Array.from({ length: 6 }, () => usageRecord(d3, org, today, { cpu: 10 })));
    await caughtUp(handle!, last);
    const dec = await kvDecision(d3, 'agents');
    expect(dec).toMatchObject({ code: 'BUDGET_EXCEEDED', state: 'active', action: 'throttle', params: { max_concurrency: 2 }, limit: 50 });
    expect(dec!.observed).toBeGreaterThanOrEqual(50);
    await env.pool.query(`update budget set limit_units = 1000 where deployment_id = $1`, [d3]);
    publishConfigChange(nc, env.names, { deployment_id: d3, kind: 'budget' });
    await waitFor(async () => (await kvDecision(d3, 'agents'))?.state === 'cleared', 10_000, 'cleared decision');
    const eff = await effectiveLimits(env.pool, d3);
    expect(eff.budgets[0]).toMatchObject({ scope: 'agents', used: '60', remaining: '940' });
  });

  it('fallback_model carries its model; an unpriced model raises PRICE_UNKNOWN; priced cost is exact micro-USD', async () => {
    const priceChanges = async () => (await handle!.metrics.configChanges.get()).values.find((v) => v.labels.kind === 'price')?.value ?? 0;
    const before = await priceChanges();
    await setModelPrice(env.pool, { provider: 'acme', model_name: 'big-1', input_per_1m_micro_usd: 3_000_000, output_per_1m_micro_usd: 15_000_000 });
    publishConfigChange(nc, env.names, { deployment_id: dep, kind: 'price' });
    const d4 = await seedDeployment(env.pool, org, { enforcement: 'hard' });
    await addBudget(env.pool, d4, org, { scope: 'llm', metric: 'cost_usd', period: 'monthly', limit: 0.05, action: 'fallback_model', params: { model: 'llama3.1:8b-q4' } });
    // the enforcer has reloaded its prices once it counts the change as applied
    await waitFor(async () => (await priceChanges()) > before, 15_000, 'the price reload');
    let last = await publish(nc, env.names, Array.from({ length: 3 }, () =>
      usageRecord(d4, org, today, { llm: { model_name: 'big-1', provider: 'acme', tokens_in: 1000, tokens_out: 1000 } })));
    await caughtUp(handle!, last);
    const cost = await env.pool.query(`select value::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cost_usd'`, [d4]);
    expect(cost.rows[0].v).toBe('0.054'); // 3 × (3000 + 15000) µ$
    const c = await env.pool.query(`select cost_micro_usd::int as c, price_version from enforcer_contribution where deployment_id = $1 limit 1`, [d4]);
    expect(c.rows[0]).toEqual({ c: 18000, price_version: 1 });
    expect(await kvDecision(d4, 'llm')).toMatchObject({ code: 'BUDGET_EXCEEDED', action: 'fallback_model', params: { model: 'llama3.1:8b-q4' } });
    last = await publish(nc, env.names, [usageRecord(d4, org, today, { llm: { model_name: 'mystery-7b', provider: 'nobody', tokens_in: 10, tokens_out: 10 } })]);
    await caughtUp(handle!, last);
    expect(await kvDecision(d4, 'model:mystery-7b')).toMatchObject({ code: 'PRICE_UNKNOWN', state: 'active' });
    expect(await alertCodes(env.pool, d4)).toContain('PRICE_UNKNOWN');
  });

  it('an expired license yields LICENSE_EXPIRED; node caps yield NODES_LIMIT_EXCEEDED', async () => {
    const d5 = await seedDeployment(env.pool, org);
    const k = await licenseKeygen();
    const blob = await issueLicense({ org_id: org, deployment_id: d5, plan_id: 'starter', nodes_limit: 1, valid_from: '2020-01-01', valid_to: '2021-01-01' }, k.privateKey);
    await expect(activateLicense(env.pool, blob, k.publicKey)).rejects.toMatchObject({ code: 'LICENSE_EXPIRED' });
    await activateLicense(env.pool, blob, k.publicKey, { allowExpired: true });
    const last = await publish(nc, env.names, [
      usageRecord(d5, org, today, { cpu: 1, nodeId: '00000000-0000-4000-8000-0000000000c1' }),
      usageRecord(d5, org, today, { cpu: 1, nodeId: '00000000-0000-4000-8000-0000000000c2' }),
    ]);
    await caughtUp(handle!, last);
    expect(await kvDecision(d5, 'license')).toMatchObject({ code: 'LICENSE_EXPIRED', state: 'active', severity: 'error' });
    expect(await kvDecision(d5, 'nodes')).toMatchObject({ code: 'NODES_LIMIT_EXCEEDED', observed: 2, limit: 1 });
    expect((await effectiveLimits(env.pool, d5)).license_status).toBe('expired');
  });

  it('serves /metrics with decisions by code and action, /healthz and /readyz', async () => {
    const m = await (await fetch(`${handle!.url}/metrics`)).text();
    expect(m).toMatch(/kaching_enforcer_decisions_total\{code="BUDGET_EXCEEDED",action="throttle",state="active"\} 1/);
    expect(m).toContain('kaching_enforcer_evaluation_seconds_bucket');
    expect(m).toContain('kaching_enforcer_consumer_lag');
    expect((await fetch(`${handle!.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${handle!.url}/readyz`)).status).toBe(200);
  });

  it('every published decision validates against the PolicyDecision schema', async () => {
    const all = await controlMessages(nc, env.names);
    expect(all.length).toBeGreaterThan(5);
    for (const d of all) expect(validatePolicyDecision(d)).toMatchObject({ ok: true });
    expect(all.some((d) => d.state === 'cleared')).toBe(true);
  });
});
