-- A deployment's day is its LOCAL day (deployment.timezone) of the instant a usage revision is attributed
-- to: coalesce(ended_at, started_at), the instant that also picks its UTC hourly bucket. Daily rollups,
-- seats/nodes/peak concurrency per day and the enforcer's ledger all use it; hourly buckets stay UTC hours.
-- Hourly buckets cannot be summed into local days where a zone is off the hour (Asia/Kolkata +05:30), so
-- each identity keeps its attribution instant and the day is derived from it.

alter table projector_rollup_job add column attributed_at timestamptz;
update projector_rollup_job j set attributed_at = coalesce(s.ended_at, s.started_at)
  from usage_sample s where s.deployment_id = j.deployment_id and s.correlation_id = j.correlation_id;
-- identities whose raw samples are already past retention: the hour is the best instant left
update projector_rollup_job set attributed_at = bucket_start where attributed_at is null;
alter table projector_rollup_job alter column attributed_at set not null;

alter table enforcer_contribution add column attributed_at timestamptz;
update enforcer_contribution c set attributed_at = coalesce(s.ended_at, s.started_at)
  from usage_sample s where s.deployment_id = c.deployment_id and s.correlation_id = c.correlation_id;
update enforcer_contribution c set attributed_at = c.day::timestamp at time zone d.timezone
  from deployment d where d.deployment_id = c.deployment_id and c.attributed_at is null;
alter table enforcer_contribution alter column attributed_at set not null;

-- The dashboard reads "used" from the enforcer's ledger (the number the enforcer compares with a cap), seats
-- and nodes included: counted from the contributions, through row-level security like every org table.
alter table enforcer_contribution enable row level security;
create policy org_isolation on enforcer_contribution to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org());
grant select on enforcer_contribution to kaching_org_reader;

-- Recomputes every day-keyed row of one deployment from the per-identity state, in its current timezone:
-- daily rollups, member reference counts (seats/nodes), peak concurrency per day, and the enforcer's daily
-- ledger. Runs inside the caller's transaction, which changed deployment.timezone first: that row lock keeps
-- projector and enforcer batches (which lock the deployment rows they touch `for share`) from committing days
-- in the old zone after this rebuild. Security definer: the API changes a timezone as the org role, which
-- cannot write the internal state tables; it may only rebuild its own org's deployments.
create or replace function rebuild_deployment_days(dep uuid) returns void language plpgsql security definer as $$
declare
  tz text;
  owner uuid;
begin
  select timezone, org_id into strict tz, owner from deployment where deployment_id = dep;
  if current_org() is not null and current_org() <> owner then
    raise exception 'deployment % belongs to another organisation', dep using errcode = '42501';
  end if;

  update projector_rollup_job set day = (attributed_at at time zone tz)::date
    where deployment_id = dep and day <> (attributed_at at time zone tz)::date;
  delete from projector_rollup_member where deployment_id = dep;
  insert into projector_rollup_member (deployment_id, day, kind, member_id, refs)
    select deployment_id, day, 'agent', agent_id, count(*) from projector_rollup_job where deployment_id = dep group by deployment_id, day, agent_id
    union all
    select deployment_id, day, 'node', node_id, count(*) from projector_rollup_job where deployment_id = dep group by deployment_id, day, node_id;
  delete from usage_rollup_daily where deployment_id = dep;
  insert into usage_rollup_daily (deployment_id, day, org_id, cpu_seconds, gpu_seconds, disk_io_mb, net_in_mb, net_out_mb,
      context_reads, context_writes, context_bytes_read, context_bytes_written, model_tokens_in, model_tokens_out,
      jobs, jobs_succeeded, jobs_failed, seats_active, nodes_active)
    select deployment_id, day, (array_agg(org_id))[1], sum(cpu_seconds), sum(gpu_seconds), sum(disk_io_mb), sum(net_in_mb),
      sum(net_out_mb), sum(context_reads), sum(context_writes), sum(context_bytes_read), sum(context_bytes_written),
      sum(model_tokens_in), sum(model_tokens_out), count(*), count(*) filter (where status = 'succeeded'),
      count(*) filter (where status = 'failed'), count(distinct agent_id), count(distinct node_id)
    from projector_rollup_job where deployment_id = dep group by deployment_id, day;
  insert into usage_rollup_daily as x (deployment_id, day, org_id, orchestration_peak_concurrency)
    select deployment_id, (minute at time zone tz)::date, (array_agg(org_id))[1], max(jobs_running)
    from concurrency_minute where deployment_id = dep group by deployment_id, (minute at time zone tz)::date
    on conflict (deployment_id, day) do update set orchestration_peak_concurrency = excluded.orchestration_peak_concurrency;

  update enforcer_contribution set day = (attributed_at at time zone tz)::date
    where deployment_id = dep and day <> (attributed_at at time zone tz)::date;
  delete from enforcer_usage_daily where deployment_id = dep;
  insert into enforcer_usage_daily (deployment_id, metric, day, org_id, value)
    select c.deployment_id, e.key, c.day, (array_agg(c.org_id))[1], sum(e.value::numeric)
    from enforcer_contribution c, jsonb_each_text(c.amounts) e where c.deployment_id = dep group by c.deployment_id, e.key, c.day;
  update enforcer_deployment_state set latest_day = coalesce((select max(day) from enforcer_contribution where deployment_id = dep), latest_day)
    where deployment_id = dep;
end $$;

do $$ begin
  execute format('alter function rebuild_deployment_days(uuid) set search_path = %I, pg_catalog', current_schema());
  execute 'revoke all on function rebuild_deployment_days(uuid) from public';
  execute 'grant execute on function rebuild_deployment_days(uuid) to kaching_org_reader';
end $$;

-- Until now daily rollups were UTC days (and the enforcer keyed its ledger by the local day of started_at):
-- bring every deployment onto the one definition.
select rebuild_deployment_days(deployment_id) from deployment;
