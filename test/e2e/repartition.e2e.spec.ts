import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  commands as contractCommands, createLogger, currentPartitioning, decodeStreamRecord, ensureEventsStream, PROJECTIONS, type CommandContext,
} from '@kaching/contracts';
import { verifyProjections } from '@kaching/projector';
import { Appender } from '../../ingest/src/pipeline/appender.js';
import { IngestPartitioning } from '../../ingest/src/pipeline/partitioning.js';
import { generateMessages, type GeneratedMessage } from '../../projector/src/bench/generate.js';
import { expectedWinners } from '../../projector/test/helpers.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { ServiceProcess } from '../support/instances.js';
import {
  deploymentsCovering, laneCount, lanesCaughtUp, lanesFor, PROJECTION_TABLES, seedDeployments, streamMessages, tableDigest, waitFor,
} from './scale-support.js';

const CONSUMERS = [...PROJECTIONS, 'enforcer'];

/**
 * Re-partitioning online (issue 16): 1 -> 4 -> 2 partitions while ingest appends (its real partitioning
 * code: count from Postgres, registered as an ingest instance), two projector processes and an enforcer
 * process consume. Every count stays exact, old lanes drain and retire, and re-reading whole lanes
 * (as a takeover or a crash does) changes no table of any consumer.
 */
describe('kaching partitions set: 1 -> 4 -> 2 while events flow', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let partitioning: IngestPartitioning;
  let appender: Appender;
  let procs: ServiceProcess[] = [];
  const orgId = randomUUID();
  const deployments = deploymentsCovering(4, 2);
  const published: GeneratedMessage[] = [];
  let sending = true;
  let sender: Promise<void> = Promise.resolve();
  const childEnv = () => ({ ...env.env, KACHING_PARTITIONS: '1', KACHING_LEASE_MS: '2000', PROJECTOR_BATCH_SIZE: '100', ENFORCER_BATCH: '100' });
  const startAll = async () => {
    procs = [new ServiceProcess('projector', childEnv(), 'projector-a'), new ServiceProcess('projector', childEnv(), 'projector-b'), new ServiceProcess('enforcer', childEnv(), 'enforcer')];
    await Promise.all(procs.map((p) => p.start()));
  };
  const ctx = (args: CommandContext['args']): CommandContext => ({
    args, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
    config: { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'error' },
  });
  const setCount = (count: number) => contractCommands.find((c) => c.name === 'partitions set')!.run(ctx({ count: String(count) }));
  const retired = async () => {
    const r = await env.pool.query<{ consumer: string; lane: string }>('select consumer, lane from consumer_checkpoint where retired_at is not null order by 1, 2');
    return r.rows.map((x) => `${x.consumer}/${x.lane}`);
  };

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await seedDeployments(env.pool, orgId, deployments);
    await currentPartitioning(env.pool, 1);
    const log = createLogger('ingest-test', 'warn');
    partitioning = new IngestPartitioning(env.pool, { initial: 1, leaseMs: 2000, retryAfterS: 1, log });
    await partitioning.start();
    appender = new Appender(nc, env.names, 10_000, 1, partitioning);
    await startAll();
  });

  afterAll(async () => {
    sending = false;
    await sender.catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop()));
    appender?.close();
    await partitioning?.close();
    await env?.cleanup();
  });

  it('every count is exact, old lanes drain and retire, and re-reading whole lanes changes nothing', async () => {
    let round = 0;
    sender = (async () => {
      while (sending) {
        round++;
        for (const [i, deploymentId] of deployments.entries()) {
          // subjects do not matter here: the appender picks them from the partition count in force
          const msgs = generateMessages(env.names, { orgId, deploymentId, jobs: 10, seed: round * 1000 + i, base: new Date('2026-11-20T00:00:00Z') });
          await Promise.all(msgs.map((m) => appender.append(decodeStreamRecord(m.data), deploymentId, m.msgId)));
          published.push(...msgs);
        }
        // a steady trickle, not a flood: the waits for lanes to retire would otherwise pile up a backlog
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const sentAtLeast = (n: number) => waitFor(async () => published.length >= n, 60_000, `${n} events sent`);

    await sentAtLeast(400);
    expect((await setCount(4)).data).toMatchObject({ changed: true, from: 1, partitions: 4 });
    // the old count's lane drains and retires for every consumer once ingest has moved on
    await waitFor(async () => (await retired()).length === CONSUMERS.length, 60_000, 'lane 1.0 retired everywhere');
    expect(await retired()).toEqual(CONSUMERS.map((c) => `${c}/1.0`).sort());
    await sentAtLeast(published.length + 400);
    expect((await setCount(2)).data).toMatchObject({ changed: true, from: 4, partitions: 2 });
    await waitFor(async () => (await retired()).length === CONSUMERS.length * 5, 60_000, 'lanes 4.x retired everywhere');
    await sentAtLeast(published.length + 400);
    sending = false;
    await sender;

    await waitFor(() => lanesCaughtUp(env.pool, nc, env.names, CONSUMERS), 120_000, 'every lane caught up');
    // the stream's events are all in lanes 1.0, 4.x and 2.x, and each count was really used
    let inLanes = 0;
    for (const lane of lanesFor(1, 4, 2)) {
      const n = await laneCount(nc, env.names, lane);
      if (lane.count !== null) expect(n, lane.id).toBeGreaterThan(0);
      inLanes += n;
    }
    expect(inLanes).toBe(await streamMessages(nc, env.names));

    const exact = async () => {
      const winners = expectedWinners(published);
      const bytes = [...winners.values()].reduce((s, w) => s + BigInt(w.contextBytesRead), 0n);
      const raw = await env.pool.query<{ n: string; bytes: string }>('select count(*)::text as n, sum(context_bytes_read)::text as bytes from usage_sample');
      expect(Number(raw.rows[0]!.n)).toBe(winners.size);
      expect(BigInt(raw.rows[0]!.bytes)).toBe(bytes);
      const enf = await env.pool.query<{ metric: string; v: string }>(`select metric, sum(value)::text as v from enforcer_usage_daily where metric in ('jobs', 'context_bytes_read') group by metric`);
      expect(Object.fromEntries(enf.rows.map((r) => [r.metric, r.v]))).toEqual({ jobs: String(winners.size), context_bytes_read: String(bytes) });
      expect(await verifyProjections(env.pool)).toEqual([]);
    };
    await exact();

    // re-reading: every consumer reads every lane again from the start (as after a lost checkpoint or a
    // takeover that re-reads); revision-idempotent consumers change nothing
    const digests = async () => {
      const out: Record<string, string> = {};
      for (const t of [...PROJECTION_TABLES, 'enforcer_usage_daily', 'enforcer_contribution', 'enforcer_decision']) out[t] = await tableDigest(env.pool, t);
      return out;
    };
    const before = await digests();
    await Promise.all(procs.map((p) => p.stop()));
    await env.pool.query('update consumer_checkpoint set last_seq = 0, retired_at = null');
    await startAll();
    await waitFor(async () => (await retired()).length === CONSUMERS.length * 5 && (await lanesCaughtUp(env.pool, nc, env.names, CONSUMERS)), 120_000, 'every lane re-read and old lanes retired again');
    expect(await digests()).toEqual(before);
    await exact();
  });
});
