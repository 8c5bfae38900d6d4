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

interface Trickle {
  env: IsolatedEnv;
  handle: ProjectorHandle;
  published: number;
}

/** A projector on its own database and stream, then `messages` published one at a time, each acknowledged before the next. */
async function trickle(o: { messages: number; seed: number; pauseMs: number; pauseEvery: number; fillMs?: number }): Promise<Trickle> {
  const env = await isolatedEnv();
  const { orgId, deploymentId } = await seedDeployment(env.pool);
  const nc = await env.nats();
  await ensureEventsStream(nc, env.names);
  const handle = await start({
    ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 500,
    ...(o.fillMs !== undefined ? { fillMs: o.fillMs } : {}),
  });
  const msgs = makeStream(env.names, { deploymentId, orgId, jobs: o.messages, seed: o.seed, dupRate: 0 }).slice(0, o.messages);
  const js = jetstream(nc);
  let published = 0;
  for (const m of msgs) {
    await js.publish(m.subject, m.data, { msgID: m.msgId });
    published++;
    if (published % o.pauseEvery === 0) await new Promise((r) => setTimeout(r, o.pauseMs));
  }
  await waitCaughtUp(env.pool, published, undefined, 60_000);
  return { env, handle, published };
}

async function stop(t: Trickle | undefined): Promise<void> {
  await t?.handle.close();
  await t?.env.cleanup();
}

/**
 * A caught-up consumer sees every message with nothing pending behind it. Messages that arrive while
 * a batch commits must still go into the next batch together, not one commit each: one commit per
 * message made a steady trickle lag further and further behind.
 */
describe('a caught-up projector under a steady trickle', () => {
  let t: Trickle;
  // One message about every millisecond: a trickle, never a backlog.
  beforeAll(async () => void (t = await trickle({ messages: MESSAGES, seed: 5, pauseMs: 1, pauseEvery: 2 })), 120_000);
  afterAll(() => stop(t));

  it('applies what arrived during a commit as one batch (far fewer commits than messages)', async () => {
    for (const p of ['raw', 'rollups', 'concurrency']) {
      const batches = await batchesCommitted(t.handle, p);
      expect(batches, p).toBeGreaterThan(0);
      expect(batches, p).toBeLessThan(t.published / 3);
    }
  });

  it('and the projections stay exact', async () => {
    expect(await verifyProjections(t.env.pool)).toEqual([]);
  });
});

/**
 * PROJECTOR_FILL_MS: a caught-up lane lets a partial batch wait, from its first message, for more. Messages
 * trickling in well inside that window are committed together instead of in a batch per arrival.
 */
describe('a caught-up projector with a fill window', () => {
  let t: Trickle;
  // 60 messages a few ms apart: far inside the 5 s window
  beforeAll(async () => void (t = await trickle({ messages: 60, seed: 9, pauseMs: 2, pauseEvery: 1, fillMs: 5_000 })), 120_000);
  afterAll(() => stop(t));

  it('commits the trickle in one batch per projection', async () => {
    for (const p of ['raw', 'rollups', 'concurrency']) expect(await batchesCommitted(t.handle, p), p).toBe(1);
    expect(await verifyProjections(t.env.pool)).toEqual([]);
  });
});
