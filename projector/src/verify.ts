import type pg from 'pg';

export interface ProjectionDifference {
  table: 'usage_rollup_hourly' | 'usage_rollup_daily' | 'usage_rollup_model_daily' | 'concurrency_minute' | 'job';
  key: Record<string, unknown>;
  expected: Record<string, unknown> | null;
  actual: Record<string, unknown> | null;
}

const SUMS = ['cpu_seconds', 'gpu_seconds', 'disk_io_mb', 'net_in_mb', 'net_out_mb', 'context_reads', 'context_writes',
  'context_bytes_read', 'context_bytes_written', 'model_tokens_in', 'model_tokens_out', 'cost_micro_usd'];
const COUNTS = ['jobs', 'jobs_succeeded', 'jobs_failed'];

/** Compare two sides column by column, a missing row counting as all zeros. */
function distinct(cols: string[]): string {
  return `(${cols.map((c) => `coalesce(e.${c}, 0)`).join(', ')}) is distinct from (${cols.map((c) => `coalesce(a.${c}, 0)`).join(', ')})`;
}

/**
 * Recomputes rollups (from usage_sample) and the concurrency index (from job) in SQL and returns every
 * row where the projections differ. `since` limits the check to buckets from that instant (raw samples
 * older than the retention are gone while rollups keep them).
 */
export async function verifyProjections(pool: pg.Pool, opts: { since?: string } = {}): Promise<ProjectionDifference[]> {
  const since = opts.since ?? '-infinity';
  const client = await pool.connect();
  const diffs: ProjectionDifference[] = [];
  try {
    // repeatable read: all comparisons see one snapshot even while projectors keep writing
    await client.query('begin isolation level repeatable read');
    const sums = SUMS.map((c) => `sum(${c}) as ${c}`).join(', ');
    const counts = `count(*) as jobs, count(*) filter (where status = 'succeeded') as jobs_succeeded,
      count(*) filter (where status = 'failed') as jobs_failed`;
    const hourly = await client.query(`with e as (
        select deployment_id, date_trunc('hour', coalesce(ended_at, started_at), 'UTC') as bucket_start, agent_type,
          ${sums}, max(ram_mb_peak) as ram_mb_peak, ${counts}
        from usage_sample group by 1, 2, 3),
      a as (select * from usage_rollup_hourly)
      select coalesce(e.deployment_id, a.deployment_id) as deployment_id, coalesce(e.bucket_start, a.bucket_start) as bucket_start,
        coalesce(e.agent_type, a.agent_type) as agent_type, to_jsonb(e) as expected, to_jsonb(a) as actual
      from e full join a on a.deployment_id = e.deployment_id and a.bucket_start = e.bucket_start and a.agent_type = e.agent_type
      where coalesce(e.bucket_start, a.bucket_start) >= $1::timestamptz and ${distinct([...SUMS, 'ram_mb_peak', ...COUNTS])}`, [since]);
    for (const r of hourly.rows) {
      diffs.push({ table: 'usage_rollup_hourly', key: { deployment_id: r.deployment_id, bucket_start: r.bucket_start, agent_type: r.agent_type }, expected: r.expected, actual: r.actual });
    }
    await client.query(`create temp table v_conc on commit drop as
      select deployment_id, m as minute, count(*)::int as jobs_running
      from job j, generate_series(date_trunc('minute', j.started_at, 'UTC'),
        date_trunc('minute', projector_job_end(j.started_at, j.ended_at, j.status, j.last_heartbeat_at), 'UTC'), interval '1 minute') m
      group by 1, 2`);
    const conc = await client.query(`select coalesce(e.deployment_id, a.deployment_id) as deployment_id,
        coalesce(e.minute, a.minute) as minute, e.jobs_running as expected, a.jobs_running as actual
      from v_conc e full join concurrency_minute a on a.deployment_id = e.deployment_id and a.minute = e.minute
      where coalesce(e.minute, a.minute) >= $1::timestamptz and coalesce(e.jobs_running, 0) <> coalesce(a.jobs_running, 0)`, [since]);
    for (const r of conc.rows) {
      diffs.push({ table: 'concurrency_minute', key: { deployment_id: r.deployment_id, minute: r.minute }, expected: { jobs_running: r.expected }, actual: { jobs_running: r.actual } });
    }
    // days are the deployment's local days of the attribution instant (050_local_day.sql)
    const daily = await client.query(`with e0 as (
        select s.deployment_id, (coalesce(s.ended_at, s.started_at) at time zone d.timezone)::date as day,
          ${sums}, ${counts}, count(distinct agent_id) as seats_active, count(distinct node_id) as nodes_active
        from usage_sample s join deployment d on d.deployment_id = s.deployment_id group by 1, 2),
      p as (select c.deployment_id, (c.minute at time zone d.timezone)::date as day, max(jobs_running) as orchestration_peak_concurrency
        from v_conc c join deployment d on d.deployment_id = c.deployment_id group by 1, 2),
      e as (select coalesce(e0.deployment_id, p.deployment_id) as deployment_id, coalesce(e0.day, p.day) as day,
          ${[...SUMS, ...COUNTS, 'seats_active', 'nodes_active'].map((c) => `e0.${c}`).join(', ')}, p.orchestration_peak_concurrency
        from e0 full join p on p.deployment_id = e0.deployment_id and p.day = e0.day),
      a as (select * from usage_rollup_daily)
      select coalesce(e.deployment_id, a.deployment_id) as deployment_id, coalesce(e.day, a.day)::text as day,
        to_jsonb(e) as expected, to_jsonb(a) as actual
      from e full join a on a.deployment_id = e.deployment_id and a.day = e.day
      join deployment dd on dd.deployment_id = coalesce(e.deployment_id, a.deployment_id)
      where coalesce(e.day, a.day) >= ($1::timestamptz at time zone dd.timezone)::date
        and ${distinct([...SUMS, ...COUNTS, 'seats_active', 'nodes_active', 'orchestration_peak_concurrency'])}`, [since]);
    for (const r of daily.rows) {
      diffs.push({ table: 'usage_rollup_daily', key: { deployment_id: r.deployment_id, day: r.day }, expected: r.expected, actual: r.actual });
    }
    const MODEL = ['requests', 'tokens_in', 'tokens_out', 'tokens_cache_read', 'tokens_cache_write', 'tokens_reasoning', 'cost_micro_usd', 'unpriced_requests'];
    const models = await client.query(`with e as (
        select s.deployment_id, (coalesce(s.ended_at, s.started_at) at time zone d.timezone)::date as day, s.provider, s.model_name, s.agent_type,
          count(*) as requests, sum(model_tokens_in) as tokens_in, sum(model_tokens_out) as tokens_out, sum(model_tokens_cached_in) as tokens_cache_read,
          sum(model_tokens_cache_write) as tokens_cache_write, sum(model_tokens_reasoning) as tokens_reasoning, sum(cost_micro_usd) as cost_micro_usd,
          count(*) filter (where cost_micro_usd is null) as unpriced_requests
        from usage_sample s join deployment d on d.deployment_id = s.deployment_id where s.model_name is not null group by 1, 2, 3, 4, 5),
      a as (select * from usage_rollup_model_daily)
      select coalesce(e.deployment_id, a.deployment_id) as deployment_id, coalesce(e.day, a.day)::text as day, coalesce(e.provider, a.provider) as provider,
        coalesce(e.model_name, a.model_name) as model_name, coalesce(e.agent_type, a.agent_type) as agent_type, to_jsonb(e) as expected, to_jsonb(a) as actual
      from e full join a on a.deployment_id = e.deployment_id and a.day = e.day and a.provider = e.provider and a.model_name = e.model_name and a.agent_type = e.agent_type
      join deployment dd on dd.deployment_id = coalesce(e.deployment_id, a.deployment_id)
      where coalesce(e.day, a.day) >= ($1::timestamptz at time zone dd.timezone)::date and ${distinct(MODEL)}`, [since]);
    for (const r of models.rows) {
      diffs.push({
        table: 'usage_rollup_model_daily', key: { deployment_id: r.deployment_id, day: r.day, provider: r.provider, model_name: r.model_name, agent_type: r.agent_type },
        expected: r.expected, actual: r.actual,
      });
    }
    // raw consistency: every job with a usage revision has exactly that revision in usage_sample
    const raw = await client.query(`select j.deployment_id, j.correlation_id, j.revision as expected, u.revision as actual
      from job j left join usage_sample u on u.deployment_id = j.deployment_id and u.correlation_id = j.correlation_id
        and u.started_at = j.started_at
      where j.revision <> '' and j.started_at >= $1::timestamptz and u.revision is distinct from j.revision`, [since]);
    for (const r of raw.rows) {
      diffs.push({ table: 'job', key: { deployment_id: r.deployment_id, correlation_id: r.correlation_id }, expected: { revision: r.expected }, actual: r.actual === null ? null : { revision: r.actual } });
    }
    await client.query('commit');
    return diffs;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
