-- The archive (issue 15): JetStream is the hot tier, immutable Parquet segments hold everything.
-- Internal tables (no RLS: never read by orgs). The archive itself (segments + per-lane manifests) lives in
-- KACHING_ARCHIVE_DIR or KACHING_ARCHIVE_URL; these rows only let the rest of the system reason about it.

-- Head of each lane's manifest hash chain, written in the transaction that moves the archiver's checkpoint:
-- `kaching archive verify` finds this entry in the manifest, so a truncated or rewritten manifest shows.
create table archive_head (
  lane text primary key,
  last_seq bigint not null,
  entry_hash text not null,
  segments bigint not null,
  bytes bigint not null,
  updated_at timestamptz not null default now()
);

-- One row: what the archive covers, computed from the archiver's checkpoints and the stream.
-- archived_through: every events-stream message at or below this sequence is in a published segment
-- (usage_sample partitions are dropped only below it). lagging_since: the lag is at or above the alert
-- threshold since then; alert_since: the lag alert is raised (it stayed there KACHING_ARCHIVE_LAG_ALERT_AFTER).
create table archive_state (
  id boolean primary key default true check (id),
  archived_through bigint not null default 0,
  lag_events bigint,
  stream_last_seq bigint,
  checked_at timestamptz,
  lagging_since timestamptz,
  alert_since timestamptz
);

-- Lag alerts (the archiver fell behind or stopped): one row per episode, cleared when it caught up.
create table archive_alert (
  alert_id bigserial primary key,
  raised_at timestamptz not null default now(),
  cleared_at timestamptz,
  lag_events bigint not null,
  threshold bigint not null,
  message text not null
);
