import type { Tables } from '../db/tables.js';
import { lit, q, type BuildStep } from './common.js';

const SUMS = ['cpu_seconds', 'gpu_seconds', 'disk_io_mb', 'net_in_mb', 'net_out_mb', 'context_reads', 'context_writes',
  'context_bytes_read', 'context_bytes_written', 'model_tokens_in', 'model_tokens_out'] as const;
const NUM_TYPES: Record<string, string> = {
  cpu_seconds: 'numeric(18,6)', gpu_seconds: 'numeric(18,6)', ram_mb_peak: 'numeric(18,3)', disk_io_mb: 'numeric(18,3)',
  net_in_mb: 'numeric(18,3)', net_out_mb: 'numeric(18,3)', context_reads: 'bigint', context_writes: 'bigint',
  context_bytes_read: 'bigint', context_bytes_written: 'bigint', model_tokens_in: 'bigint', model_tokens_out: 'bigint',
};
const METRICS = [...SUMS, 'ram_mb_peak'];
/** Per identity besides the metrics: what it cost and what the per-model rollup needs. */
const LLM = ['provider', 'model_name', 'model_tokens_cached_in', 'model_tokens_cache_write', 'model_tokens_reasoning', 'cost_micro_usd', 'price_version', 'tags'];
/** Summed into usage_rollup_model_daily, from rl_d. */
const MODEL_SUMS = `sum(sign), sum(model_tokens_in), sum(model_tokens_out), sum(model_tokens_cached_in), sum(model_tokens_cache_write),
  sum(model_tokens_reasoning), sum(cost), sum(unpriced)`;
const MODEL_COLS = 'requests, tokens_in, tokens_out, tokens_cache_read, tokens_cache_write, tokens_reasoning, cost_micro_usd, unpriced_requests';

/**
 * rollups: each identity's winning revision replaces what its previous revision contributed.
 * Buckets: hour = UTC hour of the attribution instant coalesce(ended_at, started_at); day = the deployment's
 * LOCAL date of that instant (deployment.timezone), kept per identity in attributed_at so a timezone change
 * can re-derive it (rebuild_deployment_days, 050_local_day.sql).
 * Sums move by (new - old); the hourly ram_mb_peak max is recomputed from state for touched buckets;
 * seats/nodes are exact through per-day reference counts. orchestration_peak_concurrency is NOT
 * written here: the concurrency projection owns that column.
 */
/** Locks, for share, the deployment rows a staged batch touches: a timezone change updates that row. */
export function lockDeploymentsSql(): string {
  return `select 1 from deployment where deployment_id in (select distinct deployment_id from stg_events) order by deployment_id for share`;
}

export function rollupsMerge(t: Tables): string[] {
  const sql: string[] = [];
  const st = q(t.rollupJob);
  const mem = q(t.rollupMember);
  const hourly = q(t.hourly);
  const daily = q(t.daily);
  // A timezone change (which updates the deployment row) waits for this batch, and this batch for it.
  if (!t.shadow) sql.push(lockDeploymentsSql());
  // Changes: winners that beat the applied revision, with what that revision contributed (o_*).
  sql.push(`create temp table rl_ch on commit drop as
    select w.deployment_id, w.correlation_id, w.org_id, w.revision,
      date_trunc('hour', coalesce(w.ended_at, w.started_at), 'UTC') as bucket_start,
      (coalesce(w.ended_at, w.started_at) at time zone d.timezone)::date as day,
      coalesce(w.ended_at, w.started_at) as attributed_at,
      w.agent_type, w.agent_id, w.node_id, w.status,
      ${METRICS.map((m) => `w.${m}::${NUM_TYPES[m]} as ${m}`).join(', ')}, ${LLM.map((c) => `w.${c}`).join(', ')},
      ${LLM.map((c) => `s.${c} as o_${c}`).join(', ')},
      s.deployment_id is not null as o_exists, s.bucket_start as o_bucket_start, s.day as o_day, s.agent_type as o_agent_type,
      s.agent_id as o_agent_id, s.node_id as o_node_id, s.status as o_status,
      ${METRICS.map((m) => `s.${m} as o_${m}`).join(', ')}
    from stg_win w join deployment d on d.deployment_id = w.deployment_id
      left join ${st} s on s.deployment_id = w.deployment_id and s.correlation_id = w.correlation_id
    where s.deployment_id is null or s.revision collate "C" < w.revision collate "C"`);
  if (t.shadow) sql.push('analyze rl_ch');
  sql.push(`create temp table rl_d on commit drop as
    select deployment_id, org_id, bucket_start, day, agent_type, agent_id, node_id, status, 1 as sign,
      ${SUMS.join(', ')}, provider, model_name, model_tokens_cached_in, model_tokens_cache_write, model_tokens_reasoning,
      coalesce(cost_micro_usd, 0) as cost, (model_name is not null and cost_micro_usd is null)::int as unpriced from rl_ch
    union all
    select deployment_id, org_id, o_bucket_start, o_day, o_agent_type, o_agent_id, o_node_id, o_status, -1,
      ${SUMS.map((m) => `-o_${m}`).join(', ')}, o_provider, o_model_name, -o_model_tokens_cached_in, -o_model_tokens_cache_write,
      -o_model_tokens_reasoning, -coalesce(o_cost_micro_usd, 0), -(o_model_name is not null and o_cost_micro_usd is null)::int from rl_ch where o_exists`);
  if (t.shadow) sql.push('analyze rl_d');
  const sumSel = `${SUMS.map((m) => `sum(${m})`).join(', ')}, sum(cost)`;
  const jobSel = `sum(sign), coalesce(sum(sign) filter (where status = 'succeeded'), 0), coalesce(sum(sign) filter (where status = 'failed'), 0)`;
  const addSet = [...SUMS, 'cost_micro_usd', 'jobs', 'jobs_succeeded', 'jobs_failed'].map((m) => `${m} = x.${m} + excluded.${m}`).join(', ');
  // The caller ensured the months of this batch's buckets outside the transaction (HourlyPartitionCache). This
  // covers what it cannot see or wrongly remembers (an old revision's bucket, a month dropped or swapped away)
  // for a catalog look-up per month; only a month missing after all is created here, under the batch's lock.
  // No DEFAULT partition instead: one would stop the months after it from being created. Distinct hours
  // first: a zone-aware date_trunc per row cost 5 ms per 10k rows, per distinct hour 1.5 ms.
  sql.push(`select ensure_hourly_partitions(m, m, ${lit(t.hourly)})
    from (select distinct date_trunc('month', b, 'UTC') as m from (select distinct bucket_start as b from rl_d) h) x`);
  sql.push(`insert into ${hourly} as x (deployment_id, bucket_start, agent_type, org_id, ${SUMS.join(', ')}, cost_micro_usd, jobs, jobs_succeeded, jobs_failed)
    select deployment_id, bucket_start, agent_type, org_id, ${sumSel}, ${jobSel}
    from rl_d group by deployment_id, bucket_start, agent_type, org_id
    on conflict (deployment_id, bucket_start, agent_type) do update set ${addSet}`);
  sql.push(`insert into ${st} as s (deployment_id, correlation_id, org_id, revision, bucket_start, day, attributed_at, agent_type,
      agent_id, node_id, status, ${METRICS.join(', ')}, ${LLM.join(', ')})
    select deployment_id, correlation_id, org_id, revision, bucket_start, day, attributed_at, agent_type, agent_id, node_id, status,
      ${METRICS.join(', ')}, ${LLM.join(', ')} from rl_ch
    on conflict (deployment_id, correlation_id) do update set org_id = excluded.org_id, revision = excluded.revision,
      bucket_start = excluded.bucket_start, day = excluded.day, attributed_at = excluded.attributed_at, agent_type = excluded.agent_type,
      agent_id = excluded.agent_id, node_id = excluded.node_id, status = excluded.status,
      ${[...METRICS, ...LLM].map((m) => `${m} = excluded.${m}`).join(', ')}`);
  // A max cannot move by a difference: recompute it for every touched bucket from the state (indexed).
  sql.push(`update ${hourly} h set ram_mb_peak = coalesce((select max(s.ram_mb_peak) from ${st} s
      where s.deployment_id = h.deployment_id and s.bucket_start = h.bucket_start and s.agent_type = h.agent_type), 0)
    from (select distinct deployment_id, bucket_start, agent_type from rl_d) k
    where h.deployment_id = k.deployment_id and h.bucket_start = k.bucket_start and h.agent_type = k.agent_type`);
  sql.push(`insert into ${daily} as x (deployment_id, day, org_id, ${SUMS.join(', ')}, cost_micro_usd, jobs, jobs_succeeded, jobs_failed)
    select deployment_id, day, org_id, ${sumSel}, ${jobSel}
    from rl_d group by deployment_id, day, org_id
    order by deployment_id, day -- the concurrency projection writes these rows too: lock them in one order
    on conflict (deployment_id, day) do update set ${addSet}`);
  const modelDaily = q(t.modelDaily);
  sql.push(`insert into ${modelDaily} as x (deployment_id, day, provider, model_name, agent_type, org_id, ${MODEL_COLS})
    select deployment_id, day, provider, model_name, agent_type, org_id, ${MODEL_SUMS}
    from rl_d where model_name is not null group by deployment_id, day, provider, model_name, agent_type, org_id
    on conflict (deployment_id, day, provider, model_name, agent_type) do update set
      ${MODEL_COLS.split(', ').map((c) => `${c} = x.${c} + excluded.${c}`).join(', ')}`);
  // Distinct agents/nodes per day: reference counts; a member going 0 -> n or n -> 0 moves the count.
  sql.push(`create temp table rl_md on commit drop as
    select deployment_id, day, 'agent'::text as kind, agent_id as member_id, sum(sign)::int as delta from rl_d
      group by deployment_id, day, agent_id having sum(sign) <> 0
    union all
    select deployment_id, day, 'node'::text, node_id, sum(sign)::int from rl_d
      group by deployment_id, day, node_id having sum(sign) <> 0`);
  sql.push(`with up as (
      insert into ${mem} as m (deployment_id, day, kind, member_id, refs)
      select deployment_id, day, kind, member_id, delta from rl_md
      on conflict (deployment_id, day, kind, member_id) do update set refs = m.refs + excluded.refs
      returning deployment_id, day, kind, member_id, refs),
    tr as (
      select up.deployment_id, up.day, up.kind,
        case when up.refs > 0 and up.refs - d.delta <= 0 then 1 when up.refs <= 0 and up.refs - d.delta > 0 then -1 else 0 end as t
      from up join rl_md d using (deployment_id, day, kind, member_id)),
    agg as (
      select deployment_id, day, coalesce(sum(t) filter (where kind = 'agent'), 0)::int as seats,
        coalesce(sum(t) filter (where kind = 'node'), 0)::int as nodes
      from tr group by deployment_id, day having sum(abs(t)) > 0)
    update ${daily} x set seats_active = x.seats_active + agg.seats, nodes_active = x.nodes_active + agg.nodes
    from agg where x.deployment_id = agg.deployment_id and x.day = agg.day`);
  sql.push(`delete from ${mem} m using rl_md d where m.deployment_id = d.deployment_id and m.day = d.day
    and m.kind = d.kind and m.member_id = d.member_id and m.refs = 0`);
  // A bucket every job left (a revision moved them) holds only zeros: drop it, so the tables do not depend
  // on where batch boundaries fell (a rebuild never creates such rows). A day keeps a concurrency peak.
  sql.push(`delete from ${hourly} h using (select distinct deployment_id, bucket_start, agent_type from rl_d where sign < 0) k
    where h.deployment_id = k.deployment_id and h.bucket_start = k.bucket_start and h.agent_type = k.agent_type and h.jobs = 0`);
  sql.push(`delete from ${modelDaily} x using (select distinct deployment_id, day, provider, model_name, agent_type from rl_d where sign < 0 and model_name is not null) k
    where x.deployment_id = k.deployment_id and x.day = k.day and x.provider = k.provider and x.model_name = k.model_name
      and x.agent_type = k.agent_type and x.requests = 0`);
  sql.push(`delete from ${daily} x using (select distinct deployment_id, day from rl_d where sign < 0) k
    where x.deployment_id = k.deployment_id and x.day = k.day and x.jobs = 0 and x.orchestration_peak_concurrency = 0`);
  return sql;
}

/**
 * rollups, rebuilt from a whole staged stream at once (replay): state from each identity's winning revision
 * (table `win`), and hourly/daily sums and per-day members from the same rows — what rollupsMerge reaches
 * batch by batch. orchestration_peak_concurrency stays 0 (the swap recomputes it).
 */
export function rollupsBuild(t: Tables, win: string): BuildStep[] {
  const bucket = `date_trunc('hour', coalesce(ended_at, started_at), 'UTC')`;
  // the deployment's local date of the attribution instant (see rollupsMerge)
  const day = `(coalesce(ended_at, started_at) at time zone d.timezone)::date`;
  const cast = (m: string) => `${m}::${NUM_TYPES[m]}`;
  const sums = SUMS.map((m) => `sum(${cast(m)})`).join(', ');
  const jobs = `count(*), count(*) filter (where status = 'succeeded'), count(*) filter (where status = 'failed')`;
  const w = q(win);
  return [
    {
      // state first; the daily rows and members come from it (its day column is the local day)
      indexes: ['rollupJob', 'daily', 'modelDaily', 'rollupMember'],
      sql: [
        `insert into ${q(t.rollupJob)} (deployment_id, correlation_id, org_id, revision, bucket_start, day, attributed_at, agent_type,
            agent_id, node_id, status, ${METRICS.join(', ')}, ${LLM.join(', ')})
          select w.deployment_id, correlation_id, w.org_id, revision, ${bucket}, ${day}, coalesce(ended_at, started_at), agent_type, agent_id,
            node_id, status, ${METRICS.map(cast).join(', ')}, ${LLM.join(', ')}
          from ${w} w join deployment d on d.deployment_id = w.deployment_id`,
        `insert into ${q(t.daily)} (deployment_id, day, org_id, ${SUMS.join(', ')}, cost_micro_usd, jobs, jobs_succeeded, jobs_failed,
            seats_active, nodes_active)
          select deployment_id, day, org_id, ${SUMS.map((m) => `sum(${m})`).join(', ')}, coalesce(sum(cost_micro_usd), 0), ${jobs},
            count(distinct agent_id), count(distinct node_id)
          from ${q(t.rollupJob)} group by deployment_id, day, org_id`,
        `insert into ${q(t.modelDaily)} (deployment_id, day, provider, model_name, agent_type, org_id, ${MODEL_COLS})
          select deployment_id, day, provider, model_name, agent_type, org_id, count(*), sum(model_tokens_in), sum(model_tokens_out),
            sum(model_tokens_cached_in), sum(model_tokens_cache_write), sum(model_tokens_reasoning), coalesce(sum(cost_micro_usd), 0),
            count(*) filter (where cost_micro_usd is null)
          from ${q(t.rollupJob)} where model_name is not null group by deployment_id, day, provider, model_name, agent_type, org_id`,
        `insert into ${q(t.rollupMember)} (deployment_id, day, kind, member_id, refs)
          select deployment_id, day, 'agent', agent_id, count(*) from ${q(t.rollupJob)} group by deployment_id, day, agent_id
          union all
          select deployment_id, day, 'node', node_id, count(*) from ${q(t.rollupJob)} group by deployment_id, day, node_id`,
      ],
    },
    {
      indexes: ['hourly'],
      sql: [
        `insert into ${q(t.hourly)} (deployment_id, bucket_start, agent_type, org_id, ${SUMS.join(', ')}, cost_micro_usd, ram_mb_peak, jobs,
            jobs_succeeded, jobs_failed)
          select deployment_id, ${bucket}, agent_type, org_id, ${sums}, coalesce(sum(cost_micro_usd), 0), max(${cast('ram_mb_peak')}), ${jobs}
          from ${w} group by deployment_id, ${bucket}, agent_type, org_id`,
      ],
    },
  ];
}
