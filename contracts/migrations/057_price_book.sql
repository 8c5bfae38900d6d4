-- The price book: dated versions per (provider, model) in micro-USD per 1M tokens, synced from LiteLLM-format
-- files with a change log.
-- A version holds from effective_from until the next one (effective_to records the change or a removal).
-- cache read / cache write / reasoning: null = no price of its own (those tokens cost the input / output price).

-- micro-USD per 1M tokens with 6 decimals (1e-18 USD per token): LiteLLM publishes prices like 4.6875e-9 USD
-- per token (4687.5 micro-USD per 1M), which integer micro-USD per 1M tokens cannot hold.
alter table model_price alter column input_per_1m_micro_usd type numeric(30,6), alter column output_per_1m_micro_usd type numeric(30,6),
  alter column cached_input_per_1m_micro_usd type numeric(30,6), alter column reasoning_per_1m_micro_usd type numeric(30,6);
alter table model_price alter column cached_input_per_1m_micro_usd drop not null, alter column cached_input_per_1m_micro_usd drop default;
alter table model_price alter column reasoning_per_1m_micro_usd drop not null, alter column reasoning_per_1m_micro_usd drop default;
-- until now 0 meant "not set" for both (and cached tokens were then priced at nothing)
update model_price set cached_input_per_1m_micro_usd = null where cached_input_per_1m_micro_usd = 0;
update model_price set reasoning_per_1m_micro_usd = null where reasoning_per_1m_micro_usd = 0;
alter table model_price add column cache_write_per_1m_micro_usd numeric(30,6);
alter table model_price add column effective_to timestamptz;
-- prices above a prompt size: [{"above_input_tokens": 200000, "input": …, "output": …, "cache_read": …, "cache_write": …}]
alter table model_price add column tiers jsonb not null default '[]';
alter table model_price add column source text not null default 'manual';
-- what the source said, in its own terms (LiteLLM field → USD per token as written): the change log compares these
alter table model_price add column source_fields jsonb;
alter table model_price add column created_at timestamptz not null default now();
create index model_price_lookup_idx on model_price (provider, model_name, effective_from);

-- Explicit aliases: `alias` is a model name, or a pattern with * (any characters), priced as (provider, model_name)
-- when the book has no exact entry for the event's model. Listed with `kaching prices aliases`.
create table price_alias (
  alias text primary key check (length(alias) between 1 and 200),
  provider text not null,
  model_name text not null,
  created_at timestamptz not null default now()
);

create table price_sync (
  sync_id bigserial primary key,
  source text not null,
  sha256 text not null,
  effective_at timestamptz not null,
  synced_at timestamptz not null default now(),
  added integer not null default 0,
  removed integer not null default 0,
  changed integer not null default 0
);

-- One row per model added or removed and per field changed, in the source's own terms (LiteLLM field names,
-- USD per token as written there).
create table price_change (
  change_id bigserial primary key,
  sync_id bigint references price_sync(sync_id),
  provider text not null,
  model_name text not null,
  kind text not null check (kind in ('added', 'removed', 'changed')),
  field text,
  old_value text,
  new_value text,
  effective_at timestamptz not null,
  recorded_at timestamptz not null default now()
);
create index price_change_time_idx on price_change (effective_at, change_id);

-- Bumped by every change of prices or aliases. Consumers read it `for share` in each batch transaction (and
-- reload their book when it moved), so a writer's update waits for batches priced with the old book to commit.
create table price_book_state (
  id boolean primary key default true check (id),
  revision bigint not null
);
insert into price_book_state (revision) values (1);

-- What each revision may have changed: events attributed at or after reprice_from (-infinity: any time, e.g.
-- an alias) are re-priced by the consumers that hold costs, so live costs end where a replay would.
create table price_revision (
  revision bigint primary key,
  reprice_from timestamptz not null,
  reason text not null,
  created_at timestamptz not null default now()
);

-- The revision up to which a consumer ('projector', 'enforcer') has re-priced what it stores.
create table price_reprice_state (
  consumer text primary key,
  revision bigint not null
);
insert into price_reprice_state (consumer, revision) values ('projector', 1), ('enforcer', 1);

grant select on price_alias, price_change, price_sync, price_book_state, price_revision to kaching_org_reader;
