-- Hourly rollups partitioned by month of bucket_start (issue 15 item 7): retention drops whole months
-- instead of deleting rows, and a month's rows sit together. No DEFAULT partition: one would have to be
-- scanned (and emptied) before every new month could be created. Writers ensure the months they write
-- first (projector/src/db/partitions.ts); a month nobody ensured fails the insert loudly.

-- Creates the monthly partitions of `parent` (the live table, or a replay's shadow copy) named
-- `<parent>_<yyyymm>` covering every UTC month from from_ts's through to_ts's. Idempotent.
create or replace function ensure_hourly_partitions(from_ts timestamptz, to_ts timestamptz, parent text default 'usage_rollup_hourly')
returns integer language plpgsql as $$
declare
  m timestamp := date_trunc('month', from_ts at time zone 'UTC'); -- UTC wall time: months do not depend on the session zone
  made integer := 0;
  part text;
begin
  while m <= to_ts at time zone 'UTC' loop
    part := parent || '_' || to_char(m, 'YYYYMM');
    if to_regclass(quote_ident(current_schema()) || '.' || quote_ident(part)) is null then
      begin
        execute format('create table %I partition of %I for values from (%L) to (%L)',
                       part, parent, m at time zone 'UTC', (m + interval '1 month') at time zone 'UTC');
        made := made + 1;
      exception when duplicate_table or unique_violation then null; -- a concurrent caller made it
      end;
    end if;
    m := m + interval '1 month';
  end loop;
  return made;
end $$;

-- Postgres cannot partition a table in place: build the partitioned table beside the old one, move the
-- rows, and give it everything the old one had (keys, indexes, foreign keys, RLS policy, grants). Views
-- over the old table are recreated over the new one.
do $$
declare
  old regclass;
  r record;
  fks text[] := '{}';
  acl text[] := '{}';
  views text[] := '{}';
  stmt text;
begin
  old := 'usage_rollup_hourly'::regclass;
  -- views reading the table (created by operators: KACHING has none); definitions are taken before the rename
  for r in
    select distinct v.oid, format('%I.%I', n.nspname, v.relname) as name, v.relkind, pg_get_viewdef(v.oid) as def
    from pg_depend d join pg_rewrite rw on rw.oid = d.objid join pg_class v on v.oid = rw.ev_class
      join pg_namespace n on n.oid = v.relnamespace
    where d.refobjid = old and v.oid <> old
  loop
    views := views || format('create %s %s as %s', case r.relkind when 'm' then 'materialized view' else 'view' end, r.name, r.def);
    views := views || array(
      select format('grant %s on %s to %s', a.privilege_type, r.name, case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end)
      from pg_class c, aclexplode(c.relacl) a where c.oid = r.oid and a.grantee <> c.relowner);
    execute format('drop %s %s', case r.relkind when 'm' then 'materialized view' else 'view' end, r.name);
  end loop;
  fks := array(select format('alter table usage_rollup_hourly add constraint %I %s', conname, pg_get_constraintdef(oid))
               from pg_constraint where conrelid = old and contype = 'f');
  acl := array(select format('grant %s on usage_rollup_hourly to %s', a.privilege_type,
                             case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end)
               from pg_class c, aclexplode(c.relacl) a where c.oid = old and a.grantee <> c.relowner);

  alter table usage_rollup_hourly rename to usage_rollup_hourly__unpartitioned;
  -- its key and indexes go with it (their names are wanted for the new table's)
  for r in select conname from pg_constraint where conrelid = old and contype in ('p', 'u') loop
    execute format('alter table usage_rollup_hourly__unpartitioned drop constraint %I', r.conname);
  end loop;
  for r in select indexrelid::regclass::text as name from pg_index where indrelid = old loop
    execute format('drop index %s', r.name);
  end loop;

  create table usage_rollup_hourly (like usage_rollup_hourly__unpartitioned including all excluding indexes)
    partition by range (bucket_start);
  -- the months of the rows already there, and last, this and next month for the writers to come
  for r in select distinct date_trunc('month', bucket_start at time zone 'UTC') at time zone 'UTC' as m from usage_rollup_hourly__unpartitioned loop
    perform ensure_hourly_partitions(r.m, r.m);
  end loop;
  perform ensure_hourly_partitions(((now() at time zone 'UTC') - interval '1 month') at time zone 'UTC', ((now() at time zone 'UTC') + interval '1 month') at time zone 'UTC');
  insert into usage_rollup_hourly select * from usage_rollup_hourly__unpartitioned;
  drop table usage_rollup_hourly__unpartitioned;

  alter table usage_rollup_hourly add constraint usage_rollup_hourly_pkey primary key (deployment_id, bucket_start, agent_type);
  create index usage_rollup_hourly_brin on usage_rollup_hourly using brin (bucket_start);
  create index usage_rollup_hourly_org_idx on usage_rollup_hourly (org_id);
  -- validated again: Postgres 15 cannot add a NOT VALID foreign key to a partitioned table
  foreach stmt in array fks || acl || views loop
    execute stmt;
  end loop;
  alter table usage_rollup_hourly enable row level security;
  create policy org_isolation on usage_rollup_hourly to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org());
end $$;
