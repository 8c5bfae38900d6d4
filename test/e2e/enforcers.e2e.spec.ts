import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { currentPartitioning, decisionsBucket, ensureDecisionsStream, ensureEventsStream, partitionOf, type PolicyDecision } from '@kaching/contracts';
import { addQuota, alertCodes, controlMessages, publish, seedDeployment, seedOrg, usageRecord } from '../../enforcer/test/helpers.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { ServiceProcess } from '../support/instances.js';
import { lanesCaughtUp, owners, waitFor } from './scale-support.js';

/**
 * Two enforcer processes share 4 partitions; one is SIGKILLed mid-stream and its lanes move to the other.
 * Each deployment's thresholds still alert once, each decision is published once, usage is exact.
 */
describe('two enforcer processes, one SIGKILLed mid-stream', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  const procs: ServiceProcess[] = [];

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await ensureDecisionsStream(nc, env.names);
    await currentPartitioning(env.pool, 4);
    const childEnv = { ...env.env, KACHING_PARTITIONS: '4', KACHING_LEASE_MS: '2000', ENFORCER_BATCH: '10' };
    procs.push(new ServiceProcess('enforcer', childEnv, 'enforcer-a'), new ServiceProcess('enforcer', childEnv, 'enforcer-b'));
    await Promise.all(procs.map((p) => p.start()));
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await env?.cleanup();
  });

  it('one alert per threshold and one published decision each, whichever instance owned the deployment', async () => {
    const org = await seedOrg(env.pool);
    const deps: string[] = [];
    const seen = new Set<number>();
    while (seen.size < 4) {
      const d = await seedDeployment(env.pool, org);
      if (seen.has(partitionOf(d, 4))) continue;
      seen.add(partitionOf(d, 4));
      deps.push(d);
      await addQuota(env.pool, d, org, { name: 'cpu', metric: 'cpu_seconds', period: 'rolling_30d', soft: 1000, hard: 1500 });
    }
    await waitFor(async () => new Set((await owners(env.pool, 'enforcer')).values()).size === 2, 60_000, 'lanes split over both enforcers');
    const now = new Date();
    const send = (n: number) => publish(nc, env.names, Array.from({ length: n }, (_, i) => usageRecord(deps[i % 4]!, org, now, { cpu: 5 })), 4);
    await send(600); // 150 x 5 = 750 per deployment: below the soft threshold
    await procs[1]!.kill();
    await send(1000); // 250 more each: 2000 per deployment, past both thresholds
    await waitFor(() => lanesCaughtUp(env.pool, nc, env.names, ['enforcer']), 60_000, 'enforcer lanes caught up');
    await waitFor(async () => (await env.pool.query('select 1 from enforcer_outbox where published_at is null')).rows.length === 0, 30_000, 'outbox drained');

    const msgs = (await controlMessages(nc, env.names)).filter((m) => m.state === 'active');
    const kv = await decisionsBucket(nc, env.names);
    for (const d of deps) {
      const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [d]);
      expect(used.rows[0].v, d).toBe('2000');
      expect(await alertCodes(env.pool, d)).toEqual(['QUOTA_NEARING', 'QUOTA_EXCEEDED']);
      expect(msgs.filter((m) => m.deployment_id === d).map((m) => m.code).sort()).toEqual(['QUOTA_EXCEEDED', 'QUOTA_NEARING']);
      expect((await kv.get(env.names.decisionKey(d, 'cpu')))!.json<PolicyDecision>()).toMatchObject({ code: 'QUOTA_EXCEEDED', state: 'active' });
    }
  });
});
