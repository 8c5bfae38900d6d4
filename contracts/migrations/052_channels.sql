-- Notification channels get an API and CLI: a name, a severity filter, and a Standard Webhooks secret
-- (`whsec_...`) stored AES-256-GCM encrypted under the installation's channel key (never in clear text).
-- Rows from before keep their clear `secret` until they are re-created; the notifier reads either.
alter table enforcer_webhook add column name text;
alter table enforcer_webhook add column severities text[];
alter table enforcer_webhook add column secret_enc bytea;
alter table enforcer_webhook alter column secret drop not null;
alter table enforcer_webhook add constraint enforcer_webhook_secret_check check (secret is not null or secret_enc is not null);
create index enforcer_webhook_deployment_idx on enforcer_webhook (deployment_id);

-- The key channel secrets are encrypted with: one row, readable by the services only (no org role grant).
create table channel_key (
  singleton boolean primary key default true check (singleton),
  key bytea not null check (octet_length(key) = 32),
  created_at timestamptz not null default now()
);

-- The delivery log: what the last attempt answered and when; deliveries stay queued (backing off) until
-- delivered or older than the notifier's give-up age. Test messages are deliveries too (decision_id test:...).
alter table enforcer_notification add column created_at timestamptz not null default now();
alter table enforcer_notification add column last_attempt_at timestamptz;
alter table enforcer_notification add column last_status integer;
create index enforcer_notification_webhook_idx on enforcer_notification (webhook_id, notification_id desc);

alter table enforcer_notification enable row level security;
create policy org_isolation on enforcer_notification to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org());
grant select, insert, update, delete on enforcer_notification to kaching_org_reader;
grant usage on sequence enforcer_notification_notification_id_seq to kaching_org_reader;
