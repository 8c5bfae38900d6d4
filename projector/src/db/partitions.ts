import type pg from 'pg';
import { q } from '../projections/common.js';

const DAY_MS = 86_400_000;

export function utcDay(ts: string | number | Date): string {
  // A UTC timestamp names its day already (the common case on the hot path); others go through Date.
  if (typeof ts === 'string' && /^\d{4}-\d{2}-\d{2}T[^+-]*Z$/i.test(ts)) return ts.slice(0, 10);
  return new Date(ts).toISOString().slice(0, 10);
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
