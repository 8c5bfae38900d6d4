import type pg from 'pg';

/** Advisory lock key that serialises writers of the price book (syncs, manual prices, aliases). */
export const PRICE_BOOK_LOCK = 0x6b70_6263; // 'kpbc'

/**
 * Marks the book changed, inside the writing transaction: every consumer's PriceBook reloads in its next
 * batch, and costs of events attributed at or after `repriceFrom` (null: at any time) are re-priced.
 */
export async function bumpPriceRevision(client: pg.PoolClient, repriceFrom: Date | null, reason: string): Promise<number> {
  const r = await client.query<{ revision: string }>('update price_book_state set revision = revision + 1 returning revision::text');
  const revision = Number(r.rows[0]!.revision);
  await client.query(`insert into price_revision (revision, reprice_from, reason) values ($1, coalesce($2::timestamptz, '-infinity'), $3)`, [revision, repriceFrom, reason]);
  return revision;
}

/**
 * The book's revision, read `for share` inside a consumer's batch transaction: a writer's update of it waits
 * until this batch commits, so no batch priced with an older book commits after a newer one is visible.
 */
export async function lockPriceRevision(client: pg.PoolClient): Promise<number> {
  const r = await client.query<{ revision: string }>('select revision::text from price_book_state for share');
  return Number(r.rows[0]?.revision ?? 0);
}
