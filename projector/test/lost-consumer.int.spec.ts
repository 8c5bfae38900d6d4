import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
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
describe('a projection whose durable consumer is deleted under it', () => {
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
});
