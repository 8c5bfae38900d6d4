import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, replay, replayLockKey, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { expectedWinners, makeStream, seedDeployment, tableSnapshot, waitCaughtUp } from './helpers.js';

const TABLES: Record<string, [string, string][]> = {
  raw: [['job', 'deployment_id, correlation_id'], ['usage_sample', 'deployment_id, correlation_id']],
  rollups: [
    ['usage_rollup_hourly', 'deployment_id, bucket_start, agent_type'],
    ['usage_rollup_daily', 'deployment_id, day'],
    ['usage_rollup_model_daily', 'deployment_id, day, provider, model_name, agent_type'],
    ['projector_rollup_job', 'deployment_id, correlation_id'],
    ['projector_rollup_member', 'deployment_id, day, kind, member_id'],
  ],
  concurrency: [['concurrency_minute', 'deployment_id, minute'], ['projector_concurrency_job', 'deployment_id, correlation_id']],
};

describe('replay rebuilds each projection into shadow tables and swaps while reads continue', () => {
  let env: IsolatedEnv;
  let handle: ProjectorHandle;
  let lastSeq = 0;
  let ids: { orgId: string; deploymentId: string };

  beforeAll(async () => {
    env = await isolatedEnv();
    ids = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await publishMessages(jetstream(nc), makeStream(env.names, { ...ids, jobs: 1500, seed: 5 }));
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 300 });
    lastSeq = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, lastSeq);
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  for (const projection of ['raw', 'rollups', 'concurrency'] as const) {
    it(`replay ${projection} yields identical tables, readers never fail, the live consumer carries on`, async () => {
      const before: string[] = [];
      for (const [t, o] of TABLES[projection]!) before.push(await tableSnapshot(env.pool, t, o));
      let reads = 0;
      let readErrors = 0;
      let stop = false;
      const reader = (async () => {
        while (!stop) {
          for (const [t] of TABLES[projection]!) {
            await env.pool.query(`select count(*) from ${t}`).then(() => reads++, () => readErrors++);
          }
        }
      })();
      const progress: number[] = [];
      const phases = new Set<string>();
      const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, projection, {
        batchSize: 400,
        onProgress: (p) => {
          progress.push(p.seq);
          phases.add(p.phase);
        },
      });
      stop = true;
      await reader;
      expect(r.lastSeq).toBe(lastSeq);
      expect(r.swap).toBe('rename');
      expect(progress.length).toBeGreaterThan(0);
      expect(phases.has('build')).toBe(true);
      // the reported phases account for the whole run (each measured from where the previous ended)
      const { load, build, catchUp, swap } = r.phases;
      expect(load).toBeGreaterThan(0);
      expect(build).toBeGreaterThan(0);
      expect(load + build + catchUp + swap).toBeCloseTo(r.seconds, 1);
      expect(reads).toBeGreaterThan(0);
      expect(readErrors).toBe(0);
      const after: string[] = [];
      for (const [t, o] of TABLES[projection]!) after.push(await tableSnapshot(env.pool, t, o));
      expect(after).toEqual(before);
      const shadow = await env.pool.query(`select count(*)::int as c from pg_tables where schemaname = current_schema() and (tablename like '%\\_\\_shadow%' or tablename like '%\\_\\_old%')`);
      expect(shadow.rows[0].c).toBe(0);
    });
  }

  it('after the swaps the live consumers continue on the new tables and verify finds nothing', async () => {
    const nc = await env.nats();
    await publishMessages(jetstream(nc), makeStream(env.names, { ...ids, jobs: 300, seed: 6 }));
    const last = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last);
    expect(await verifyProjections(env.pool)).toEqual([]);
    // partitions of the swapped usage_sample keep the live naming, so ensure_usage_partitions keeps working
    const parts = await env.pool.query(`select count(*)::int as c from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'usage_sample'::regclass and c.relname !~ '^usage_sample_[0-9]{8}$'`);
    expect(parts.rows[0].c).toBe(0);
  });

  it('events appended while a replay runs (bulk load, then catch-up) are all in the swapped tables', async () => {
    const nc = await env.nats();
    const js = jetstream(nc);
    const before = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    const extra = makeStream(env.names, { ...ids, jobs: 1200, seed: 8 });
    // Published in small slices for longer than the replay takes, so the live consumer gets ahead of the shadow.
    const publishing = (async () => {
      for (let i = 0; i < extra.length; i += 60) {
        await publishMessages(js, extra.slice(i, i + 60));
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, 'raw', { batchSize: 200 });
    await publishing;
    const last = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    expect(r.lastSeq).toBeGreaterThan(before);
    await waitCaughtUp(env.pool, last);
    const jobs = await env.pool.query<{ c: number }>(`select count(*)::int as c from job where revision <> ''`);
    const samples = await env.pool.query<{ c: number }>(`select count(distinct correlation_id)::int as c from usage_sample`);
    expect(jobs.rows[0]!.c).toBe(samples.rows[0]!.c);
    const extraWinners = expectedWinners(extra);
    const stored = await env.pool.query<{ correlation_id: string; revision: string }>(
      'select correlation_id, revision from job where correlation_id = any($1)', [[...extraWinners.keys()]]);
    expect(new Map(stored.rows.map((x) => [x.correlation_id, x.revision]))).toEqual(new Map([...extraWinners].map(([k, v]) => [k, v.revision])));
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a second replay of the same projection is refused while one runs (CONFLICT), and runs once it ended', async () => {
    // Holds the lock a running replay of rollups holds, from another session.
    const holder = await env.pool.connect();
    const cfg = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' as const };
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [replayLockKey(env.namespace, 'rollups')]);
      await expect(replay(cfg, 'rollups')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('already running') });
      // another projection is not blocked
      expect((await replay(cfg, 'concurrency')).swap).toBe('rename');
    } finally {
      await holder.query('select pg_advisory_unlock_all()');
      holder.release();
    }
    expect((await replay(cfg, 'rollups')).swap).toBe('rename');
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('replay --from-seq rebuilds from that point only', async () => {
    const nc = await env.nats();
    const last = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, 'rollups', { fromSeq: last - 99 });
    expect(r.events).toBe(100);
    expect(r.lastSeq).toBe(last);
    const jobs = await env.pool.query<{ c: string }>('select coalesce(sum(jobs), 0) as c from usage_rollup_daily');
    expect(Number(jobs.rows[0]!.c)).toBeLessThanOrEqual(100);
    // restore the full projection for anyone reading after us
    await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, 'rollups');
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('replay --since rebuilds from the first message stored at or after that time', async () => {
    const nc = await env.nats();
    const before = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    await new Promise((r) => setTimeout(r, 1100));
    const since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    await publishMessages(jetstream(nc), makeStream(env.names, { ...ids, jobs: 40, seed: 12 }));
    const last = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    await waitCaughtUp(env.pool, last);
    const cfg = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' as const };
    const r = await replay(cfg, 'concurrency', { since });
    expect(r.events).toBe(last - before);
    expect(r.lastSeq).toBe(last);
    const jobs = await env.pool.query<{ c: number }>('select count(*)::int as c from projector_concurrency_job');
    expect(jobs.rows[0]!.c).toBeLessThanOrEqual(40);
    expect(jobs.rows[0]!.c).toBeGreaterThan(0);
    // restore the full projection for anyone reading after us
    await replay(cfg, 'concurrency');
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a table other code built a view on is swapped by copy in one transaction (the view keeps working)', async () => {
    await env.pool.query('create view test_hourly_view as select deployment_id, sum(jobs) as jobs from usage_rollup_hourly group by 1');
    const before = await tableSnapshot(env.pool, 'usage_rollup_hourly', 'deployment_id, bucket_start, agent_type');
    const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, 'rollups');
    expect(r.swap).toBe('copy');
    expect(await tableSnapshot(env.pool, 'usage_rollup_hourly', 'deployment_id, bucket_start, agent_type')).toBe(before);
    const v = await env.pool.query('select sum(jobs)::int as j from test_hourly_view');
    expect(v.rows[0].j).toBeGreaterThan(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
    await env.pool.query('drop view test_hourly_view');
  });

  it('a full replay is refused when the stream lost messages the live tables count (REPLAY_HISTORY_GAP), unless accepted', async () => {
    const cfg = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' as const };
    const nc = await env.nats();
    const jsm = await jetstreamManager(nc);
    // what max_age or a purge does to the head of the stream
    await jsm.streams.purge(env.names.eventsStream, { seq: 101 });
    const before = await tableSnapshot(env.pool, 'usage_rollup_daily', 'deployment_id, day');
    await expect(replay(cfg, 'rollups')).rejects.toMatchObject({ code: 'REPLAY_HISTORY_GAP', message: expect.stringMatching(/starts at seq 101: messages 1\.\.100/) });
    expect(await tableSnapshot(env.pool, 'usage_rollup_daily', 'deployment_id, day')).toBe(before);
    // the operator may accept it: the rebuilt tables then hold only what the stream still has
    const r = await replay(cfg, 'raw', { acceptHistoryLoss: true });
    expect(r.events).toBe(lastSeq - 100 + (r.lastSeq - lastSeq));
  });
});
