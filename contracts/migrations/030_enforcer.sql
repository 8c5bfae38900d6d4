-- Enforcer state. Usage is kept exactly (numeric) per (deployment, metric, LOCAL day in the deployment's
-- timezone); every period window (daily, weekly, monthly, rolling_30d) is a range of local days, so
-- windows follow event timestamps and nothing ever resets. The checkpoint is projection_checkpoint
-- row 'enforcer', advanced in the same transaction as this state.

create table enforcer_usage_daily (
  deployment_id uuid not null references deployment(deployment_id),
  metric text not null,
  day date not null,
  org_id uuid not null references org(org_id),
  value numeric not null default 0,
  primary key (deployment_id, metric, day)
);
create index enforcer_usage_daily_org_idx on enforcer_usage_daily (org_id);

-- What each event identity currently contributes (its last applied revision), so a later revision moves
-- usage by the difference and an older late one changes nothing. Internal: no RLS.
create table enforcer_contribution (
  deployment_id uuid not null,
  correlation_id text not null,
  org_id uuid not null,
  revision text collate "C" not null,
  day date not null,
  node_id uuid not null,
  agent_id uuid not null,
  status text not null,
  model_name text,
  cost_micro_usd bigint,
  price_version integer,
  amounts jsonb not null,
  stream_seq bigint not null,
  primary key (deployment_id, correlation_id)
);
create index enforcer_contribution_day_idx on enforcer_contribution (deployment_id, day);
create index enforcer_contribution_running_idx on enforcer_contribution (deployment_id) where status = 'running';

-- Latest local day seen per deployment: late events for older days never overwrite a newer decision.
create table enforcer_deployment_state (
  deployment_id uuid primary key,
  latest_day date not null
);

-- Decision log: one row per deterministic decision id. The primary key makes "never twice" a fact.
create table enforcer_decision (
  decision_id text primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  code text not null,
  scope text not null,
  state text not null check (state in ('active', 'cleared', 'replaced')),
  window_start timestamptz,
  threshold numeric,
  decision jsonb not null,
  created_at timestamptz not null default now(),
  cleared_at timestamptz
);
create index enforcer_decision_scope_idx on enforcer_decision (deployment_id, scope) where state = 'active';
create index enforcer_decision_org_idx on enforcer_decision (org_id);
create index enforcer_decision_created_idx on enforcer_decision (deployment_id, created_at desc);

-- Outbox: decisions (and clears) committed with the state, published to NATS + KV after commit.
create table enforcer_outbox (
  outbox_id bigserial primary key,
  deployment_id uuid not null,
  decision_id text not null,
  msg_id text not null unique,
  kv_key text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  published_at timestamptz
);
create index enforcer_outbox_pending_idx on enforcer_outbox (outbox_id) where published_at is null;

-- Admission reservations: held estimates so concurrent checks cannot jointly overshoot a budget.
create table enforcer_reservation (
  reservation_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  scope text not null,
  units numeric not null check (units >= 0),
  correlation_id text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  settled_at timestamptz
);
create index enforcer_reservation_open_idx on enforcer_reservation (deployment_id, scope, expires_at) where settled_at is null;
create index enforcer_reservation_corr_idx on enforcer_reservation (deployment_id, correlation_id) where settled_at is null;
create index enforcer_reservation_org_idx on enforcer_reservation (org_id);

-- Notification targets: generic webhooks and Slack incoming webhooks, HMAC-signed with `secret`.
create table enforcer_webhook (
  webhook_id uuid primary key,
  org_id uuid not null references org(org_id),
  -- null: every deployment of the org
  deployment_id uuid references deployment(deployment_id),
  kind text not null check (kind in ('webhook', 'slack')),
  url text not null,
  secret text not null,
  codes text[],
  enabled boolean not null default true,
  created_at timestamptz not null default now()
);
create index enforcer_webhook_org_idx on enforcer_webhook (org_id);

-- One delivery per (decision, webhook), retried with exponential backoff by the notifier.
create table enforcer_notification (
  notification_id bigserial primary key,
  decision_id text not null,
  webhook_id uuid not null references enforcer_webhook(webhook_id) on delete cascade,
  org_id uuid not null,
  payload jsonb not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  delivered_at timestamptz,
  failed_at timestamptz,
  last_error text,
  unique (decision_id, webhook_id)
);
create index enforcer_notification_due_idx on enforcer_notification (next_attempt_at) where delivered_at is null and failed_at is null;

do $$
declare t text;
begin
  foreach t in array array['enforcer_usage_daily', 'enforcer_decision', 'enforcer_reservation', 'enforcer_webhook'] loop
    execute format('alter table %I enable row level security', t);
    execute format('create policy org_isolation on %I to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org())', t);
    execute format('grant select, insert, update, delete on %I to kaching_org_reader', t);
  end loop;
end $$;
