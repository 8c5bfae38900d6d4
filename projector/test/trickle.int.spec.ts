import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { makeStream, seedDeployment, waitCaughtUp } from './helpers.js';

const MESSAGES = 400;

/** How many batches a projection committed, from its batch-duration histogram. */
async function batchesCommitted(handle: ProjectorHandle, projection: string): Promise<number> {
  const metric = await handle.metrics.batchSeconds.get();
  const count = metric.values.find((v) => v.metricName?.endsWith('_count') && v.labels.projection === projection);
  return count?.value ?? 0;
}

/**
 * A caught-up consumer sees every message with nothing pending behind it. Messages that arrive while
 * a batch commits must still go into the next batch together, not one commit each: one commit per
 * message made a steady trickle lag further and further behind.
 */
describe('a caught-up projector under a steady trickle', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let published = 0;

  beforeAll(async () => {
    env = await isolatedEnv();
    const { orgId, deploymentId } = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 500 });
    const msgs = makeStream(env.names, { deploymentId, orgId, jobs: MESSAGES, seed: 5, dupRate: 0 }).slice(0, MESSAGES);
    const js = jetstream(nc);
    // One message about every millisecond, each acknowledged before the next: a trickle, never a backlog.
    for (const m of msgs) {
      await js.publish(m.subject, m.data, { msgID: m.msgId });
      published++;
      if (published % 2 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await waitCaughtUp(env.pool, published, undefined, 60_000);
  }, 120_000);

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('applies what arrived during a commit as one batch (far fewer commits than messages)', async () => {
    for (const p of ['raw', 'rollups', 'concurrency']) {
      const batches = await batchesCommitted(handle, p);
      expect(batches, p).toBeGreaterThan(0);
      expect(batches, p).toBeLessThan(published / 3);
    }
  });

  it('and the projections stay exact', async () => {
    expect(await verifyProjections(env.pool)).toEqual([]);
  });
});

/**
 * PROJECTOR_FILL_MS: a caught-up lane lets a partial batch wait, from its first message, for more. Messages
 * trickling in well inside that window are committed together instead of in a batch per arrival.
 */
describe('a caught-up projector with a fill window', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let published = 0;

  beforeAll(async () => {
    env = await isolatedEnv();
    const { orgId, deploymentId } = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 500, fillMs: 5_000 });
    const msgs = makeStream(env.names, { deploymentId, orgId, jobs: 60, seed: 9, dupRate: 0 }).slice(0, 60);
    const js = jetstream(nc);
    // 60 messages, each acknowledged before the next, a few ms apart: far inside the 5 s window
    for (const m of msgs) {
      await js.publish(m.subject, m.data, { msgID: m.msgId });
      published++;
      await new Promise((r) => setTimeout(r, 2));
    }
    await waitCaughtUp(env.pool, published, undefined, 60_000);
  }, 120_000);

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('commits the trickle in one batch per projection', async () => {
    for (const p of ['raw', 'rollups', 'concurrency']) expect(await batchesCommitted(handle, p), p).toBe(1);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });
});
