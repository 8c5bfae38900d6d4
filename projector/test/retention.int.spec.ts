import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, maintainPartitions, processBatch } from '@kaching/projector';
import { parseRetentionMonths } from '../src/maintenance.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { makeStream, seedDeployment } from './helpers.js';

/** Retention: raw samples with their jobs after PROJECTOR_RETENTION_DAYS, rollups after PROJECTOR_ROLLUP_RETENTION. */
describe('retention of projections', () => {
  let env: IsolatedEnv;
  // a pinned "now": the test means the same at any hour
  const NOW = Date.parse('2026-12-04T10:00:00Z');
  const count = async (t: string, where: string) => Number((await env.pool.query(`select count(*)::int as n from ${t} where ${where}`)).rows[0].n);

  beforeAll(async () => {
    env = await isolatedEnv();
    const ids = await seedDeployment(env.pool);
    // jobs 30 months ago, 8 months ago and 2 days ago, through every projection
    let seq = 0;
    for (const [i, base] of ['2024-06-10T08:00:00Z', '2026-04-10T08:00:00Z', '2026-12-02T08:00:00Z'].entries()) {
      await env.pool.query('select ensure_usage_partitions($1::date, 3)', [new Date(Date.parse(base) - 86_400_000).toISOString().slice(0, 10)]);
      const msgs = makeStream(env.names, { ...ids, jobs: 40, seed: 7 + i, base: new Date(base), spanHours: 3, runningRate: 0, dupRate: 0 });
      const decoded = msgs.map((m) => decodeMessage(m.data, undefined, ++seq));
      const seqs = decoded.map((_, k) => seq - decoded.length + k + 1);
      for (const p of ['raw', 'rollups', 'concurrency'] as const) await processBatch(env.pool, p, decoded, seqs, { checkpointKey: `retention_${p}`, seqExists: async () => true });
    }
  });

  afterAll(async () => {
    await env?.cleanup();
  });

  it('drops raw partitions (once archived) and their jobs past 30 days, rollups and the concurrency index past 24 months; keeps the rest', async () => {
    const before = {
      daily: await count('usage_rollup_daily', "day >= '2026-01-01'"),
      hourly: await count('usage_rollup_hourly', "bucket_start >= '2026-01-01'"),
      minute: await count('concurrency_minute', "minute >= '2026-01-01'"),
      jobs: await count('job', "started_at >= '2026-12-01'"),
    };
    expect(await count('usage_rollup_daily', "day < '2024-12-01'")).toBeGreaterThan(0);
    // nothing archived yet: the raw partitions past retention are the last copy and stay
    const unarchived = await maintainPartitions(env.pool, { retentionDays: 30, partitionsAhead: 1, now: NOW });
    expect(unarchived.dropped).not.toContain('usage_sample_20240610'); // (empty ones go)
    expect(unarchived.kept).toEqual(expect.arrayContaining(['usage_sample_20240610', 'usage_sample_20260410']));
    expect(await count('job', "started_at < '2026-11-01'")).toBe(80);
    // the archive covers every sequence now
    await env.pool.query('insert into archive_state (id, archived_through) values (true, 1000000) on conflict (id) do update set archived_through = excluded.archived_through');
    const r = await maintainPartitions(env.pool, { retentionDays: 30, partitionsAhead: 1, rollupRetentionMonths: 24, now: NOW });
    expect(r.dropped).toEqual(expect.arrayContaining(['usage_sample_20240610', 'usage_sample_20260410']));
    expect(r.pruned.job).toBe(80);
    for (const [t, where] of [
      ['usage_rollup_daily', "day < '2024-12-04'"],
      ['usage_rollup_hourly', "bucket_start < '2024-12-04'"],
      ['usage_rollup_model_daily', "day < '2024-12-04'"],
      ['projector_rollup_job', "day < '2024-12-04'"],
      ['concurrency_minute', "minute < '2024-12-04'"],
      ['projector_concurrency_job', "to_minute < '2024-12-04'"],
      ['usage_sample', "started_at < '2026-11-01'"],
      ['job', "started_at < '2026-11-01'"],
    ] as const) expect(await count(t, where), t).toBe(0);
    // 8 months old: rollups kept (raw gone); 2 days old: everything kept
    expect(await count('usage_rollup_daily', "day >= '2026-01-01'")).toBe(before.daily);
    expect(await count('usage_rollup_hourly', "bucket_start >= '2026-01-01'")).toBe(before.hourly);
    expect(await count('concurrency_minute', "minute >= '2026-01-01'")).toBe(before.minute);
    expect(await count('job', "started_at >= '2026-12-01'")).toBe(before.jobs);
    // a process running only the rollups projection prunes only its own tables
    const only = await maintainPartitions(env.pool, { retentionDays: 30, partitionsAhead: 1, rollupRetentionMonths: 1, projections: ['rollups'], now: NOW });
    expect(Object.keys(only.pruned).sort()).toEqual(['projector_rollup_job', 'projector_rollup_member', 'usage_rollup_daily', 'usage_rollup_hourly', 'usage_rollup_model_daily']);
    expect(only.dropped).toEqual([]);
  });

  it('PROJECTOR_ROLLUP_RETENTION takes months, years or days', () => {
    expect(parseRetentionMonths(undefined)).toBe(24);
    expect(parseRetentionMonths('24mo')).toBe(24);
    expect(parseRetentionMonths('2y')).toBe(24);
    expect(parseRetentionMonths('730d')).toBe(25);
    expect(parseRetentionMonths('0')).toBe(0);
    expect(() => parseRetentionMonths('two years')).toThrow(/PROJECTOR_ROLLUP_RETENTION/);
  });
});
