-- HQ sync. Installation side: the outbox of redacted daily rollups and the pusher's state.
-- HQ side: registered installations (client-certificate fingerprints) and what they pushed.
-- None of these tables is org-scoped: the operator (and HQ's operator) reads them, no org role can.

-- One row per (deployment, day) of usage_rollup_daily, holding exactly the redacted row HQ
-- receives. revision grows whenever the row's content changes (or the row disappears: deleted);
-- a row is pending while revision > pushed_revision.
create table hq_outbox (
  deployment_id uuid not null,
  day date not null,
  -- md5 over the policy's fields as last read, 'deleted' for a tombstone
  content_hash text not null,
  revision bigint not null,
  payload jsonb not null,
  pushed_revision bigint not null default 0,
  pushed_at timestamptz,
  primary key (deployment_id, day)
);
create index hq_outbox_pending_idx on hq_outbox (revision) where revision > pushed_revision;

create table hq_sync_state (
  singleton boolean primary key default true check (singleton),
  last_attempt_at timestamptz,
  last_success_at timestamptz,
  last_error text,
  consecutive_failures integer not null default 0,
  rows_pushed bigint not null default 0
);

-- HQ: who may push. The client certificate's SHA-256 fingerprint identifies the installation.
create table hq_installation (
  installation_id uuid primary key,
  name text not null check (length(name) between 1 and 200),
  cert_sha256 bytea not null unique check (length(cert_sha256) = 32),
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  last_push_at timestamptz
);

-- HQ: the latest revision of each pushed row. Tombstones stay (deleted) so that an older revision
-- arriving late cannot bring a row back.
create table hq_rollup_daily (
  installation_id uuid not null references hq_installation(installation_id),
  deployment text not null,
  day date not null,
  org text not null,
  revision bigint not null,
  deleted boolean not null default false,
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
  received_at timestamptz not null default now(),
  primary key (installation_id, deployment, day)
);
create index hq_rollup_daily_day_idx on hq_rollup_daily (day);
