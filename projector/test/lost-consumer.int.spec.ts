import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { checkpoint, makeStream, seedDeployment, waitCaughtUp } from './helpers.js';

/**
 * A lane's consumer can disappear under a running projector (an operator deletes it, a server loses its
 * state). Each lane is read by an ordered consumer: it must come back from where it was and carry on,
 * without re-reading what is applied and without skipping anything.
 */
describe('a projection whose lane consumers are deleted, or with a durable left by an older version', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let ids: { orgId: string; deploymentId: string };

  beforeAll(async () => {
    env = await isolatedEnv();
    ids = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', logLevel: 'error' });
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('comes back from where it was and projects what comes next', async () => {
    const nc = await env.nats();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 200, seed: 3 }));
    let last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last);
    const applied0 = (await handle.metrics.applied.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;

    let deleted = 0;
    for await (const ci of jsm.consumers.list(env.names.eventsStream)) {
      await jsm.consumers.delete(env.names.eventsStream, ci.name);
      deleted++;
    }
    expect(deleted).toBe(6); // 3 projections x (legacy lane + lane 1.0)
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 100, seed: 4 }));
    last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last, ['raw', 'rollups', 'concurrency'], 60_000);

    expect(await checkpoint(env.pool, 'raw')).toBe(last);
    // only the new messages were applied, none of the old ones re-read
    const applied = (await handle.metrics.applied.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;
    const skipped = (await handle.metrics.skipped.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;
    expect(applied - applied0).toBeGreaterThan(0);
    expect(skipped).toBe(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('deletes a durable left by an older version and reads on from the checkpoint', async () => {
    const nc = await env.nats();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await handle.close();
    // what earlier versions created: a durable per projection
    await jsm.consumers.add(env.names.eventsStream, {
      durable_name: env.names.consumer('rollups'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    });
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 100, seed: 5 }));
    const last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', logLevel: 'error' });
    await waitCaughtUp(env.pool, last, ['raw', 'rollups', 'concurrency'], 60_000);
    await expect(jsm.consumers.info(env.names.eventsStream, env.names.consumer('rollups'))).rejects.toThrow();
    // started after the checkpoint, not from the start
    const skipped = (await handle.metrics.skipped.get()).values.find((v) => v.labels.projection === 'rollups')?.value ?? 0;
    expect(skipped).toBe(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });
});
