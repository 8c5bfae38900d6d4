-- Billing forwarding (issue 18 item 4). The rollups projection writes what billing must be told into an
-- outbox in the SAME transaction as the rollup batch and its checkpoint (and the re-pricing chunk that changed
-- a cost), so a crash never loses or doubles a record; a forwarder loop in the projector sends the rows.

-- Per run (usage identity): what billing has been told so far. Never truncated by a projection rebuild, so a
-- replay or a handler-version rebuild re-derives the same costs and enqueues nothing new.
create table billing_run (
  deployment_id uuid not null,
  correlation_id text not null,
  org_id uuid not null,
  -- revision and total cost of the last record enqueued for this run
  revision text not null,
  cost_micro_usd bigint not null,
  -- records enqueued for this run (1 = the usage record, then one per correction)
  records integer not null,
  record jsonb not null,
  updated_at timestamptz not null default now(),
  primary key (deployment_id, correlation_id)
);

create table billing_outbox (
  delivery_id bigserial primary key,
  -- stable across replays and redelivery: sha256 of deployment/correlation/revision (/n for the n-th correction)
  idempotency_key text not null unique,
  kind text not null check (kind in ('usage', 'correction')),
  org_id uuid not null,
  deployment_id uuid not null,
  correlation_id text not null,
  revision text not null,
  -- the run's total cost after this record, and what it adds to what billing was told before
  cost_micro_usd bigint not null,
  delta_micro_usd bigint not null,
  -- format-neutral record; the adapters (BILLING_FORMAT) shape the request body from it at send time
  record jsonb not null,
  occurred_at timestamptz not null,
  status text not null default 'pending' check (status in ('pending', 'sent', 'dead')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_status integer,
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);
create index billing_outbox_due_idx on billing_outbox (next_attempt_at) where status = 'pending';
create index billing_outbox_org_idx on billing_outbox (org_id, status, delivery_id);
-- the backlog gauge counts pending and dead rows without reading the sent ones
create index billing_outbox_unsent_idx on billing_outbox (status) where status <> 'sent';

-- Stripe-style customer mapping: the billing system's customer id of an organisation (default: the org id).
alter table org add column billing_customer_id text;

alter table billing_outbox enable row level security;
create policy org_isolation on billing_outbox to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org());
grant select, update on billing_outbox to kaching_org_reader;
