import type pg from 'pg';
import { archivedThrough } from '@kaching/contracts';
import { dropOldPartitions, ensurePartitions, utcDay } from './db/partitions.js';
import { q } from './projections/common.js';

export interface MaintenanceResult {
  created: string;
  dropped: string[];
  /** Partitions past retention kept because some of their rows are not archived yet. */
  kept: string[];
}

/**
 * Creates usage_sample partitions from yesterday to `ahead` days out and drops those past retention, but
 * only a partition whose every row is archived (stream_seq at or below the archive's coverage, see
 * contracts' archive state): the raw samples are the last copy until then.
 */
export async function maintainPartitions(pool: pg.Pool, opts: { retentionDays: number; partitionsAhead: number; now?: number }): Promise<MaintenanceResult> {
  const now = opts.now ?? Date.now();
  const from = utcDay(now - 86_400_000);
  await ensurePartitions(pool, 'usage_sample', from, opts.partitionsAhead + 2);
  const kept: string[] = [];
  let through: number | null = null;
  const archived = async (name: string) => {
    through ??= await archivedThrough(pool);
    const r = await pool.query<{ m: string | null }>(`select max(stream_seq) as m from ${q(name)}`);
    return r.rows[0]?.m == null || Number(r.rows[0].m) <= through;
  };
  const dropped = opts.retentionDays > 0 ? await dropOldPartitions(pool, 'usage_sample', opts.retentionDays, now, archived, kept) : [];
  return { created: `${from}+${opts.partitionsAhead + 2}d`, dropped, kept };
}
