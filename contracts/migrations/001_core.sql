-- KACHING core schema. Runs with search_path set to the installation's schema (the namespace).
-- Numbering: 001-009 contracts, 010-019 ingest, 020-029 projector, 030-039 enforcer, 040-049 api.

create table org (
  org_id uuid primary key,
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

create table deployment (
  deployment_id uuid primary key,
  org_id uuid not null references org(org_id),
  name text not null check (length(name) between 1 and 200),
  timezone text not null default 'UTC',
  -- soft: warn + suggest only; hard: the budget/quota actions are binding for CHORUS
  enforcement text not null default 'soft' check (enforcement in ('soft', 'hard')),
  -- ucxl_addr segments redacted before append (by segment name, see ingest)
  redact_segments text[] not null default '{}',
  created_at timestamptz not null default now()
);
create index deployment_org_idx on deployment (org_id);

create table node (
  deployment_id uuid not null references deployment(deployment_id),
  node_id uuid not null,
  org_id uuid not null references org(org_id),
  hostname text not null,
  hw_class text,
  labels jsonb not null default '{}',
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  primary key (deployment_id, node_id)
);
create index node_org_idx on node (org_id);

create table agent (
  deployment_id uuid not null references deployment(deployment_id),
  agent_id uuid not null,
  org_id uuid not null references org(org_id),
  node_id uuid,
  agent_type text not null,
  version text,
  labels jsonb not null default '{}',
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  primary key (deployment_id, agent_id)
);
create index agent_org_idx on agent (org_id);
create index agent_type_idx on agent (deployment_id, agent_type);

-- One row per event identity (deployment, correlation id): the last revision wins.
create table job (
  deployment_id uuid not null references deployment(deployment_id),
  correlation_id text not null,
  org_id uuid not null references org(org_id),
  job_id uuid not null,
  agent_id uuid not null,
  node_id uuid not null,
  agent_type text not null,
  ucxl_addr text not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  status text not null check (status in ('running', 'succeeded', 'failed', 'canceled')),
  meta jsonb not null default '{}',
  flags jsonb not null default '{}',
  last_heartbeat_at timestamptz,
  -- contracts.revisionKey() of the applied revision: later revisions compare greater
  revision text not null,
  stream_seq bigint not null,
  primary key (deployment_id, correlation_id)
);
create index job_org_idx on job (org_id);
create index job_agent_idx on job (deployment_id, agent_id);
create index job_started_brin on job using brin (started_at);

-- Raw samples, one per event identity. Partitioned by the job's start (stable across revisions).
create table usage_sample (
  deployment_id uuid not null,
  correlation_id text not null,
  started_at timestamptz not null,
  org_id uuid not null,
  job_id uuid not null,
  agent_id uuid not null,
  node_id uuid not null,
  agent_type text not null,
  ended_at timestamptz,
  status text not null,
  cpu_seconds numeric(18,6) not null default 0,
  gpu_seconds numeric(18,6) not null default 0,
  ram_mb_peak numeric(18,3) not null default 0,
  disk_io_mb numeric(18,3) not null default 0,
  net_in_mb numeric(18,3) not null default 0,
  net_out_mb numeric(18,3) not null default 0,
  context_reads bigint not null default 0,
  context_writes bigint not null default 0,
  context_bytes_read bigint not null default 0,
  context_bytes_written bigint not null default 0,
  model_name text,
  provider text,
  model_tokens_in bigint not null default 0,
  model_tokens_out bigint not null default 0,
  model_tokens_cached_in bigint not null default 0,
  model_tokens_reasoning bigint not null default 0,
  flags jsonb not null default '{}',
  revision text not null,
  stream_seq bigint not null,
  primary key (deployment_id, correlation_id, started_at)
) partition by range (started_at);
create index usage_sample_started_brin on usage_sample using brin (started_at);
create index usage_sample_org_idx on usage_sample (org_id);
create index usage_sample_agent_idx on usage_sample (deployment_id, agent_id);

-- Creates the daily partitions of usage_sample covering [from_day, from_day + days). Idempotent.
create or replace function ensure_usage_partitions(from_day date, days integer) returns integer
language plpgsql as $$
declare
  d date;
  made integer := 0;
  part text;
begin
  for i in 0 .. greatest(days, 1) - 1 loop
    d := from_day + i;
    part := 'usage_sample_' || to_char(d, 'YYYYMMDD');
    if to_regclass(quote_ident(current_schema()) || '.' || part) is null then
      begin
        execute format('create table %I partition of usage_sample for values from (%L) to (%L)',
                       part, d::timestamptz at time zone 'UTC', (d + 1)::timestamptz at time zone 'UTC');
        made := made + 1;
      exception when duplicate_table then null; -- a concurrent caller made it
      end;
    end if;
  end loop;
  return made;
end $$;

create table usage_rollup_hourly (
  deployment_id uuid not null references deployment(deployment_id),
  bucket_start timestamptz not null,
  agent_type text not null,
  org_id uuid not null references org(org_id),
  cpu_seconds numeric(18,6) not null default 0,
  gpu_seconds numeric(18,6) not null default 0,
  ram_mb_peak numeric(18,3) not null default 0,
  disk_io_mb numeric(18,3) not null default 0,
  net_in_mb numeric(18,3) not null default 0,
  net_out_mb numeric(18,3) not null default 0,
  context_reads bigint not null default 0,
  context_writes bigint not null default 0,
  context_bytes_read bigint not null default 0,
  context_bytes_written bigint not null default 0,
  model_tokens_in bigint not null default 0,
  model_tokens_out bigint not null default 0,
  jobs bigint not null default 0,
  jobs_succeeded bigint not null default 0,
  jobs_failed bigint not null default 0,
  primary key (deployment_id, bucket_start, agent_type)
);
create index usage_rollup_hourly_brin on usage_rollup_hourly using brin (bucket_start);
create index usage_rollup_hourly_org_idx on usage_rollup_hourly (org_id);

create table usage_rollup_daily (
  deployment_id uuid not null references deployment(deployment_id),
  day date not null,
  org_id uuid not null references org(org_id),
  cpu_seconds numeric(18,6) not null default 0,
  gpu_seconds numeric(18,6) not null default 0,
  disk_io_mb numeric(18,3) not null default 0,
  net_in_mb numeric(18,3) not null default 0,
  net_out_mb numeric(18,3) not null default 0,
  context_reads bigint not null default 0,
  context_writes bigint not null default 0,
  context_bytes_read bigint not null default 0,
  context_bytes_written bigint not null default 0,
  model_tokens_in bigint not null default 0,
  model_tokens_out bigint not null default 0,
  jobs bigint not null default 0,
  jobs_succeeded bigint not null default 0,
  jobs_failed bigint not null default 0,
  seats_active integer not null default 0,
  nodes_active integer not null default 0,
  orchestration_peak_concurrency integer not null default 0,
  primary key (deployment_id, day)
);
create index usage_rollup_daily_brin on usage_rollup_daily using brin (day);
create index usage_rollup_daily_org_idx on usage_rollup_daily (org_id);

create table concurrency_minute (
  deployment_id uuid not null references deployment(deployment_id),
  minute timestamptz not null,
  org_id uuid not null references org(org_id),
  jobs_running integer not null check (jobs_running >= 0),
  primary key (deployment_id, minute)
);
create index concurrency_minute_brin on concurrency_minute using brin (minute);
create index concurrency_minute_org_idx on concurrency_minute (org_id);

-- Plan ladder. meta: {"rank":1,"limits":{"context_bytes_written":..,"seats":..},"features":{..},"price_usd_year":..}
create table pricing_plan (
  plan_id text primary key,
  name text not null,
  rank integer not null,
  meta jsonb not null default '{}'
);

create table license (
  license_id uuid primary key,
  org_id uuid not null references org(org_id),
  deployment_id uuid references deployment(deployment_id),
  plan_id text not null references pricing_plan(plan_id),
  seats_limit integer,
  nodes_limit integer,
  features jsonb not null default '{}',
  valid_from timestamptz not null,
  valid_to timestamptz not null,
  signed_blob bytea not null,
  activated_at timestamptz not null default now()
);
create index license_org_idx on license (org_id);
create index license_deployment_idx on license (deployment_id);

create table quota (
  quota_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  name text not null,
  metric text not null,
  period text not null check (period in ('daily', 'weekly', 'monthly', 'rolling_30d')),
  hard_limit numeric(24,6),
  soft_threshold numeric(24,6),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (deployment_id, name)
);
create index quota_org_idx on quota (org_id);

create table budget (
  budget_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  scope text not null,
  metric text not null,
  period text not null check (period in ('daily', 'weekly', 'monthly', 'rolling_30d')),
  limit_units numeric(24,6) not null check (limit_units >= 0),
  action text not null check (action in ('warn', 'throttle', 'block', 'fallback_model')),
  -- {"max_concurrency": 4} for throttle, {"model": "llama3.1:8b-q4"} for fallback_model
  action_params jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (deployment_id, scope)
);
create index budget_org_idx on budget (org_id);

create table feature_flag (
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  flag text not null,
  enabled boolean not null,
  source text not null default 'override' check (source in ('license', 'override')),
  primary key (deployment_id, flag)
);
create index feature_flag_org_idx on feature_flag (org_id);

create table alert (
  alert_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  -- one alert per decision: the unique key makes "never alert twice" a database fact
  decision_id text not null unique,
  created_at timestamptz not null default now(),
  severity text not null check (severity in ('info', 'warn', 'error')),
  code text not null,
  message text not null,
  context jsonb not null default '{}',
  acknowledged boolean not null default false,
  acknowledged_at timestamptz
);
create index alert_deployment_idx on alert (deployment_id, created_at desc);
create index alert_org_idx on alert (org_id);

create table suggestion (
  suggestion_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  decision_id text not null unique,
  created_at timestamptz not null default now(),
  kind text not null check (kind in ('upgrade_tier', 'enable_feature', 'tune_pipeline')),
  rationale text not null,
  target_plan text,
  diffs jsonb not null default '{}',
  status text not null default 'new' check (status in ('new', 'shown', 'accepted', 'dismissed')),
  shown_to_user boolean not null default false,
  accepted boolean
);
create index suggestion_deployment_idx on suggestion (deployment_id, created_at desc);
create index suggestion_org_idx on suggestion (org_id);

-- Secrets: only SHA-256 of the random secret part is stored; lookup by id, constant-time compare.
create table ingest_token (
  token_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  token_hash bytea not null,
  scopes text[] not null,
  label text,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz
);
create index ingest_token_deployment_idx on ingest_token (deployment_id);
create index ingest_token_org_idx on ingest_token (org_id);

create table api_key (
  key_id text primary key,
  org_id uuid not null references org(org_id),
  key_hash bytea not null,
  scopes text[] not null,
  label text,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz
);
create index api_key_org_idx on api_key (org_id);

-- Agent signing keys: raw 32-byte Ed25519 public keys with validity windows so rotations overlap.
create table agent_key (
  deployment_id uuid not null references deployment(deployment_id),
  key_id text not null,
  org_id uuid not null references org(org_id),
  public_key bytea not null check (length(public_key) = 32),
  valid_from timestamptz not null default now(),
  valid_to timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (deployment_id, key_id)
);
create index agent_key_org_idx on agent_key (org_id);

-- Model prices per 1M tokens in integer micro-USD, versioned; local models may price compute instead.
create table model_price (
  provider text not null,
  model_name text not null,
  version integer not null,
  effective_from timestamptz not null default now(),
  input_per_1m_micro_usd bigint not null default 0,
  output_per_1m_micro_usd bigint not null default 0,
  cached_input_per_1m_micro_usd bigint not null default 0,
  reasoning_per_1m_micro_usd bigint not null default 0,
  gpu_second_micro_usd bigint not null default 0,
  cpu_second_micro_usd bigint not null default 0,
  primary key (provider, model_name, version)
);

-- Checkpoint per consumer: the last stream sequence whose effect is committed.
create table projection_checkpoint (
  projection text primary key,
  last_seq bigint not null default 0,
  updated_at timestamptz not null default now()
);

-- Row-level security: the API runs org-scoped queries as this role with kaching.org_id set.
do $$
begin
  create role kaching_org_reader nologin;
exception when duplicate_object or unique_violation then null;
end $$;

create or replace function current_org() returns uuid language sql stable as
$$ select nullif(current_setting('kaching.org_id', true), '')::uuid $$;

do $$
declare t text;
begin
  execute format('grant usage on schema %I to kaching_org_reader', current_schema());
  foreach t in array array['org', 'deployment', 'node', 'agent', 'job', 'usage_sample', 'usage_rollup_hourly',
    'usage_rollup_daily', 'concurrency_minute', 'license', 'quota', 'budget', 'feature_flag', 'alert',
    'suggestion', 'ingest_token', 'api_key', 'agent_key'] loop
    execute format('alter table %I enable row level security', t);
    execute format('create policy org_isolation on %I to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org())', t);
    execute format('grant select, insert, update, delete on %I to kaching_org_reader', t);
  end loop;
  execute 'grant select on pricing_plan, model_price to kaching_org_reader';
end $$;
