import type pg from 'pg';
import { dropOldPartitions, ensurePartitions, utcDay } from './db/partitions.js';

export interface MaintenanceResult {
  created: string;
  dropped: string[];
}

/** Creates usage_sample partitions from yesterday to `ahead` days out and drops those past retention. */
export async function maintainPartitions(pool: pg.Pool, opts: { retentionDays: number; partitionsAhead: number; now?: number }): Promise<MaintenanceResult> {
  const now = opts.now ?? Date.now();
  const from = utcDay(now - 86_400_000);
  await ensurePartitions(pool, 'usage_sample', from, opts.partitionsAhead + 2);
  const dropped = opts.retentionDays > 0 ? await dropOldPartitions(pool, 'usage_sample', opts.retentionDays, now) : [];
  return { created: `${from}+${opts.partitionsAhead + 2}d`, dropped };
}
