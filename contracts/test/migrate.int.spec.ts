import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '@kaching/contracts';
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
});
