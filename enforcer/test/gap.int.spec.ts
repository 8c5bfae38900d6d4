import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { checkpoint, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

/**
 * A message the server handed out but the enforcer never received comes back only after ack_wait
 * (120 s), behind later messages. The test makes that happen on purpose: a second client pulls from
 * the enforcer's own durable consumer, and JetStream serves waiting pull requests in turn, so the
 * second message goes to that client and is never acked. The enforcer must not move its checkpoint
 * over the missing message; it re-reads from the checkpoint and applies all three well before
 * ack_wait would have brought the message back.
 */
describe('enforcer: a message missing from its delivery', () => {
  let env: IsolatedEnv;
  let handle: EnforcerHandle | undefined;

  beforeAll(async () => {
    env = await isolatedEnv();
  });
  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('is not skipped: the enforcer re-reads from its checkpoint and applies it', async () => {
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org);
    handle = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', batchSize: 10 });

    const jsm = await jetstreamManager(nc);
    const durable = env.names.consumer('enforcer');
    // the enforcer's pull request is waiting; queue a second one behind it on the same durable
    await waitFor(async () => (await jsm.consumers.info(env.names.eventsStream, durable)).num_waiting >= 1, 10_000, 'enforcer pull');
    const thief = await jetstream(nc).consumers.get(env.names.eventsStream, durable);
    const stolen = await thief.fetch({ max_messages: 1, expires: 20_000 });
    const taking = (async () => {
      const seqs: number[] = [];
      for await (const m of stolen) seqs.push(m.info.streamSequence); // never acked
      return seqs;
    })();
    await waitFor(async () => (await jsm.consumers.info(env.names.eventsStream, durable)).num_waiting >= 2, 10_000, 'second pull');

    const t0 = Date.now();
    const last = await publish(nc, env.names, [1, 2, 3].map((cpu) => usageRecord(dep, org, new Date(), { cpu })));
    expect(await taking).toEqual([2]);

    await waitFor(async () => (await checkpoint(env.pool)) >= last, 20_000, 'checkpoint at the last message');
    expect(Date.now() - t0).toBeLessThan(60_000); // not the redelivery after ack_wait
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('6');
    const rewinds = (await handle.metrics.rewinds.get()).values[0]?.value ?? 0;
    expect(rewinds).toBeGreaterThanOrEqual(1);
  });

  it('a subscription that ends under it (its consumer deleted) does not stop the enforcer: it re-reads from its checkpoint', async () => {
    const nc = await env.nats();
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org);
    const jsm = await jetstreamManager(nc);
    const before = await checkpoint(env.pool);
    const rewinds0 = (await handle!.metrics.rewinds.get()).values[0]?.value ?? 0;
    // nats.js ends a consume() whose consumer is deleted; before, the enforcer then stopped reading for good
    await jsm.consumers.delete(env.names.eventsStream, env.names.consumer('enforcer'));
    const last = await publish(nc, env.names, [4, 5].map((cpu) => usageRecord(dep, org, new Date(), { cpu })));
    expect(last).toBeGreaterThan(before);
    await waitFor(async () => (await checkpoint(env.pool)) >= last, 60_000, 'checkpoint at the last message');
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('9');
    expect((await handle!.metrics.rewinds.get()).values[0]?.value ?? 0).toBeGreaterThan(rewinds0);
  });
});
