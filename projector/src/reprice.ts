import type pg from 'pg';
import { PriceBook, type Logger } from '@kaching/contracts';
import { enqueueRepriced } from './billing/enqueue.js';

/** Session advisory lock: one projector instance re-prices at a time. */
const REPRICE_LOCK = 0x6b72_7072; // 'krpr'
const CHUNK = 2000;

export interface RepriceReport {
  fromRevision: number;
  toRevision: number;
  /** Earliest attribution instant re-priced (text; '-infinity' for an alias change), null: only unpriced rows. */
  since: string | null;
  deployments: number;
  samples: number;
  identities: number;
}

interface PricedRow {
  correlation_id: string;
  revision: string;
  at_ms: number;
  provider: string;
  model_name: string;
  tokens_in: string;
  tokens_out: string;
  tokens_cached_in: string;
  tokens_cache_write: string;
  tokens_reasoning: string;
  cpu_seconds: string;
  gpu_seconds: string;
  cost_micro_usd: string | null;
  price_version: number | null;
}

/** The row's cost with `book`, or undefined when it is what the row already holds. */
function reprice(book: PriceBook, r: PricedRow): { cost: string | null; version: number | null } | undefined {
  const c = book.cost(
    {
      provider: r.provider, model_name: r.model_name, tokens_in: Number(r.tokens_in), tokens_out: Number(r.tokens_out),
      tokens_cached_in: Number(r.tokens_cached_in), tokens_cache_write: Number(r.tokens_cache_write), tokens_reasoning: Number(r.tokens_reasoning),
    },
    r.at_ms,
    { gpu_seconds: Number(r.gpu_seconds), cpu_seconds: Number(r.cpu_seconds) },
  );
  const cost = c ? c.microUsd.toString() : null;
  const version = c ? c.version : null;
  return cost === r.cost_micro_usd && version === r.price_version ? undefined : { cost, version };
}

/**
 * Brings stored costs in line with the price book after it changed: raw samples and the rollups (per-identity
 * state, hourly, daily and per-model daily sums) of every event attributed at or after the earliest instant
 * the new revisions may price differently, plus every event still without a price. The result is what a
 * replay with the current book would store. Rollup rows of a deployment change under its row lock
 * (`for update`), which the rollups projection takes `for share` per batch: a re-pricing and a batch never
 * interleave on the same identities.
 */
export async function repriceProjections(pool: pg.Pool, log?: Logger, opts: { billing?: boolean } = {}): Promise<RepriceReport | null> {
  const lock = await pool.connect();
  try {
    const got = await lock.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [REPRICE_LOCK]);
    if (!got.rows[0]?.ok) return null;
    try {
      const st = await pool.query<{ done: string; now: string }>(
        `select s.revision::text as done, b.revision::text as now from price_reprice_state s, price_book_state b where s.consumer = 'projector'`,
      );
      const done = Number(st.rows[0]?.done ?? 0);
      if (done >= Number(st.rows[0]?.now ?? 0)) return null;
      const book = await new PriceBook().load(pool);
      const s = await pool.query<{ since: string | null }>(
        'select min(reprice_from)::text as since from price_revision where revision > $1 and revision <= $2',
        [done, book.revision],
      );
      const since = s.rows[0]?.since ?? null;
      const deps = await pool.query<{ deployment_id: string }>(
        `select deployment_id from projector_rollup_job where model_name is not null and (cost_micro_usd is null or attributed_at >= $1::timestamptz)
         union
         select deployment_id from usage_sample where model_name is not null and (cost_micro_usd is null or coalesce(ended_at, started_at) >= $1::timestamptz)`,
        [since],
      );
      let samples = 0;
      let identities = 0;
      for (const { deployment_id } of deps.rows) {
        identities += await repriceRollups(pool, deployment_id, book, since, opts.billing ?? false);
        samples += await repriceSamples(pool, deployment_id, book, since);
      }
      // a replay swapped in costs of an older book meanwhile: it lowered the mark, keep it lowered
      await pool.query(`update price_reprice_state set revision = $2 where consumer = 'projector' and revision = $1`, [done, book.revision]);
      const report = { fromRevision: done, toRevision: book.revision, since, deployments: deps.rows.length, samples, identities };
      if (samples || identities) log?.info(report, 're-priced stored costs after a price book change');
      return report;
    } finally {
      await lock.query('select pg_advisory_unlock($1)', [REPRICE_LOCK]).catch(() => undefined);
    }
  } finally {
    lock.release();
  }
}

async function repriceRollups(pool: pg.Pool, deploymentId: string, book: PriceBook, since: string | null, billing: boolean): Promise<number> {
  let after = '';
  let changed = 0;
  for (;;) {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query('select 1 from deployment where deployment_id = $1 for update', [deploymentId]);
      const rows = await client.query<PricedRow>(
        `select correlation_id, revision, floor(extract(epoch from attributed_at) * 1000)::float8 as at_ms, provider, model_name,
           model_tokens_in::text as tokens_in, model_tokens_out::text as tokens_out, model_tokens_cached_in::text as tokens_cached_in,
           model_tokens_cache_write::text as tokens_cache_write, model_tokens_reasoning::text as tokens_reasoning,
           cpu_seconds::text, gpu_seconds::text, cost_micro_usd::text, price_version
         from projector_rollup_job
         where deployment_id = $1 and model_name is not null and (cost_micro_usd is null or attributed_at >= $2::timestamptz)
           and correlation_id > $3
         order by correlation_id limit ${CHUNK}`,
        [deploymentId, since, after],
      );
      const ch = rows.rows.flatMap((r) => {
        const c = reprice(book, r);
        return c ? [{ correlation_id: r.correlation_id, cost: c.cost, version: c.version, old_cost: r.cost_micro_usd }] : [];
      });
      if (ch.length) {
        await client.query(
          `with ch as (select * from jsonb_to_recordset($2::jsonb) as x(correlation_id text, cost bigint, version integer, old_cost bigint)),
           upd as (
             update projector_rollup_job s set cost_micro_usd = ch.cost, price_version = ch.version from ch
              where s.deployment_id = $1 and s.correlation_id = ch.correlation_id
             returning s.bucket_start, s.day, s.agent_type, s.provider, s.model_name,
               coalesce(ch.cost, 0) - coalesce(ch.old_cost, 0) as delta, (ch.cost is null)::int - (ch.old_cost is null)::int as du),
           h as (
             update usage_rollup_hourly x set cost_micro_usd = x.cost_micro_usd + d.delta
               from (select bucket_start, agent_type, sum(delta) as delta from upd group by bucket_start, agent_type) d
              where x.deployment_id = $1 and x.bucket_start = d.bucket_start and x.agent_type = d.agent_type returning 1),
           dd as (
             update usage_rollup_daily x set cost_micro_usd = x.cost_micro_usd + d.delta
               from (select day, sum(delta) as delta from upd group by day) d
              where x.deployment_id = $1 and x.day = d.day returning 1),
           m as (
             update usage_rollup_model_daily x set cost_micro_usd = x.cost_micro_usd + d.delta, unpriced_requests = x.unpriced_requests + d.du
               from (select day, provider, model_name, agent_type, sum(delta) as delta, sum(du) as du from upd group by 1, 2, 3, 4) d
              where x.deployment_id = $1 and x.day = d.day and x.provider = d.provider and x.model_name = d.model_name and x.agent_type = d.agent_type
             returning 1)
           select (select count(*) from upd) + 0 * ((select count(*) from h) + (select count(*) from dd) + (select count(*) from m)) as n`,
          [deploymentId, JSON.stringify(ch)],
        );
        // a changed cost of a billed run goes to billing as a correction, in this chunk's transaction
        if (billing) await enqueueRepriced(client, deploymentId, ch.map((x) => x.correlation_id));
      }
      await client.query('commit');
      changed += ch.length;
      if (rows.rows.length < CHUNK) return changed;
      after = rows.rows[rows.rows.length - 1]!.correlation_id;
    } catch (e) {
      await client.query('rollback').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }
}

async function repriceSamples(pool: pg.Pool, deploymentId: string, book: PriceBook, since: string | null): Promise<number> {
  let after = '';
  let changed = 0;
  for (;;) {
    const rows = await pool.query<PricedRow & { started_at: string }>(
      `select correlation_id, started_at::text, revision, floor(extract(epoch from coalesce(ended_at, started_at)) * 1000)::float8 as at_ms,
         provider, model_name, model_tokens_in::text as tokens_in, model_tokens_out::text as tokens_out, model_tokens_cached_in::text as tokens_cached_in,
         model_tokens_cache_write::text as tokens_cache_write, model_tokens_reasoning::text as tokens_reasoning,
         cpu_seconds::text, gpu_seconds::text, cost_micro_usd::text, price_version
       from usage_sample
       where deployment_id = $1 and model_name is not null and (cost_micro_usd is null or coalesce(ended_at, started_at) >= $2::timestamptz)
         and correlation_id > $3
       order by correlation_id limit ${CHUNK}`,
      [deploymentId, since, after],
    );
    const ch = rows.rows.flatMap((r) => {
      const c = reprice(book, r);
      return c ? [{ correlation_id: r.correlation_id, started_at: r.started_at, revision: r.revision, cost: c.cost, version: c.version }] : [];
    });
    // guarded by the revision: a newer revision stored meanwhile was priced with a current book itself
    if (ch.length) {
      await pool.query(
        `update usage_sample u set cost_micro_usd = x.cost, price_version = x.version
           from jsonb_to_recordset($2::jsonb) as x(correlation_id text, started_at timestamptz, revision text, cost bigint, version integer)
          where u.deployment_id = $1 and u.correlation_id = x.correlation_id and u.started_at = x.started_at and u.revision = x.revision`,
        [deploymentId, JSON.stringify(ch)],
      );
    }
    changed += ch.length;
    if (rows.rows.length < CHUNK) return changed;
    after = rows.rows[rows.rows.length - 1]!.correlation_id;
  }
}
