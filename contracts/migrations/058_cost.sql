-- Cost in every projection. Each usage revision's cost is computed once, in integer micro-USD, from the price
-- version in force at its attribution instant (contracts/src/pricing: one function for projector, enforcer,
-- API). null cost with a model = no price known yet (PRICE_UNKNOWN): re-priced when a price arrives.

alter table usage_sample
  add column model_tokens_cache_write bigint not null default 0,
  add column cost_micro_usd bigint,
  add column price_version integer,
  add column tags jsonb;
-- what a price arriving for an unknown model re-prices
create index usage_sample_unpriced_idx on usage_sample (deployment_id) where cost_micro_usd is null and model_name is not null;

-- per identity, what the rollups hold for it (the difference a new revision or a re-pricing applies)
alter table projector_rollup_job
  add column provider text,
  add column model_name text,
  add column model_tokens_cached_in bigint not null default 0,
  add column model_tokens_cache_write bigint not null default 0,
  add column model_tokens_reasoning bigint not null default 0,
  add column cost_micro_usd bigint,
  add column price_version integer,
  add column tags jsonb;
create index projector_rollup_job_unpriced_idx on projector_rollup_job (deployment_id) where cost_micro_usd is null and model_name is not null;

alter table usage_rollup_hourly add column cost_micro_usd bigint not null default 0;
alter table usage_rollup_daily add column cost_micro_usd bigint not null default 0;

-- Requests, tokens and cost per model per local day and agent type. Tokens follow the event's rule:
-- tokens_in counts every input token (cache reads and writes included), tokens_out every output token
-- (reasoning included); the cache and reasoning columns say how many of them were of that kind.
create table usage_rollup_model_daily (
  deployment_id uuid not null references deployment(deployment_id),
  day date not null,
  provider text not null,
  model_name text not null,
  agent_type text not null,
  org_id uuid not null references org(org_id),
  requests bigint not null default 0,
  tokens_in bigint not null default 0,
  tokens_out bigint not null default 0,
  tokens_cache_read bigint not null default 0,
  tokens_cache_write bigint not null default 0,
  tokens_reasoning bigint not null default 0,
  cost_micro_usd bigint not null default 0,
  -- requests whose model had no price yet (their cost is not in cost_micro_usd)
  unpriced_requests bigint not null default 0,
  primary key (deployment_id, day, provider, model_name, agent_type)
);
create index usage_rollup_model_daily_org_idx on usage_rollup_model_daily (org_id);
alter table usage_rollup_model_daily enable row level security;
create policy org_isolation on usage_rollup_model_daily to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org());
grant select on usage_rollup_model_daily to kaching_org_reader;

-- The enforcer's ledger keeps what it needs to price a contribution later and to scope budgets to tags.
alter table enforcer_contribution
  add column provider text,
  add column llm jsonb,
  add column tags jsonb;
create index enforcer_contribution_unpriced_idx on enforcer_contribution (deployment_id) where cost_micro_usd is null and model_name is not null;

-- A timezone change also moves cost and the per-model rows to the new local days.
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
      jobs, jobs_succeeded, jobs_failed, seats_active, nodes_active, cost_micro_usd)
    select deployment_id, day, (array_agg(org_id))[1], sum(cpu_seconds), sum(gpu_seconds), sum(disk_io_mb), sum(net_in_mb),
      sum(net_out_mb), sum(context_reads), sum(context_writes), sum(context_bytes_read), sum(context_bytes_written),
      sum(model_tokens_in), sum(model_tokens_out), count(*), count(*) filter (where status = 'succeeded'),
      count(*) filter (where status = 'failed'), count(distinct agent_id), count(distinct node_id), coalesce(sum(cost_micro_usd), 0)
    from projector_rollup_job where deployment_id = dep group by deployment_id, day;
  insert into usage_rollup_daily as x (deployment_id, day, org_id, orchestration_peak_concurrency)
    select deployment_id, (minute at time zone tz)::date, (array_agg(org_id))[1], max(jobs_running)
    from concurrency_minute where deployment_id = dep group by deployment_id, (minute at time zone tz)::date
    on conflict (deployment_id, day) do update set orchestration_peak_concurrency = excluded.orchestration_peak_concurrency;
  delete from usage_rollup_model_daily where deployment_id = dep;
  insert into usage_rollup_model_daily (deployment_id, day, provider, model_name, agent_type, org_id, requests, tokens_in, tokens_out,
      tokens_cache_read, tokens_cache_write, tokens_reasoning, cost_micro_usd, unpriced_requests)
    select deployment_id, day, provider, model_name, agent_type, (array_agg(org_id))[1], count(*), sum(model_tokens_in), sum(model_tokens_out),
      sum(model_tokens_cached_in), sum(model_tokens_cache_write), sum(model_tokens_reasoning), coalesce(sum(cost_micro_usd), 0),
      count(*) filter (where cost_micro_usd is null)
    from projector_rollup_job where deployment_id = dep and model_name is not null group by deployment_id, day, provider, model_name, agent_type;

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
