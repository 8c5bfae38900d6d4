import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream } from '@kaching/contracts';
import { decodeMessage, loadConfig, maintainPartitions, processBatch, replay, start, verifyProjections, type ProjectorHandle } from '@kaching/projector';
import { HourlyPartitionCache } from '../src/db/partitions.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { makeStream, seedDeployment, tableSnapshot, waitCaughtUp } from './helpers.js';

const HOURLY_ORDER = 'deployment_id, bucket_start, agent_type';

/** usage_rollup_hourly range-partitioned by UTC month of bucket_start (issue 15 item 7). */
describe('hourly rollups in monthly partitions', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let handle: ProjectorHandle;
  let ids: { orgId: string; deploymentId: string };
  let seed = 100;

  /** Rows per partition of the hourly table, with the months their buckets fall in. */
  const partitions = async () =>
    (await env.pool.query<{ name: string; rows: number; months: string[] }>(
      `select c.relname as name, count(h.*)::int as rows,
         coalesce(array_agg(distinct to_char(h.bucket_start at time zone 'UTC', 'YYYYMM')) filter (where h.bucket_start is not null), '{}') as months
       from pg_inherits i join pg_class c on c.oid = i.inhrelid left join usage_rollup_hourly h on h.tableoid = c.oid
       where i.inhparent = 'usage_rollup_hourly'::regclass group by 1 order by 1`,
    )).rows;
  const lastSeq = async () => (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
  const publish = async (base: string, jobs = 60) => {
    await publishMessages(js, makeStream(env.names, { ...ids, jobs, seed: seed++, base: new Date(base), spanHours: 3 }));
    await waitCaughtUp(env.pool, await lastSeq());
  };

  beforeAll(async () => {
    env = await isolatedEnv();
    ids = await seedDeployment(env.pool);
    nc = await env.nats();
    js = jetstream(nc);
    await ensureEventsStream(nc, env.names);
    handle = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', batchSize: 200, rollupRetentionMonths: 0 }); // retention runs only with the pinned clock below
    // three months (September twice: early and late), none of which the migration created
    for (const base of ['2026-08-20T08:00:00Z', '2026-09-05T08:00:00Z', '2026-09-20T08:00:00Z', '2026-10-20T08:00:00Z']) await publish(base);
  });

  afterAll(async () => {
    await handle?.close();
    await env?.cleanup();
  });

  it('the live table is range-partitioned by bucket_start', async () => {
    const r = await env.pool.query(`select pg_get_partkeydef('usage_rollup_hourly'::regclass) as key, p.partstrat
      from pg_partitioned_table p where p.partrelid = 'usage_rollup_hourly'::regclass`);
    expect(r.rows).toEqual([{ key: 'RANGE (bucket_start)', partstrat: 'r' }]);
  });

  it('events spanning three months land in their three monthly partitions, and the rollups stay right', async () => {
    const parts = await partitions();
    for (const m of ['202608', '202609', '202610']) {
      const p = parts.find((x) => x.name === `usage_rollup_hourly_${m}`);
      expect(p?.rows, m).toBeGreaterThan(0);
      expect(p?.months, m).toEqual([m]); // only its own month's buckets
    }
    const total = Number((await env.pool.query('select count(*) from usage_rollup_hourly')).rows[0].count);
    expect(parts.reduce((n, p) => n + p.rows, 0)).toBe(total);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a replay of rollups keeps the table partitioned by month, equal to live, and the live consumer writes new months after it', async () => {
    const before = await tableSnapshot(env.pool, 'usage_rollup_hourly', HOURLY_ORDER);
    const names = (await partitions()).map((p) => p.name);
    const r = await replay({ databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' }, 'rollups', { batchSize: 150, history: null });
    expect(r.swap).toBe('rename');
    expect(await tableSnapshot(env.pool, 'usage_rollup_hourly', HOURLY_ORDER)).toBe(before);
    const key = await env.pool.query(`select pg_get_partkeydef('usage_rollup_hourly'::regclass) as key`);
    expect(key.rows[0].key).toBe('RANGE (bucket_start)');
    // the children carry the live names, and every month the live table had is still there
    const after = await partitions();
    expect(after.map((p) => p.name)).toEqual(expect.arrayContaining(names));
    for (const p of after) expect(p.name).toMatch(/^usage_rollup_hourly_\d{6}$/);
    expect((await env.pool.query(`select count(*)::int as n from pg_class where relkind in ('r', 'p') and (relname like 'usage_rollup_hourly%shadow%' or relname like '%\\_\\_old')`)).rows[0].n).toBe(0);
    // foreign keys and the org policy came along
    const cons = await env.pool.query(`select contype, convalidated from pg_constraint where conrelid = 'usage_rollup_hourly'::regclass order by 1`);
    expect(cons.rows).toEqual([{ contype: 'f', convalidated: true }, { contype: 'f', convalidated: true }, { contype: 'p', convalidated: true }]);
    const pol = await env.pool.query(`select policyname from pg_policies where tablename = 'usage_rollup_hourly'`);
    expect(pol.rows).toEqual([{ policyname: 'org_isolation' }]);
    // a month no partition existed for, after the swap
    await publish('2026-07-10T08:00:00Z');
    expect((await partitions()).find((p) => p.name === 'usage_rollup_hourly_202607')?.rows).toBeGreaterThan(0);
    expect(await verifyProjections(env.pool)).toEqual([]);
  });

  it('a month the partition cache wrongly believes in does not fail a batch: the merge creates it', async () => {
    const other = await seedDeployment(env.pool);
    const cache = new HourlyPartitionCache('usage_rollup_hourly');
    await cache.ensure(env.pool, ['2019-05']);
    await env.pool.query('drop table usage_rollup_hourly_201905'); // as retention (or another process) would
    const msgs = makeStream(env.names, { ...other, jobs: 30, seed: 7, base: new Date('2019-05-10T08:00:00Z'), spanHours: 3, runningRate: 0 });
    const decoded = msgs.map((m, i) => decodeMessage(m.data, undefined, i + 1));
    await processBatch(env.pool, 'rollups', decoded, decoded.map((_, i) => i + 1), { checkpointKey: 'hourly_parts_test', hourlyPartitions: cache, seqExists: async () => true });
    expect((await partitions()).find((p) => p.name === 'usage_rollup_hourly_201905')?.rows).toBeGreaterThan(0);
  });

  it('retention drops the months entirely past the cutoff, deletes only within the boundary month, and keeps this and next month ready', async () => {
    const NOW = Date.parse('2026-10-20T10:00:00Z'); // cutoff 1 month back: 2026-09-20T00:00Z
    const count = async (where: string) => Number((await env.pool.query(`select count(*)::int as n from usage_rollup_hourly where ${where}`)).rows[0].n);
    const before = { old: await count(`bucket_start < '2026-09-20'`), kept: await count(`bucket_start >= '2026-09-20'`) };
    expect(await count(`bucket_start >= '2026-09-01' and bucket_start < '2026-09-20'`)).toBeGreaterThan(0);
    await env.pool.query('drop table if exists usage_rollup_hourly_202611');
    const r = await maintainPartitions(env.pool, { retentionDays: 0, partitionsAhead: 1, rollupRetentionMonths: 1, projections: ['rollups'], now: NOW });
    expect(r.droppedHourly.sort()).toEqual(['usage_rollup_hourly_201905', 'usage_rollup_hourly_202607', 'usage_rollup_hourly_202608']);
    expect(r.pruned.usage_rollup_hourly).toBe(before.old);
    expect(await count(`bucket_start < '2026-09-20'`)).toBe(0);
    expect(await count(`bucket_start >= '2026-09-20'`)).toBe(before.kept);
    const names = (await partitions()).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['usage_rollup_hourly_202609', 'usage_rollup_hourly_202610', 'usage_rollup_hourly_202611']));
    expect(names).not.toContain('usage_rollup_hourly_202608');
    expect(r.dropped).toEqual([]); // usage_sample partitions are not the rollups' business
  });
});
