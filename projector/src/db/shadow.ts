import type pg from 'pg';
import { inTransaction, type ProjectionName } from '@kaching/contracts';
import { HourlyPartitionCache, ensureHourlyPartitions, ensurePartitions, hourlyMonths, nextMonth, utcDay, utcMonth } from './partitions.js';
import { LIVE, ORG_READABLE, OWNED, SHADOW_SUFFIX } from './tables.js';
import { recomputeAllPeaks } from '../projections/concurrency.js';
import { q } from '../projections/common.js';

/*
 * The shadow tables a replay builds and the swap that puts them in place of the live ones (replay.ts runs
 * the load and the catch-up around them).
 */

/** Empty `<table>__shadow` copies of the projection's tables, with RLS like the live ones. */
export async function createShadow(pool: pg.Pool, projection: ProjectionName, o: { indexes: boolean }): Promise<void> {
  for (const k of OWNED[projection]) {
    const live = LIVE[k] as string;
    const sh = `${live}${SHADOW_SUFFIX}`;
    await pool.query(`drop table if exists ${q(sh)}`);
    // partitioned like the live table (usage_sample by day, usage_rollup_hourly by month); children made as rows need them
    const key = await pool.query<{ def: string | null }>(`select pg_get_partkeydef(to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1))) as def`, [live]);
    const partitioned = key.rows[0]?.def ? ` partition by ${key.rows[0].def}` : '';
    await pool.query(`create table ${q(sh)} (like ${q(live)} including all${o.indexes ? '' : ' excluding indexes'})${partitioned}`);
    if (ORG_READABLE.has(live)) {
      await pool.query(`alter table ${q(sh)} enable row level security`);
      await pool.query(`create policy org_isolation on ${q(sh)} to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org())`);
      await pool.query(`grant select, insert, update, delete on ${q(sh)} to kaching_org_reader`);
    }
  }
}

async function children(client: pg.ClientBase, parent: string): Promise<string[]> {
  const r = await client.query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = to_regclass(quote_ident(current_schema()) || '.' || $1)`,
    [parent],
  );
  return r.rows.map((x) => x.name);
}

async function hasConstraint(client: pg.ClientBase, table: string, name: string): Promise<boolean> {
  const r = await client.query(
    `select 1 from pg_constraint where conrelid = to_regclass(quote_ident(current_schema()) || '.' || $1) and conname = $2`,
    [table, name],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Gives the shadow of every partitioned table the live table's foreign keys, validated (outside the swap's lock). */
export async function shadowForeignKeys(pool: pg.Pool, projection: ProjectionName): Promise<void> {
  for (const k of OWNED[projection]) {
    const live = LIVE[k] as string;
    const sh = `${live}${SHADOW_SUFFIX}`;
    const fks = await pool.query<{ name: string; def: string }>(
      `select conname as name, pg_get_constraintdef(c.oid) as def from pg_constraint c join pg_class t on t.oid = c.conrelid
       where c.conrelid = to_regclass(quote_ident(current_schema()) || '.' || $1) and c.contype = 'f' and t.relkind = 'p'`,
      [live],
    );
    for (const fk of fks.rows) {
      await pool.query(`alter table ${q(sh)} drop constraint if exists ${q(fk.name)}`);
      await pool.query(`alter table ${q(sh)} add constraint ${q(fk.name)} ${fk.def}`);
    }
  }
}

async function hasDependentViews(client: pg.ClientBase, table: string): Promise<boolean> {
  const r = await client.query(
    `select 1 from pg_depend d join pg_rewrite rw on rw.oid = d.objid
     where d.refobjid = to_regclass(quote_ident(current_schema()) || '.' || $1) and rw.ev_class <> d.refobjid limit 1`,
    [table],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function deploymentZones(pool: pg.Pool): Promise<Map<string, string>> {
  const r = await pool.query<{ deployment_id: string; timezone: string }>('select deployment_id, timezone from deployment');
  return new Map(r.rows.map((x) => [x.deployment_id, x.timezone]));
}

/**
 * The atomic swap. Returns null (nothing changed) when the live consumer is ahead of the shadow:
 * the caller keeps replaying and tries again.
 */
export async function trySwap(pool: pg.Pool, projection: ProjectionName, shadowSeq: number, zones: Map<string, string>, bookRevision: number): Promise<'rename' | 'copy' | null> {
  return inTransaction(pool, async (client) => {
    // every lane of the live projection, locked in one order; the shadow covers the whole stream up to shadowSeq
    const lanes = await client.query<{ last_seq: string }>('select last_seq from consumer_checkpoint where consumer = $1 order by lane for update', [projection]);
    const live = Math.max(0, ...lanes.rows.map((r) => Number(r.last_seq)));
    if (live > shadowSeq) {
      await client.query('rollback');
      return null;
    }
    const owned = OWNED[projection].map((k) => LIVE[k] as string);
    const lockList = owned.flatMap((t) => [q(t), q(`${t}${SHADOW_SUFFIX}`)]);
    await client.query(`lock table ${[...new Set(lockList)].join(', ')} in access exclusive mode`);
    let mode: 'rename' | 'copy' = 'rename';
    for (const t of owned) if (await hasDependentViews(client, t)) mode = 'copy';
    if (projection === 'rollups') await recomputeAllPeaks(client, LIVE.concurrency, `${LIVE.daily}${SHADOW_SUFFIX}`);
    for (const t of owned) {
      const sh = `${t}${SHADOW_SUFFIX}`;
      if (mode === 'copy') {
        // Views depend on the live table: keep its identity and copy the rows instead (still one transaction).
        if (t === LIVE.usageSample) {
          const days = await client.query<{ d: string }>(`select distinct to_char(started_at at time zone 'UTC', 'YYYY-MM-DD') as d from ${q(sh)}`);
          for (const { d } of days.rows) await ensurePartitions(client, t, d, 1);
        }
        if (t === LIVE.hourly) for (const m of await hourlyMonths(client, sh)) await ensureHourlyPartitions(client, t, m);
        await client.query(`truncate ${q(t)}`);
        await client.query(`insert into ${q(t)} select * from ${q(sh)}`);
        await client.query(`drop table ${q(sh)}`);
        continue;
      }
      const fks = await client.query<{ name: string; def: string }>(
        `select conname as name, pg_get_constraintdef(oid) as def from pg_constraint
         where conrelid = to_regclass(quote_ident(current_schema()) || '.' || $1) and contype = 'f'`,
        [t],
      );
      // the months the live table had stay (a writer's HourlyPartitionCache remembers them)
      const months = t === LIVE.hourly ? (await children(client, t)).flatMap((c) => /_(\d{4})(\d{2})$/.exec(c)?.slice(1, 3).join('-') ?? []) : [];
      for (const c of await children(client, t)) await client.query(`alter table ${q(c)} rename to ${q(`${c}__old`)}`);
      await client.query(`alter table ${q(t)} rename to ${q(`${t}__old`)}`);
      await client.query(`alter table ${q(sh)} rename to ${q(t)}`);
      for (const c of await children(client, t)) {
        if (c.startsWith(sh)) await client.query(`alter table ${q(c)} rename to ${q(t + c.slice(sh.length))}`);
      }
      await client.query(`drop table ${q(`${t}__old`)}`);
      // Foreign keys are not copied by LIKE; the rows came from validated events, so skip re-validation (a
      // partitioned table got them validated before the swap, see shadowForeignKeys).
      for (const fk of fks.rows) {
        if (!(await hasConstraint(client, t, fk.name))) await client.query(`alter table ${q(t)} add constraint ${q(fk.name)} ${fk.def} not valid`);
      }
      if (t === LIVE.hourly) {
        for (const m of months) await ensureHourlyPartitions(client, t, m);
        const now = utcMonth(Date.now());
        await ensureHourlyPartitions(client, t, now, nextMonth(now));
      }
    }
    if (projection === 'raw') await ensurePartitions(client, LIVE.usageSample, utcDay(Date.now() - 86_400_000), 9);
    if (projection === 'concurrency') await recomputeAllPeaks(client, LIVE.concurrency, LIVE.daily);
    if (projection === 'rollups') {
      // a timezone changed while the shadow was built: its days are re-derived from the per-identity state
      const now = await client.query<{ deployment_id: string; timezone: string }>('select deployment_id, timezone from deployment order by deployment_id for share');
      for (const d of now.rows) {
        if (zones.has(d.deployment_id) && zones.get(d.deployment_id) !== d.timezone) await client.query('select rebuild_deployment_days($1)', [d.deployment_id]);
      }
    }
    await client.query('update consumer_checkpoint set last_seq = $2, updated_at = now() where consumer = $1', [projection, shadowSeq]);
    // the swapped-in costs are the book's at the replay's start: price changes since then are re-priced again
    if (projection !== 'concurrency') await client.query(`update price_reprice_state set revision = least(revision, $1) where consumer = 'projector'`, [bookRevision]);
    await client.query('delete from projection_checkpoint where projection = $1', [`${projection}${SHADOW_SUFFIX}`]);
    return mode;
  });
}
