import type pg from 'pg';
import { InputError } from '../errors/errors.js';
import { bumpPriceRevision, PRICE_BOOK_LOCK } from './revision.js';

export interface PriceAliasRow {
  alias: string;
  provider: string;
  model_name: string;
  created_at: string;
}

const ALIAS = /^[A-Za-z0-9._:/@*+-]{1,200}$/;

/**
 * Prices the model name `alias` (or every name matching the pattern, `*` = any characters) as the book entry
 * (provider, model_name) whenever the book has no exact entry for it. Aliases are explicit: nothing is
 * guessed from similar names.
 */
export async function setPriceAlias(pool: pg.Pool, a: { alias: string; provider: string; model_name: string }): Promise<PriceAliasRow> {
  if (!ALIAS.test(a.alias)) throw new InputError('FIELD_FORMAT', { field: 'alias', rule: 'pattern:[A-Za-z0-9._:/@*+-]{1,200}', message: 'An alias is a model name or a pattern with *' });
  if (!a.provider || !a.model_name) throw new InputError('FIELD_REQUIRED', { field: a.provider ? 'model_name' : 'provider' });
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [PRICE_BOOK_LOCK]);
    const target = await client.query('select 1 from model_price where provider = $1 and model_name = $2 limit 1', [a.provider, a.model_name]);
    if (!target.rowCount) {
      throw new InputError('NOT_FOUND', { field: 'model_name', rule: 'priced', message: `The book has no price for ${a.provider}/${a.model_name}: an alias must point at a priced model` });
    }
    const r = await client.query<PriceAliasRow>(
      `insert into price_alias (alias, provider, model_name) values ($1, $2, $3)
       on conflict (alias) do update set provider = excluded.provider, model_name = excluded.model_name, created_at = now()
       returning alias, provider, model_name, created_at`,
      [a.alias, a.provider, a.model_name],
    );
    await bumpPriceRevision(client, null, `alias ${a.alias} -> ${a.provider}/${a.model_name}`);
    await client.query('commit');
    return r.rows[0]!;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

export async function removePriceAlias(pool: pg.Pool, alias: string): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const r = await client.query('delete from price_alias where alias = $1', [alias]);
    if (r.rowCount) await bumpPriceRevision(client, null, `alias ${alias} removed`);
    await client.query('commit');
    return (r.rowCount ?? 0) > 0;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

export async function listPriceAliases(db: pg.Pool | pg.PoolClient): Promise<PriceAliasRow[]> {
  const r = await db.query<PriceAliasRow>('select alias, provider, model_name, created_at from price_alias order by alias');
  return r.rows;
}
