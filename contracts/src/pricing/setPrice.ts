import type pg from 'pg';
import { InputError } from '../errors/errors.js';
import { LITELLM_FIELDS } from './litellm.js';
import { bumpPriceRevision, PRICE_BOOK_LOCK } from './revision.js';
import { attoToMicroPerMillion, attoToUsdPerToken, microPerMillionToAtto } from './units.js';

/** A price version as stored and listed (decimal strings: micro-USD per 1M tokens with up to 6 decimals; integer micro-USD per second). */
export interface ModelPriceRow {
  provider: string;
  model_name: string;
  version: number;
  effective_from: string;
  effective_to: string | null;
  input_per_1m_micro_usd: string;
  output_per_1m_micro_usd: string;
  cached_input_per_1m_micro_usd: string | null;
  cache_write_per_1m_micro_usd: string | null;
  reasoning_per_1m_micro_usd: string | null;
  gpu_second_micro_usd: string;
  cpu_second_micro_usd: string;
  tiers: unknown[];
  source: string;
}

type Amount = number | string | bigint;

export interface PriceInput {
  provider: string;
  model_name: string;
  effective_from?: string | Date;
  input_per_1m_micro_usd?: Amount;
  output_per_1m_micro_usd?: Amount;
  /** null/absent: cache reads cost the input price. */
  cached_input_per_1m_micro_usd?: Amount | null;
  cache_write_per_1m_micro_usd?: Amount | null;
  /** null/absent: reasoning tokens cost the output price. */
  reasoning_per_1m_micro_usd?: Amount | null;
  gpu_second_micro_usd?: Amount;
  cpu_second_micro_usd?: Amount;
  tiers?: { above_input_tokens: number; input?: Amount; output?: Amount; cache_read?: Amount; cache_write?: Amount }[];
}

const t = (c: string) => `trim_scale(${c})::text as ${c}`;
export const PRICE_COLUMNS = `provider, model_name, version, effective_from, effective_to, ${t('input_per_1m_micro_usd')}, ${t('output_per_1m_micro_usd')},
  ${t('cached_input_per_1m_micro_usd')}, ${t('cache_write_per_1m_micro_usd')}, ${t('reasoning_per_1m_micro_usd')}, gpu_second_micro_usd::text,
  cpu_second_micro_usd::text, tiers, source`;

/** A token price in micro-USD per 1M tokens (up to 6 decimals) as atto-USD per token. */
function tokenPrice(field: string, v: Amount | null | undefined): bigint | null {
  if (v === null || v === undefined) return null;
  const s = String(v).trim();
  if (!/^\d{1,15}(\.\d{1,6})?$/.test(s)) {
    throw new InputError('FIELD_RANGE', { field, rule: 'decimal>=0 with at most 6 decimals', message: `${field} is micro-USD per 1M tokens, a non-negative decimal with at most 6 decimals` });
  }
  return microPerMillionToAtto(s);
}

function perSecond(field: string, v: Amount | undefined): bigint {
  if (v === undefined) return 0n;
  const s = String(v).trim();
  if (!/^\d{1,18}$/.test(s)) throw new InputError('FIELD_RANGE', { field, rule: 'integer>=0', message: `${field} is a non-negative integer (micro-USD per second)` });
  return BigInt(s);
}

const stored = (a: bigint | null) => (a === null ? null : attoToMicroPerMillion(a));

/**
 * Adds the next version of a model's price by hand (source `manual`; a later sync leaves the model alone).
 * Versions are never edited: costs already computed keep the version they name. The change goes to the
 * change log with the same field names a sync uses.
 */
export async function setModelPrice(pool: pg.Pool, p: PriceInput, now: Date = new Date()): Promise<ModelPriceRow> {
  const from = p.effective_from === undefined ? now : new Date(p.effective_from);
  if (Number.isNaN(from.getTime())) throw new InputError('FIELD_FORMAT', { field: 'effective_from', rule: 'date-time' });
  const v = {
    input: tokenPrice('input_per_1m_micro_usd', p.input_per_1m_micro_usd) ?? 0n,
    output: tokenPrice('output_per_1m_micro_usd', p.output_per_1m_micro_usd) ?? 0n,
    cacheRead: tokenPrice('cached_input_per_1m_micro_usd', p.cached_input_per_1m_micro_usd),
    cacheWrite: tokenPrice('cache_write_per_1m_micro_usd', p.cache_write_per_1m_micro_usd),
    reasoning: tokenPrice('reasoning_per_1m_micro_usd', p.reasoning_per_1m_micro_usd),
    gpu: perSecond('gpu_second_micro_usd', p.gpu_second_micro_usd),
    cpu: perSecond('cpu_second_micro_usd', p.cpu_second_micro_usd),
  };
  const tiers = (p.tiers ?? []).map((t, i) => {
    if (!Number.isInteger(t.above_input_tokens) || t.above_input_tokens < 0) throw new InputError('FIELD_RANGE', { field: `tiers/${i}/above_input_tokens`, rule: 'integer>=0' });
    const o: Record<string, unknown> = { above_input_tokens: t.above_input_tokens };
    for (const k of ['input', 'output', 'cache_read', 'cache_write'] as const) {
      const a = tokenPrice(`tiers/${i}/${k}`, t[k]);
      if (a !== null) o[k] = attoToMicroPerMillion(a);
    }
    return o;
  });
  // in the source's terms, as a sync records them: USD per token
  const fields: Record<string, string> = {};
  const put = (name: string, x: bigint | null) => x !== null && (fields[name] = attoToUsdPerToken(x));
  put(LITELLM_FIELDS[0], v.input);
  put(LITELLM_FIELDS[1], v.output);
  put(LITELLM_FIELDS[2], v.cacheRead);
  put(LITELLM_FIELDS[3], v.cacheWrite);
  put(LITELLM_FIELDS[4], v.reasoning);
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [PRICE_BOOK_LOCK]);
    const prev = await client.query<{ source_fields: Record<string, string> | null }>(
      `select source_fields from model_price where provider = $1 and model_name = $2 order by effective_from desc, version desc limit 1`,
      [p.provider, p.model_name],
    );
    await client.query(`update model_price set effective_to = $3 where provider = $1 and model_name = $2 and effective_to is null and effective_from <= $3`, [p.provider, p.model_name, from]);
    const r = await client.query<ModelPriceRow>(
      `insert into model_price (provider, model_name, version, effective_from, input_per_1m_micro_usd, output_per_1m_micro_usd, cached_input_per_1m_micro_usd,
         cache_write_per_1m_micro_usd, reasoning_per_1m_micro_usd, gpu_second_micro_usd, cpu_second_micro_usd, tiers, source, source_fields)
       select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'manual', $12
         from model_price where provider = $1 and model_name = $2
       returning ${PRICE_COLUMNS}`,
      [p.provider, p.model_name, from, stored(v.input), stored(v.output), stored(v.cacheRead), stored(v.cacheWrite), stored(v.reasoning), v.gpu, v.cpu, JSON.stringify(tiers), fields],
    );
    const old = prev.rows[0]?.source_fields ?? null;
    const changes: [string, string | null, string | null][] = [];
    if (!prev.rowCount) changes.push(['', null, null]);
    else for (const f of [...new Set([...Object.keys(old ?? {}), ...Object.keys(fields)])].sort()) if (old?.[f] !== fields[f]) changes.push([f, old?.[f] ?? null, fields[f] ?? null]);
    if (changes.length) {
      await client.query(
        `insert into price_change (provider, model_name, kind, field, old_value, new_value, effective_at)
         select $1, $2, case when x.field = '' then 'added' else 'changed' end, nullif(x.field, ''), x.old, x.new, $4
           from rows from (jsonb_to_recordset($3::jsonb) as (field text, old text, new text)) with ordinality as x(field, old, new, ord) order by ord`,
        [p.provider, p.model_name, JSON.stringify(changes.map(([field, o, n]) => ({ field, old: o, new: n }))), from],
      );
    }
    await bumpPriceRevision(client, from, `price ${p.provider}/${p.model_name}`);
    await client.query('commit');
    return r.rows[0]!;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}

/** The version of each model in force now (the newest that has started). */
export async function listCurrentPrices(db: pg.Pool | pg.PoolClient, now: Date = new Date()): Promise<ModelPriceRow[]> {
  const r = await db.query<ModelPriceRow>(
    `select distinct on (provider, model_name) ${PRICE_COLUMNS} from model_price
      where effective_from <= $1 or not exists (select 1 from model_price e where e.provider = model_price.provider and e.model_name = model_price.model_name and e.effective_from <= $1)
      order by provider, model_name, effective_from desc, version desc`,
    [now],
  );
  return r.rows;
}
