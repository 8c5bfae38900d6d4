import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';

describe('migrate', () => {
  let env: IsolatedEnv;
  beforeAll(async () => {
    env = await isolatedEnv({ migrate: false });
  });
  afterAll(async () => env.cleanup());

  it('started several times at the same moment leaves one correct schema', async () => {
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => migrate({ databaseUrl: env.databaseUrl, namespace: env.namespace })),
    );
    const appliers = runs.filter((r) => r.applied.length > 0);
    expect(appliers).toHaveLength(1);
    const files = appliers[0]!.applied;
    for (const r of runs) if (r !== appliers[0]) expect(r.alreadyApplied).toEqual(files);
    const { rows } = await env.pool.query<{ count: string }>('select count(*) from schema_migrations');
    expect(Number(rows[0]!.count)).toBe(files.length);
  });

  it('is idempotent: a second run applies nothing', async () => {
    const again = await migrate({ databaseUrl: env.databaseUrl, namespace: env.namespace });
    expect(again.applied).toEqual([]);
  });

  it('creates every table of the design, usage_sample partitioned by day', async () => {
    const { rows } = await env.pool.query<{ table_name: string }>(
      `select table_name from information_schema.tables where table_schema = $1`, [env.namespace]);
    const tables = new Set(rows.map((r) => r.table_name));
    for (const t of ['org', 'deployment', 'node', 'agent', 'job', 'usage_sample', 'usage_rollup_hourly',
      'usage_rollup_daily', 'concurrency_minute', 'pricing_plan', 'license', 'quota', 'budget', 'feature_flag',
      'alert', 'suggestion', 'ingest_token', 'api_key', 'agent_key', 'projection_checkpoint']) {
      expect(tables, t).toContain(t);
    }
    const part = await env.pool.query<{ partstrat: string }>(
      `select partstrat from pg_partitioned_table where partrelid = 'usage_sample'::regclass`);
    expect(part.rows[0]?.partstrat).toBe('r');
    await env.pool.query(`select ensure_usage_partitions('2026-03-01', 3)`);
    const parts = await env.pool.query(`select inhrelid::regclass::text as name from pg_inherits
      where inhparent = 'usage_sample'::regclass order by 1`);
    expect(parts.rows.map((r) => r.name)).toEqual(['usage_sample_20260301', 'usage_sample_20260302', 'usage_sample_20260303']);
  });

  it('usage_rollup_hourly is partitioned by month; ensure_hourly_partitions makes UTC months', async () => {
    const part = await env.pool.query(`select partstrat from pg_partitioned_table where partrelid = 'usage_rollup_hourly'::regclass`);
    expect(part.rows[0]?.partstrat).toBe('r');
    await env.pool.query(`set timezone = 'Pacific/Auckland'`); // the session zone must not move the bounds
    await env.pool.query(`select ensure_hourly_partitions('2025-11-30T23:00:00Z', '2026-01-01T00:00:00Z')`);
    await env.pool.query(`reset timezone`);
    const parts = await env.pool.query(`select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound from pg_inherits i
      join pg_class c on c.oid = i.inhrelid where i.inhparent = 'usage_rollup_hourly'::regclass and c.relname between 'usage_rollup_hourly_202511' and 'usage_rollup_hourly_202601' order by 1`);
    expect(parts.rows).toEqual([
      { name: 'usage_rollup_hourly_202511', bound: "FOR VALUES FROM ('2025-11-01 00:00:00+00') TO ('2025-12-01 00:00:00+00')" },
      { name: 'usage_rollup_hourly_202512', bound: "FOR VALUES FROM ('2025-12-01 00:00:00+00') TO ('2026-01-01 00:00:00+00')" },
      { name: 'usage_rollup_hourly_202601', bound: "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')" },
    ]);
  });
});

describe('migration 062 on an installation with hourly rollups', () => {
  let env: IsolatedEnv;
  let before: string;
  beforeAll(async () => {
    env = await isolatedEnv({ migrate: false });
    // the schema as it was before 062, with rows, a view over the table and a grant of an operator's own
    before = await mkdtemp(join(tmpdir(), 'kaching-mig-'));
    for (const f of await readdir(MIGRATIONS_DIR)) if (f < '062') await cp(join(MIGRATIONS_DIR, f), join(before, f));
    await migrate({ databaseUrl: env.databaseUrl, namespace: env.namespace, dir: before });
  });
  afterAll(async () => {
    await rm(before, { recursive: true, force: true });
    await env.cleanup();
  });

  it('converts the table to monthly partitions with its rows, keys, foreign keys, RLS, grants and views intact', async () => {
    const q = (sql: string, p: unknown[] = []) => env.pool.query(sql, p);
    const org = '00000000-0000-4000-8000-000000000001';
    const dep = '00000000-0000-4000-8000-000000000002';
    await q(`insert into org (org_id, name) values ($1, 'o')`, [org]);
    await q(`insert into deployment (deployment_id, org_id, name) values ($1, $2, 'd')`, [dep, org]);
    expect((await q(`select count(*)::int as n from pg_partitioned_table where partrelid = 'usage_rollup_hourly'::regclass`)).rows[0].n).toBe(0);
    await q(`insert into usage_rollup_hourly (deployment_id, bucket_start, agent_type, org_id, jobs, cpu_seconds, cost_micro_usd)
      select $1, t, 'coder', $2, 1, 1.5, 7 from generate_series('2024-01-31T22:00:00Z'::timestamptz, '2024-03-01T01:00:00Z', interval '1 hour') t`, [dep, org]);
    const snapshot = async () => (await q(`select deployment_id, bucket_start, agent_type, org_id, jobs, cpu_seconds::text, cost_micro_usd::text
      from usage_rollup_hourly order by bucket_start`)).rows;
    const rows = await snapshot();
    expect(rows.length).toBe(29 * 24 + 4);
    await q(`create view hourly_jobs as select deployment_id, sum(jobs) as jobs from usage_rollup_hourly group by 1`);
    await q(`do $$ begin create role kaching_test_auditor nologin; exception when duplicate_object then null; end $$`);
    await q(`grant select on usage_rollup_hourly, hourly_jobs to kaching_test_auditor`);

    const r = await migrate({ databaseUrl: env.databaseUrl, namespace: env.namespace });
    expect(r.applied).toContain('062_hourly_partitions.sql');
    expect(await snapshot()).toEqual(rows);
    expect((await q(`select partstrat from pg_partitioned_table where partrelid = 'usage_rollup_hourly'::regclass`)).rows[0]?.partstrat).toBe('r');
    const parts = (await q(`select c.relname as name, (select count(*)::int from usage_rollup_hourly h where h.tableoid = c.oid) as n
      from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'usage_rollup_hourly'::regclass and c.relname like '%_2024%' order by 1`)).rows;
    expect(parts).toEqual([{ name: 'usage_rollup_hourly_202401', n: 2 }, { name: 'usage_rollup_hourly_202402', n: 29 * 24 }, { name: 'usage_rollup_hourly_202403', n: 2 }]);
    // last, this and next month exist for the writers
    const now = new Date();
    for (const k of [-1, 0, 1]) {
      const m = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + k, 1)).toISOString().slice(0, 7).replace('-', '');
      expect((await q(`select to_regclass($1) is not null as ok`, [`usage_rollup_hourly_${m}`])).rows[0].ok, m).toBe(true);
    }
    const cons = (await q(`select contype, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = 'usage_rollup_hourly'::regclass order by 1, 2`)).rows;
    expect(cons).toEqual([
      { contype: 'f', def: 'FOREIGN KEY (deployment_id) REFERENCES deployment(deployment_id)' },
      { contype: 'f', def: 'FOREIGN KEY (org_id) REFERENCES org(org_id)' },
      { contype: 'p', def: 'PRIMARY KEY (deployment_id, bucket_start, agent_type)' },
    ]);
    const idx = (await q(`select indexrelid::regclass::text as name from pg_index where indrelid = 'usage_rollup_hourly'::regclass order by 1`)).rows.map((x) => x.name);
    expect(idx).toEqual(['usage_rollup_hourly_brin', 'usage_rollup_hourly_org_idx', 'usage_rollup_hourly_pkey']);
    const grants = (await q(`select grantee, string_agg(privilege_type, ',' order by privilege_type) as p from information_schema.role_table_grants
      where table_schema = current_schema() and table_name = 'usage_rollup_hourly' and grantee like 'kaching_%' group by 1 order by 1`)).rows;
    expect(grants).toEqual([{ grantee: 'kaching_org_reader', p: 'DELETE,INSERT,SELECT,UPDATE' }, { grantee: 'kaching_test_auditor', p: 'SELECT' }]);
    expect((await q(`select jobs::int from hourly_jobs`)).rows).toEqual([{ jobs: 29 * 24 + 4 }]);
    expect((await q(`select has_table_privilege('kaching_test_auditor', 'hourly_jobs', 'select') as ok`)).rows[0].ok).toBe(true);
    // RLS: the org reader sees its own rows only
    const seen = async (o: string) => {
      const c = await env.pool.connect();
      try {
        await c.query('begin; set local role kaching_org_reader');
        await c.query(`select set_config('kaching.org_id', $1, true)`, [o]);
        return (await c.query('select count(*)::int as n from usage_rollup_hourly')).rows[0].n;
      } finally {
        await c.query('rollback');
        c.release();
      }
    };
    expect(await seen(org)).toBe(29 * 24 + 4);
    expect(await seen('00000000-0000-4000-8000-0000000000ff')).toBe(0);
    // the foreign keys hold
    await expect(q(`insert into usage_rollup_hourly (deployment_id, bucket_start, agent_type, org_id) values ($1, '2024-02-02', 'x', $2)`,
      ['00000000-0000-4000-8000-0000000000ee', org])).rejects.toThrow(/foreign key/);
  });
});
