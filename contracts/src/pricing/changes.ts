import type pg from 'pg';
import type { PriceChange } from './sync.js';

export interface PriceChangeQuery {
  /** Changes taking effect at or after this instant. */
  since?: Date;
  until?: Date;
  provider?: string;
  model?: string;
  /** Only this sync's changes. */
  syncId?: string;
  /** Keyset cursor: changes after this change_id. */
  after?: string;
  limit?: number;
}

/** The price change log in the order recorded (a sync only moves forward, so that is also the order they take effect in). */
export async function listPriceChanges(db: pg.Pool | pg.PoolClient, q: PriceChangeQuery = {}): Promise<PriceChange[]> {
  const r = await db.query<PriceChange>(
    `select change_id::text, sync_id::text, provider, model_name as model, kind, field, old_value, new_value, effective_at, recorded_at
       from price_change
      where ($1::timestamptz is null or effective_at >= $1) and ($2::timestamptz is null or effective_at < $2)
        and ($3::text is null or provider = $3) and ($4::text is null or model_name = $4)
        and ($5::bigint is null or sync_id = $5) and ($6::bigint is null or change_id > $6)
      order by change_id
      limit $7`,
    [q.since ?? null, q.until ?? null, q.provider ?? null, q.model ?? null, q.syncId ?? null, q.after ?? null, Math.min(Math.max(q.limit ?? 1000, 1), 10_000)],
  );
  return r.rows;
}
