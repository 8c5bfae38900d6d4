import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { checkpoint, makeStream, seedDeployment, waitCaughtUp } from './helpers.js';

/**
 * A durable consumer can disappear under a running projector (an operator deletes it, a server loses its
 * state). consume() then retried for ever and the projection silently stopped; it must re-create its
 * consumer from its checkpoint and carry on, without re-reading the stream from the start.
 */
describe('a projection whose durable consumer is deleted or outdated', () => {
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

  it('re-creates it from its checkpoint and projects what comes next', async () => {
    const nc = await env.nats();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 200, seed: 3 }));
    let last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last);
    const applied0 = (await handle.metrics.applied.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;

    await jsm.consumers.delete(env.names.eventsStream, env.names.consumer('raw'));
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 100, seed: 4 }));
    last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last, ['raw', 'rollups', 'concurrency'], 60_000);

    expect(await checkpoint(env.pool, 'raw')).toBe(last);
    const info = await jsm.consumers.info(env.names.eventsStream, env.names.consumer('raw'));
    expect(info.num_pending).toBe(0);
    // re-created after the checkpoint: only the new messages were applied, none of the old ones re-read
    const applied = (await handle.metrics.applied.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;
    const skipped = (await handle.metrics.skipped.get()).values.find((v) => v.labels.projection === 'raw')?.value ?? 0;
    expect(applied - applied0).toBeGreaterThan(0);
    expect(skipped).toBe(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('replaces a durable left by an older version (explicit acks) with one acked per batch, from the checkpoint', async () => {
    const nc = await env.nats();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await handle.close();
    // what earlier versions created: explicit acks, and here delivering from the start again
    await jsm.consumers.delete(env.names.eventsStream, env.names.consumer('rollups'));
    await jsm.consumers.add(env.names.eventsStream, {
      durable_name: env.names.consumer('rollups'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    });
    await publishMessages(js, makeStream(env.names, { ...ids, jobs: 100, seed: 5 }));
    const last = (await jsm.streams.info(env.names.eventsStream)).state.last_seq;
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', logLevel: 'error' });
    await waitCaughtUp(env.pool, last, ['raw', 'rollups', 'concurrency'], 60_000);

    const info = await jsm.consumers.info(env.names.eventsStream, env.names.consumer('rollups'));
    expect(info.config.ack_policy).toBe(AckPolicy.All);
    // the per-batch ack covered every message: nothing left waiting for an ack or to be delivered
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(last);
    // started after the checkpoint, not from the start the old durable would have delivered
    const skipped = (await handle.metrics.skipped.get()).values.find((v) => v.labels.projection === 'rollups')?.value ?? 0;
    expect(skipped).toBe(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });
});
