-- Consumers shared by many instances (issue 16): partitions, an instance registry, leases with fencing
-- tokens and per-(consumer, lane) checkpoints. Internal tables (no RLS: never read by orgs).
-- Leases live in Postgres, not NATS KV, because each consumer commits its effect and its checkpoint in
-- one Postgres transaction: the fence must be checked inside that same transaction.

-- Partition count history. The newest row is the count ingest publishes with. start_seq is the events
-- stream's last sequence when the row was written: no message of a count first used here lies at or below it.
create table event_partitioning (
  epoch bigserial primary key,
  partitions integer not null check (partitions between 1 and 1024),
  start_seq bigint not null default 0,
  created_at timestamptz not null default now()
);

-- Every running service instance, heartbeating. expires_at is database time: clocks of hosts never meet.
create table kaching_instance (
  instance_id text primary key,
  role text not null,
  consumers text[] not null default '{}',
  -- ingest: the partitioning epoch it publishes with (old-count lanes drain once no instance uses them)
  partition_epoch bigint,
  host text not null,
  pid integer not null,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index kaching_instance_role_idx on kaching_instance (role, expires_at);

-- One lease per (consumer, lane). fence grows by one at every acquisition; a batch commits only while
-- its fence is still the lease's fence, so an instance paused past its lease commits nothing after it.
create table consumer_lease (
  consumer text not null,
  lane text not null,
  owner text,
  fence bigint not null default 0,
  expires_at timestamptz not null default '-infinity',
  acquired_at timestamptz,
  -- what the owner last saw still to read in the lane (for status)
  pending bigint,
  pending_at timestamptz,
  primary key (consumer, lane)
);

-- Checkpoint per (consumer, lane): every message of the lane up to last_seq (stream sequence) has its
-- effect committed. handler_version: a consumer whose logic changed rebuilds its state from the stream.
create table consumer_checkpoint (
  consumer text not null,
  lane text not null,
  last_seq bigint not null default 0,
  handler_version integer not null default 1,
  -- an old-count lane that was drained after the count changed (read again if the count comes back)
  retired_at timestamptz,
  -- fence of the lease under which last_seq was committed
  committed_fence bigint,
  updated_at timestamptz not null default now(),
  primary key (consumer, lane)
);

-- An upgraded installation resumes where it was: the old per-projection checkpoint covered the whole
-- stream, which before partitions held only legacy subjects. Replay's shadow rows stay where they are.
insert into consumer_checkpoint (consumer, lane, last_seq, updated_at)
  select projection, 'legacy', last_seq, updated_at from projection_checkpoint where projection not like '%\_\_shadow';
delete from projection_checkpoint where projection not like '%\_\_shadow';
