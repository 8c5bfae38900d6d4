-- Feature flags get an API: who set a flag and when, and whether it was an operator override
-- (a flag switching on a feature the license does not grant counts only with override = true).
alter table feature_flag add column override boolean not null default false;
alter table feature_flag add column updated_at timestamptz not null default now();
alter table feature_flag add column updated_by text;

-- "Who to upsell this week": near-limit alerts of the last days, across orgs.
create index if not exists alert_code_created_idx on alert (code, created_at desc);
