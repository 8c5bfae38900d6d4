import type pg from 'pg';
import { q } from '../projections/common.js';
import type { Decoded } from '../records.js';

const DAY_MS = 86_400_000;

export function utcDay(ts: string | number | Date): string {
  // A UTC timestamp names its day already (the common case on the hot path); others go through Date.
  if (typeof ts === 'string' && /^\d{4}-\d{2}-\d{2}T[^+-]*Z$/i.test(ts)) return ts.slice(0, 10);
  return new Date(ts).toISOString().slice(0, 10);
}

/** "2026-12" for any timestamp: the UTC month, which names a partition of usage_rollup_hourly. */
export function utcMonth(ts: string | number | Date): string {
  if (typeof ts === 'string' && /^\d{4}-\d{2}-\d{2}T[^+-]*Z$/i.test(ts)) return ts.slice(0, 7);
  return new Date(ts).toISOString().slice(0, 7);
}

/** The month after `month` ("2026-12" -> "2027-01"). */
export function nextMonth(month: string): string {
  return new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)), 1)).toISOString().slice(0, 7);
}

/** The UTC months of the hourly buckets a batch's usage events fall in (the attribution instant, see rollups.ts). */
export function attributionMonths(batch: Iterable<Decoded | null>): string[] {
  const months = new Set<string>();
  for (const d of batch) {
    if (d?.record.kind === 'usage') months.add(utcMonth(d.record.usage.job.ended_at ?? d.record.usage.job.started_at));
  }
  return [...months];
}

/**
 * Monthly partitions of usage_rollup_hourly (or a shadow copy of it) named `<parent>_<yyyymm>`, created by the
 * schema's ensure_hourly_partitions() for every month from `fromMonth` through `toMonth` ("2026-12").
 */
export async function ensureHourlyPartitions(db: pg.Pool | pg.ClientBase, parent: string, fromMonth: string, toMonth = fromMonth): Promise<void> {
  await db.query(`select ensure_hourly_partitions($1::timestamptz, $2::timestamptz, $3)`, [`${fromMonth}-01T00:00:00Z`, `${toMonth}-01T00:00:00Z`, parent]);
}

/** The UTC months ("2026-12") that rows of an hourly rollup table (live or shadow) fall in. */
export async function hourlyMonths(db: pg.Pool | pg.ClientBase, table: string): Promise<string[]> {
  const r = await db.query<{ m: string }>(`select distinct to_char(bucket_start at time zone 'UTC', 'YYYY-MM') as m from ${q(table)} order by 1`);
  return r.rows.map((x) => x.m);
}

/**
 * Remembers which monthly partitions of the hourly rollups exist so a batch costs a catalog round-trip only
 * for a new month. A month it wrongly believes in (dropped by retention, or gone with a replay swap) still
 * does not fail a batch: the merge ensures its months itself (rollupsMerge), only inside its transaction.
 */
export class HourlyPartitionCache {
  private readonly known = new Set<string>();
  constructor(private readonly parent: string) {}

  async ensure(pool: pg.Pool | pg.ClientBase, months: Iterable<string>): Promise<void> {
    const missing = [...new Set(months)].filter((m) => !this.known.has(m)).sort();
    for (const m of missing) {
      await ensureHourlyPartitions(pool, this.parent, m);
      this.known.add(m);
    }
  }

  forget(): void {
    this.known.clear();
  }
}

/**
 * Retention of the hourly rollups: drops the monthly partitions of `parent` lying entirely before `cutoff`
 * (ISO instant) and deletes the rows before it in the month it falls in. Returns the dropped partitions and
 * the rows removed in all (counted before a partition goes).
 */
export async function pruneHourly(pool: pg.Pool, parent: string, cutoff: string): Promise<{ dropped: string[]; rows: number }> {
  const r = await pool.query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1)) order by 1`,
    [parent],
  );
  const re = new RegExp(`^${parent}_(\\d{4})(\\d{2})$`);
  const dropped: string[] = [];
  let rows = 0;
  for (const { name } of r.rows) {
    const m = re.exec(name);
    if (!m) continue;
    // the partition of month M holds [M, M+1): entirely older than the cutoff when M+1 <= cutoff
    const end = Date.UTC(Number(m[1]), Number(m[2]), 1);
    if (end > Date.parse(cutoff)) continue;
    rows += Number((await pool.query<{ n: string }>(`select count(*) as n from ${q(name)}`)).rows[0]!.n);
    await pool.query(`drop table if exists ${q(name)}`);
    dropped.push(name);
  }
  const del = await pool.query(`delete from ${q(parent)} where bucket_start < $1::timestamptz`, [cutoff]);
  return { dropped, rows: rows + (del.rowCount ?? 0) };
}

/** Remembers which daily partitions exist so a batch costs a catalog round-trip only for new days. */
export class PartitionCache {
  private readonly known = new Set<string>();
  constructor(private readonly parent: string) {}

  async ensure(pool: pg.Pool | pg.ClientBase, days: Iterable<string>): Promise<void> {
    const missing = [...new Set(days)].filter((d) => !this.known.has(d)).sort();
    for (const d of missing) {
      await ensurePartitions(pool, this.parent, d, 1);
      this.known.add(d);
    }
  }

  forget(): void {
    this.known.clear();
  }
}

/**
 * Daily partitions of `parent` named `<parent>_<yyyymmdd>`. The live table uses the schema's own
 * ensure_usage_partitions(); shadow copies (replay) get the same layout under their own name.
 */
export async function ensurePartitions(db: pg.Pool | pg.ClientBase, parent: string, fromDay: string, days: number): Promise<void> {
  if (parent === 'usage_sample') {
    await db.query('select ensure_usage_partitions($1::date, $2)', [fromDay, days]);
    return;
  }
  for (let i = 0; i < Math.max(days, 1); i++) {
    const d = new Date(Date.parse(`${fromDay}T00:00:00Z`) + i * DAY_MS);
    const next = new Date(d.getTime() + DAY_MS);
    const name = `${parent}_${d.toISOString().slice(0, 10).replace(/-/g, '')}`;
    await db
      .query(`create table if not exists ${q(name)} partition of ${q(parent)} for values from ('${d.toISOString()}') to ('${next.toISOString()}')`)
      .catch((e: { code?: string }) => {
        if (e.code !== '42P07') throw e; // created concurrently
      });
  }
}

/**
 * Drops partitions of `parent` whose whole day lies before now - retentionDays and that `canDrop` allows
 * (usage_sample: every row archived). Returns dropped names; `kept` gets those past retention kept.
 */
export async function dropOldPartitions(pool: pg.Pool, parent: string, retentionDays: number, now = Date.now(), canDrop: (name: string) => Promise<boolean> = async () => true, kept: string[] = []): Promise<string[]> {
  const cutoff = utcDay(now - retentionDays * DAY_MS).replace(/-/g, '');
  const r = await pool.query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = to_regclass(quote_ident(current_schema()) || '.' || $1)`,
    [parent],
  );
  const re = new RegExp(`^${parent}_(\\d{8})$`);
  const dropped: string[] = [];
  for (const { name } of r.rows) {
    const m = re.exec(name);
    // the partition for day D holds [D, D+1): it is entirely older than the cutoff when D < cutoff day
    if (m && m[1]! < cutoff) {
      if (!(await canDrop(name))) {
        kept.push(name);
        continue;
      }
      await pool.query(`drop table if exists ${q(name)}`);
      dropped.push(name);
    }
  }
  return dropped;
}
