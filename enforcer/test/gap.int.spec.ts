import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { start, type EnforcerHandle } from '@kaching/enforcer';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { checkpoint, publish, seedDeployment, seedOrg, usageRecord, waitFor } from './helpers.js';

/**
 * A message the server handed out but the enforcer never received must not be skipped. The test makes that
 * happen on purpose: a second client pulls from the enforcer's own lane consumer (an ordered consumer), so
 * one message goes to that client. The enforcer sees the delivery-sequence gap, its consumer is recreated
 * from the last message it got, and all three messages are applied.
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

  const laneConsumer = async (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => {
    for await (const ci of jsm.consumers.list(env.names.eventsStream)) {
      if (ci.config.filter_subject === `${env.names.namespace}.events.1.0.>`) return ci;
    }
    return null;
  };

  it('is not skipped: the enforcer reads on from the last message it got and applies it', async () => {
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org);
    handle = await start({ natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'error', port: 0, host: '127.0.0.1', batchSize: 10, licensePublicKey: null });

    const jsm = await jetstreamManager(nc);
    // the enforcer's pull request is waiting; queue a second one behind it on the same consumer
    const lane = await waitFor(async () => {
      const ci = await laneConsumer(jsm);
      return ci && ci.num_waiting >= 1 ? ci : null;
    }, 10_000, 'enforcer pull');
    const thief = await jetstream(nc).consumers.get(env.names.eventsStream, lane.name);
    const stolen = await thief.fetch({ max_messages: 1, expires: 20_000 });
    const taking = (async () => {
      const seqs: number[] = [];
      for await (const m of stolen) seqs.push(m.info.streamSequence);
      return seqs;
    })();
    await waitFor(async () => ((await jsm.consumers.info(env.names.eventsStream, lane.name)).num_waiting >= 2), 10_000, 'second pull');

    const last = await publish(nc, env.names, [1, 2, 3].map((cpu) => usageRecord(dep, org, new Date(), { cpu })));
    const took = await taking;
    expect(took).toHaveLength(1);

    await waitFor(async () => (await checkpoint(env.pool)) >= last, 20_000, 'checkpoint at the last message');
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('6');
  });

  it('a consumer deleted under it does not stop the enforcer: it reads on from its checkpoint', async () => {
    const nc = await env.nats();
    const org = await seedOrg(env.pool);
    const dep = await seedDeployment(env.pool, org);
    const jsm = await jetstreamManager(nc);
    const before = await checkpoint(env.pool);
    for await (const ci of jsm.consumers.list(env.names.eventsStream)) await jsm.consumers.delete(env.names.eventsStream, ci.name);
    const last = await publish(nc, env.names, [4, 5].map((cpu) => usageRecord(dep, org, new Date(), { cpu })));
    expect(last).toBeGreaterThan(before);
    await waitFor(async () => (await checkpoint(env.pool)) >= last, 60_000, 'checkpoint at the last message');
    const used = await env.pool.query(`select sum(value)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = 'cpu_seconds'`, [dep]);
    expect(used.rows[0].v).toBe('9');
  });
});
