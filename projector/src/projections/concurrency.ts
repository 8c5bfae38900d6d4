import type pg from 'pg';
import type { Tables } from '../db/tables.js';
import { q, type BuildStep } from './common.js';
import { lockDeploymentsSql } from './rollups.js';

/**
 * concurrency: each identity occupies the minutes [minute(started_at), minute(projector_job_end(...))]
 * (UTC). A new revision or heartbeat moves it from its applied interval to the new one; concurrency_minute
 * moves by the per-minute difference. Then the touched days' usage_rollup_daily.orchestration_peak_concurrency
 * is recomputed — the only column of that table this projection writes (the rollups projection owns the rest).
 * A day there is the deployment's local day: the peak of the minutes whose local date it is.
 */
export function concurrencyMerge(t: Tables, opts: { writePeak: boolean }): string[] {
  const sql: string[] = [];
  const st = q(t.concurrencyJob);
  const cm = q(t.concurrency);
  if (opts.writePeak) sql.push(lockDeploymentsSql());
  sql.push(`create temp table cc_ch on commit drop as
    with h as (
      select deployment_id, correlation_id, (array_agg(org_id))[1] as org_id, min(started_at) as started_at,
        max(observed_at) as hb
      from stg_events where kind = 'job_status' group by deployment_id, correlation_id),
    ids as (select deployment_id, correlation_id from stg_win union select deployment_id, correlation_id from h),
    m as (
      select i.deployment_id, i.correlation_id, coalesce(s.org_id, w.org_id, h.org_id) as org_id,
        (w.revision is not null and (s.revision is null or s.revision collate "C" < w.revision collate "C")) as tw,
        w.revision as w_revision, w.started_at as w_started_at, w.ended_at as w_ended_at, w.status as w_status,
        s.revision as s_revision, s.started_at as s_started_at, s.ended_at as s_ended_at, s.status as s_status,
        greatest(s.heartbeat_at, h.hb) as heartbeat_at, h.started_at as h_started_at,
        s.from_minute as o_from, s.to_minute as o_to
      from ids i
        left join stg_win w on w.deployment_id = i.deployment_id and w.correlation_id = i.correlation_id
        left join h on h.deployment_id = i.deployment_id and h.correlation_id = i.correlation_id
        left join ${st} s on s.deployment_id = i.deployment_id and s.correlation_id = i.correlation_id),
    n as (
      select deployment_id, correlation_id, org_id,
        case when tw then w_revision else coalesce(s_revision, '') end as revision,
        case when tw then w_started_at when coalesce(s_revision, '') <> '' then s_started_at
             else least(s_started_at, h_started_at) end as started_at,
        case when tw then w_ended_at else s_ended_at end as ended_at,
        case when tw then w_status else coalesce(s_status, 'running') end as status,
        heartbeat_at, o_from, o_to
      from m)
    select n.*, date_trunc('minute', started_at, 'UTC') as n_from,
      date_trunc('minute', projector_job_end(started_at, ended_at, status, heartbeat_at), 'UTC') as n_to
    from n`);
  if (t.shadow) sql.push('analyze cc_ch');
  // Per-minute deltas from interval boundaries (+1 where an interval starts, -1 the minute after it ends),
  // summed along the minutes: one row per minute touched instead of one per job and minute it ran.
  const moved = `(o_from, o_to) is distinct from (n_from, n_to)`;
  sql.push(`create temp table cc_d on commit drop as
    with b as (
      select deployment_id, org_id, o_from as m, -1 as d from cc_ch where o_from is not null and ${moved}
      union all select deployment_id, org_id, o_to + interval '1 minute', 1 from cc_ch where o_from is not null and ${moved}
      union all select deployment_id, org_id, n_from, 1 from cc_ch where ${moved}
      union all select deployment_id, org_id, n_to + interval '1 minute', -1 from cc_ch where ${moved}),
    p as (select deployment_id, org_id, m, sum(d) as d from b group by deployment_id, org_id, m having sum(d) <> 0),
    r as (select deployment_id, org_id, m, lead(m) over w as next, sum(d) over w as level
      from p window w as (partition by deployment_id, org_id order by m))
    select deployment_id, org_id, generate_series(m, next - interval '1 minute', interval '1 minute') as minute,
      level::int as delta
    from r where level <> 0`);
  if (t.shadow) sql.push('analyze cc_d');
  // Update existing minutes first, then insert new ones: an insert never carries a negative count.
  sql.push(`update ${cm} c set jobs_running = c.jobs_running + d.delta from cc_d d
    where c.deployment_id = d.deployment_id and c.minute = d.minute`);
  sql.push(`insert into ${cm} (deployment_id, minute, org_id, jobs_running)
    select d.deployment_id, d.minute, d.org_id, d.delta from cc_d d
    where not exists (select 1 from ${cm} c where c.deployment_id = d.deployment_id and c.minute = d.minute)`);
  sql.push(`delete from ${cm} c using cc_d d where c.deployment_id = d.deployment_id and c.minute = d.minute
    and c.jobs_running = 0`);
  sql.push(`insert into ${st} as s (deployment_id, correlation_id, org_id, revision, started_at, ended_at, status,
      heartbeat_at, from_minute, to_minute)
    select deployment_id, correlation_id, org_id, revision, started_at, ended_at, status, heartbeat_at, n_from, n_to from cc_ch
    on conflict (deployment_id, correlation_id) do update set org_id = excluded.org_id, revision = excluded.revision,
      started_at = excluded.started_at, ended_at = excluded.ended_at, status = excluded.status,
      heartbeat_at = excluded.heartbeat_at, from_minute = excluded.from_minute, to_minute = excluded.to_minute`);
  if (opts.writePeak) {
    sql.push(`create temp table cc_days on commit drop as
      select distinct on (c.deployment_id, day) c.deployment_id, c.org_id, (c.minute at time zone d.timezone)::date as day, d.timezone
      from cc_d c join deployment d on d.deployment_id = c.deployment_id`);
    sql.push(`insert into ${q(t.daily)} as x (deployment_id, day, org_id, orchestration_peak_concurrency)
      select k.deployment_id, k.day, k.org_id, coalesce((select max(c.jobs_running) from ${cm} c
          where c.deployment_id = k.deployment_id and c.minute >= k.day::timestamp at time zone k.timezone
            and c.minute < (k.day + 1)::timestamp at time zone k.timezone), 0)
      from cc_days k
      order by k.deployment_id, k.day -- the rollups projection writes these rows too: lock them in one order
      on conflict (deployment_id, day) do update set orchestration_peak_concurrency = excluded.orchestration_peak_concurrency`);
    // A day that has neither jobs nor a peak any more holds only zeros (see rollupsMerge).
    sql.push(`delete from ${q(t.daily)} x using cc_days k
      where x.deployment_id = k.deployment_id and x.day = k.day and x.jobs = 0 and x.orchestration_peak_concurrency = 0`);
  }
  return sql;
}

/** Recomputes every day's peak from the concurrency index (after a concurrency or rollups swap). */
export async function recomputeAllPeaks(client: pg.ClientBase, concurrencyTable: string, dailyTable: string): Promise<void> {
  const cm = q(concurrencyTable);
  const d = q(dailyTable);
  await client.query(`insert into ${d} as x (deployment_id, day, org_id, orchestration_peak_concurrency)
    select c.deployment_id, (c.minute at time zone t.timezone)::date, (array_agg(c.org_id))[1], max(c.jobs_running)
    from ${cm} c join deployment t on t.deployment_id = c.deployment_id
    group by c.deployment_id, (c.minute at time zone t.timezone)::date
    on conflict (deployment_id, day) do update set orchestration_peak_concurrency = excluded.orchestration_peak_concurrency`);
  await client.query(`update ${d} x set orchestration_peak_concurrency = 0 from deployment t
    where t.deployment_id = x.deployment_id and x.orchestration_peak_concurrency <> 0
    and not exists (select 1 from ${cm} c where c.deployment_id = x.deployment_id
      and c.minute >= x.day::timestamp at time zone t.timezone and c.minute < (x.day + 1)::timestamp at time zone t.timezone)`);
}

/**
 * concurrency, rebuilt from a whole staged stream at once (replay): each identity's interval from its
 * winning revision (table `win`) and its heartbeats, then jobs running per minute from
 * interval boundaries — what concurrencyMerge reaches batch by batch. The swap recomputes the daily peaks.
 */
export function concurrencyBuild(t: Tables, stage: string, win: string): BuildStep[] {
  const st = q(t.concurrencyJob);
  return [{ indexes: ['concurrencyJob', 'concurrency'], sql: [
    `insert into ${st} (deployment_id, correlation_id, org_id, revision, started_at, ended_at, status, heartbeat_at,
        from_minute, to_minute)
      with h as (
        select deployment_id, correlation_id, (array_agg(org_id order by seq))[1] as org_id, min(started_at) as started_at,
          max(observed_at) as hb
        from ${q(stage)} where kind = 'job_status' group by deployment_id, correlation_id),
      n as (
        select coalesce(w.deployment_id, h.deployment_id) as deployment_id, coalesce(w.correlation_id, h.correlation_id) as correlation_id,
          coalesce(w.org_id, h.org_id) as org_id, coalesce(w.revision, '') as revision,
          coalesce(w.started_at, h.started_at) as started_at, w.ended_at, coalesce(w.status, 'running') as status, h.hb as heartbeat_at
        from ${q(win)} w full join h on h.deployment_id = w.deployment_id and h.correlation_id = w.correlation_id)
      select n.*, date_trunc('minute', started_at, 'UTC'),
        date_trunc('minute', projector_job_end(started_at, ended_at, status, heartbeat_at), 'UTC')
      from n`,
    `insert into ${q(t.concurrency)} (deployment_id, minute, org_id, jobs_running)
      with b as (
        select deployment_id, org_id, from_minute as m, 1 as d from ${st}
        union all select deployment_id, org_id, to_minute + interval '1 minute', -1 from ${st}),
      p as (select deployment_id, org_id, m, sum(d) as d from b group by deployment_id, org_id, m having sum(d) <> 0),
      r as (select deployment_id, org_id, m, lead(m) over w as next, sum(d) over w as level
        from p window w as (partition by deployment_id, org_id order by m))
      select deployment_id, generate_series(m, next - interval '1 minute', interval '1 minute'), org_id, level::int
      from r where level <> 0`,
  ] }];
}
