import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { currentPartitioning, ensureEventsStream, PROJECTIONS } from '@kaching/contracts';
import { loadConfig, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { generateMessages, publishMessages } from '../../projector/src/bench/generate.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { ServiceProcess } from '../support/instances.js';
import {
  deploymentsCovering, laneCount, lanesCaughtUp, lanesFor, owners, PROJECTION_TABLES, seedDeployments, streamMessages, tableDigest, waitFor,
} from './scale-support.js';

/**
 * Two projector processes share 4 partitions (issue 16): both apply batches, the lane checkpoints together
 * cover the stream, and the tables equal those of a single in-process projector fed the same stream. Then
 * one process is SIGKILLed: the other takes its lanes once their leases expire and the tables stay exact.
 */
describe('two projector processes on 4 partitions', () => {
  let env: IsolatedEnv;
  let single: IsolatedEnv;
  let nc: NatsConnection;
  let ncSingle: NatsConnection;
  let singleHandle: ProjectorHandle | undefined;
  const procs: ServiceProcess[] = [];
  const orgId = randomUUID();
  const deployments = deploymentsCovering(4, 2);
  let seed = 1;

  /** The same generated events into both installations (subjects per installation's namespace). */
  const publishBoth = async (jobs: number) => {
    for (const [i, deploymentId] of deployments.entries()) {
      const o = { orgId, deploymentId, jobs, seed: seed * 100 + i, partitions: 4, base: new Date('2026-11-20T00:00:00Z') };
      await publishMessages(jetstream(nc), generateMessages(env.names, o));
      await publishMessages(jetstream(ncSingle), generateMessages(single.names, o));
    }
    seed++;
  };

  const caughtUp = async () => {
    await waitFor(() => lanesCaughtUp(env.pool, nc, env.names, [...PROJECTIONS]), 120_000, 'the two instances caught up');
    await waitFor(() => lanesCaughtUp(single.pool, ncSingle, single.names, [...PROJECTIONS]), 120_000, 'the single instance caught up');
  };

  const expectSameTables = async () => {
    for (const t of PROJECTION_TABLES) expect(await tableDigest(env.pool, t), t).toBe(await tableDigest(single.pool, t));
  };

  beforeAll(async () => {
    [env, single] = await Promise.all([isolatedEnv(), isolatedEnv()]);
    [nc, ncSingle] = await Promise.all([env.nats(), single.nats()]);
    for (const e of [env, single]) {
      await ensureEventsStream(e === env ? nc : ncSingle, e.names);
      await seedDeployments(e.pool, orgId, deployments);
      await currentPartitioning(e.pool, 4);
    }
    const childEnv = { ...env.env, KACHING_PARTITIONS: '4', KACHING_LEASE_MS: '2000', PROJECTOR_BATCH_SIZE: '100' };
    procs.push(new ServiceProcess('projector', childEnv, 'projector-a'), new ServiceProcess('projector', childEnv, 'projector-b'));
    await Promise.all(procs.map((p) => p.start()));
    singleHandle = await start({ ...loadConfig({}), databaseUrl: single.databaseUrl, natsUrl: single.natsUrl, namespace: single.namespace, port: 0, host: '127.0.0.1', logLevel: 'warn', partitions: 4 });
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await singleHandle?.close();
    await env?.cleanup();
    await single?.cleanup();
  });

  const pidOf = (owner: string) => Number(owner.split('-').at(-2));

  it('both instances own lanes and apply batches; the lane checkpoints cover the stream; the tables equal a single instance\'s', async () => {
    // 5 lanes (legacy + 4) per projection, split 3/2 between the two instances
    await waitFor(async () => {
      for (const p of PROJECTIONS) {
        const o = await owners(env.pool, p);
        if (o.size !== 5 || new Set(o.values()).size !== 2) return false;
      }
      return true;
    }, 60_000, 'lanes split over both instances');
    await publishBoth(150);
    await caughtUp();

    for (const proc of procs) {
      for (const p of PROJECTIONS) expect(await proc.metric('kaching_projector_events_applied_total', { projection: p }), `${proc.name} ${p}`).toBeGreaterThan(0);
    }
    // every lane's checkpoint covers its messages, and the lanes' messages are exactly the stream's
    const total = await streamMessages(nc, env.names);
    let inLanes = 0;
    for (const lane of lanesFor(4)) inLanes += await laneCount(nc, env.names, lane);
    expect(inLanes).toBe(total);
    for (const p of PROJECTIONS) {
      const cps = await env.pool.query<{ lane: string; last_seq: string }>('select lane, last_seq from consumer_checkpoint where consumer = $1', [p]);
      expect(cps.rows.map((r) => r.lane).sort()).toEqual(['4.0', '4.1', '4.2', '4.3', 'legacy']);
      for (const r of cps.rows) {
        const lane = lanesFor(4).find((l) => l.id === r.lane)!;
        expect(await laneCount(nc, env.names, lane, Number(r.last_seq)), `${p} ${r.lane}`).toBe(0);
      }
    }
    expect(await verifyProjections(env.pool)).toEqual([]);
    await expectSameTables();
  });

  it('after one instance is SIGKILLed the other takes all lanes, and nothing is lost or counted twice', async () => {
    const victim = procs[1]!;
    await victim.kill();
    await publishBoth(100);
    const survivor = procs[0]!.child!.pid!;
    await waitFor(async () => {
      for (const p of PROJECTIONS) {
        const o = await owners(env.pool, p);
        if (o.size !== 5 || [...o.values()].some((x) => pidOf(x) !== survivor)) return false;
      }
      return true;
    }, 60_000, 'the survivor owning every lane');
    await caughtUp();
    expect(await verifyProjections(env.pool)).toEqual([]);
    await expectSameTables();
  });
});
