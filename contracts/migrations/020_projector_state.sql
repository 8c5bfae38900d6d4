-- Projector private state: what each projection contributed per event identity, so a later revision
-- moves rollups and the concurrency index by the difference. Internal tables (no RLS: never read by orgs).

-- End of a job's running interval: a running job extends to its latest heartbeat or reported end;
-- a finished one ends at ended_at. greatest() absorbs accepted clock skew (ended_at < started_at).
create or replace function projector_job_end(started_at timestamptz, ended_at timestamptz, status text, heartbeat_at timestamptz)
returns timestamptz language sql immutable as $$
  select case when status = 'running' then greatest(started_at, ended_at, heartbeat_at)
              else greatest(started_at, ended_at) end
$$;

-- rollups: one row per usage identity = the revision applied and the amounts it put in the buckets.
create table projector_rollup_job (
  deployment_id uuid not null,
  correlation_id text not null,
  org_id uuid not null,
  revision text not null,
  bucket_start timestamptz not null,
  day date not null,
  agent_type text not null,
  agent_id uuid not null,
  node_id uuid not null,
  status text not null,
  cpu_seconds numeric(18,6) not null,
  gpu_seconds numeric(18,6) not null,
  ram_mb_peak numeric(18,3) not null,
  disk_io_mb numeric(18,3) not null,
  net_in_mb numeric(18,3) not null,
  net_out_mb numeric(18,3) not null,
  context_reads bigint not null,
  context_writes bigint not null,
  context_bytes_read bigint not null,
  context_bytes_written bigint not null,
  model_tokens_in bigint not null,
  model_tokens_out bigint not null,
  primary key (deployment_id, correlation_id)
);
-- hourly ram_mb_peak is recomputed from here when a revision lowers a bucket's max
create index projector_rollup_job_bucket_idx on projector_rollup_job (deployment_id, bucket_start, agent_type, ram_mb_peak);

-- rollups: distinct agents/nodes per day kept exact under revisions by reference counts.
create table projector_rollup_member (
  deployment_id uuid not null,
  day date not null,
  kind text not null check (kind in ('agent', 'node')),
  member_id uuid not null,
  refs integer not null,
  primary key (deployment_id, day, kind, member_id)
);

-- concurrency: the minute interval each identity currently occupies in concurrency_minute.
create table projector_concurrency_job (
  deployment_id uuid not null,
  correlation_id text not null,
  org_id uuid not null,
  revision text not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  status text not null,
  heartbeat_at timestamptz,
  from_minute timestamptz not null,
  to_minute timestamptz not null,
  primary key (deployment_id, correlation_id)
);
