import type pg from 'pg';
import { archivedThrough, type ProjectionName } from '@kaching/contracts';
import { dropOldPartitions, ensureHourlyPartitions, ensurePartitions, nextMonth, pruneHourly, utcDay, utcMonth } from './db/partitions.js';
import { q } from './projections/common.js';

export interface MaintenanceResult {
  created: string;
  dropped: string[];
  /** Partitions past retention kept because some of their rows are not archived yet. */
  kept: string[];
  /** Monthly partitions of usage_rollup_hourly dropped past the rollup retention. */
  droppedHourly: string[];
  /** Rows deleted past retention, per table. */
  pruned: Record<string, number>;
}

export interface MaintenanceOptions {
  retentionDays: number;
  partitionsAhead: number;
  /** Rollups, the concurrency index and their per-identity state are kept this many months (0 = for ever). */
  rollupRetentionMonths?: number;
  /** Which projections this process owns: each prunes only its own tables. Default: all. */
  projections?: readonly ProjectionName[];
  now?: number;
}

/**
 * Creates usage_sample partitions from yesterday to `ahead` days out, drops those past the raw retention with
 * the jobs only they described (only a partition whose every row is archived), and deletes rollup rows past the
 * rollup retention. Nothing pruned here can
 * change again: ingest refuses events older than its maximum age, far inside either window.
 */
export async function maintainPartitions(pool: pg.Pool, opts: MaintenanceOptions): Promise<MaintenanceResult> {
  const now = opts.now ?? Date.now();
  const owns = (p: ProjectionName) => !opts.projections || opts.projections.includes(p);
  const pruned: Record<string, number> = {};
  let dropped: string[] = [];
  const kept: string[] = [];
  let created = '';
  let droppedHourly: string[] = [];
  if (owns('rollups')) {
    // this month's and next month's hourly partitions exist before a batch needs them
    const month = utcMonth(now);
    await ensureHourlyPartitions(pool, 'usage_rollup_hourly', month, nextMonth(month));
  }
  if (owns('raw')) {
    const from = utcDay(now - 86_400_000);
    await ensurePartitions(pool, 'usage_sample', from, opts.partitionsAhead + 2);
    created = `${from}+${opts.partitionsAhead + 2}d`;
    if (opts.retentionDays > 0) {
      // a partition goes only when every row in it is archived: until then the raw samples are the last copy
      let through: number | null = null;
      const archived = async (name: string) => {
        through ??= await archivedThrough(pool);
        const r = await pool.query<{ m: string | null }>(`select max(stream_seq) as m from ${q(name)}`);
        return r.rows[0]?.m == null || Number(r.rows[0].m) <= through;
      };
      dropped = await dropOldPartitions(pool, 'usage_sample', opts.retentionDays, now, archived, kept);
      // a job goes with its raw samples: finished (or silent) before the window, and no sample left
      const cutoff = new Date(now - opts.retentionDays * 86_400_000).toISOString();
      const r = await pool.query(
        `delete from job j where coalesce(j.ended_at, j.last_heartbeat_at, j.started_at) < $1
           and not exists (select 1 from usage_sample s where s.deployment_id = j.deployment_id and s.correlation_id = j.correlation_id)`,
        [cutoff],
      );
      pruned.job = r.rowCount ?? 0;
    }
  }
  const months = opts.rollupRetentionMonths ?? 0;
  if (months > 0) {
    const cut = new Date(now);
    cut.setUTCMonth(cut.getUTCMonth() - months);
    const day = utcDay(cut);
    const at = `${day}T00:00:00Z`;
    const tables: [ProjectionName, string, string][] = [
      ['rollups', 'usage_rollup_daily', 'day < $1::date'],
      ['rollups', 'usage_rollup_model_daily', 'day < $1::date'],
      ['rollups', 'projector_rollup_job', 'day < $1::date'],
      ['rollups', 'projector_rollup_member', 'day < $1::date'],
      ['concurrency', 'concurrency_minute', 'minute < $1::timestamptz'],
      ['concurrency', 'projector_concurrency_job', 'to_minute < $1::timestamptz'],
    ];
    if (owns('rollups')) {
      // whole months go as partitions; only the month the cutoff falls in loses rows one by one
      const h = await pruneHourly(pool, 'usage_rollup_hourly', at);
      droppedHourly = h.dropped;
      pruned.usage_rollup_hourly = h.rows;
    }
    for (const [p, table, where] of tables) {
      if (!owns(p)) continue;
      const r = await pool.query(`delete from ${table} where ${where}`, [where.includes('date') ? day : at]);
      pruned[table] = r.rowCount ?? 0;
    }
  }
  return { created, dropped, kept, droppedHourly, pruned };
}

/** PROJECTOR_ROLLUP_RETENTION: `24mo` (default), `2y`, `730d` → months (days round up to whole months); `0` keeps all. */
export function parseRetentionMonths(v: string | undefined, fallback = 24): number {
  if (v === undefined || v.trim() === '') return fallback;
  const m = /^\s*(\d+)\s*(mo|m|y|d)?\s*$/i.exec(v);
  if (!m) throw new Error(`PROJECTOR_ROLLUP_RETENTION "${v}" is not a duration like 24mo, 2y or 730d`);
  const n = Number(m[1]);
  const unit = (m[2] ?? 'mo').toLowerCase();
  return unit === 'y' ? n * 12 : unit === 'd' ? Math.ceil(n / 30) : n;
}
