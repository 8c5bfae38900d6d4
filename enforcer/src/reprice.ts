import { PriceBook, type LlmUsage, type Logger, type PolicyDecision } from '@kaching/contracts';
import { fromMicro } from '@kaching/contracts';
import { reevaluate, type EngineCtx } from './engine.js';

/** Session advisory lock: one enforcer instance re-prices the ledger at a time. */
const REPRICE_LOCK = 0x6b72_7065; // 'krpe'
const CHUNK = 2000;

interface LedgerRow {
  correlation_id: string;
  day: string;
  org_id: string;
  at_ms: number;
  llm: LlmUsage;
  cpu_seconds: string | null;
  gpu_seconds: string | null;
  cost_micro_usd: string | null;
  price_version: number | null;
}

/**
 * After a price book change, prices the ledger's contributions again: those still without a price and those
 * attributed at or after the earliest instant the new revisions may price differently. Each deployment's
 * rows change under its row lock (`for update`; batches take it `for share`), its daily cost moves by the
 * difference, and the deployment is re-evaluated: a budget now exceeded decides, a PRICE_UNKNOWN clears.
 */
export async function repriceLedger(ctx: EngineCtx, log?: Logger): Promise<{ deployments: number; contributions: number; decisions: PolicyDecision[] } | null> {
  const lock = await ctx.pool.connect();
  try {
    const got = await lock.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [REPRICE_LOCK]);
    if (!got.rows[0]?.ok) return null;
    try {
      const st = await ctx.pool.query<{ done: string; now: string }>(
        `select s.revision::text as done, b.revision::text as now from price_reprice_state s, price_book_state b where s.consumer = 'enforcer'`,
      );
      const done = Number(st.rows[0]?.done ?? 0);
      if (done >= Number(st.rows[0]?.now ?? 0)) return null;
      const book = await new PriceBook().load(ctx.pool);
      await ctx.prices.refresh(ctx.pool);
      const s = await ctx.pool.query<{ since: string | null }>(
        'select min(reprice_from)::text as since from price_revision where revision > $1 and revision <= $2',
        [done, book.revision],
      );
      const since = s.rows[0]?.since ?? null;
      const deps = await ctx.pool.query<{ deployment_id: string }>(
        `select distinct deployment_id from enforcer_contribution
          where llm is not null and (cost_micro_usd is null or attributed_at >= $1::timestamptz)`,
        [since],
      );
      let contributions = 0;
      const decisions: PolicyDecision[] = [];
      for (const { deployment_id } of deps.rows) {
        contributions += await repriceDeployment(ctx, deployment_id, book, since);
        decisions.push(...(await reevaluate(ctx, deployment_id)));
      }
      await ctx.pool.query(`update price_reprice_state set revision = $2 where consumer = 'enforcer' and revision = $1`, [done, book.revision]);
      if (contributions) log?.info({ fromRevision: done, toRevision: book.revision, since, contributions }, 're-priced the ledger after a price book change');
      return { deployments: deps.rows.length, contributions, decisions };
    } finally {
      await lock.query('select pg_advisory_unlock($1)', [REPRICE_LOCK]).catch(() => undefined);
    }
  } finally {
    lock.release();
  }
}

async function repriceDeployment(ctx: EngineCtx, deploymentId: string, book: PriceBook, since: string | null): Promise<number> {
  let after = '';
  let changed = 0;
  for (;;) {
    const client = await ctx.pool.connect();
    try {
      await client.query('begin');
      await client.query('select 1 from deployment where deployment_id = $1 for update', [deploymentId]);
      const rows = await client.query<LedgerRow>(
        `select correlation_id, day::text, org_id, floor(extract(epoch from attributed_at) * 1000)::float8 as at_ms, llm,
           amounts ->> 'cpu_seconds' as cpu_seconds, amounts ->> 'gpu_seconds' as gpu_seconds, cost_micro_usd::text, price_version
         from enforcer_contribution
         where deployment_id = $1 and llm is not null and (cost_micro_usd is null or attributed_at >= $2::timestamptz) and correlation_id > $3
         order by correlation_id limit ${CHUNK}`,
        [deploymentId, since, after],
      );
      const ch = rows.rows.flatMap((r) => {
        const c = book.cost(r.llm, r.at_ms, { cpu_seconds: Number(r.cpu_seconds ?? 0), gpu_seconds: Number(r.gpu_seconds ?? 0) });
        const cost = c ? c.microUsd.toString() : null;
        const version = c ? c.version : null;
        if (cost === r.cost_micro_usd && version === r.price_version) return [];
        const delta = (c?.microUsd ?? 0n) - BigInt(r.cost_micro_usd ?? 0);
        return [{ correlation_id: r.correlation_id, day: r.day, org_id: r.org_id, cost, version, usd: fromMicro(c?.microUsd ?? 0n), delta: fromMicro(delta) }];
      });
      if (ch.length) {
        await client.query(
          `with ch as (select * from jsonb_to_recordset($2::jsonb) as x(correlation_id text, day date, org_id uuid, cost bigint, version integer, usd text, delta numeric)),
           upd as (
             update enforcer_contribution c set cost_micro_usd = ch.cost, price_version = ch.version,
                    amounts = jsonb_set(c.amounts, '{cost_usd}', to_jsonb(ch.usd))
               from ch where c.deployment_id = $1 and c.correlation_id = ch.correlation_id returning 1)
           insert into enforcer_usage_daily as u (deployment_id, metric, day, org_id, value)
           select $1, 'cost_usd', day, (array_agg(org_id))[1], sum(delta) from ch group by day
           on conflict (deployment_id, metric, day) do update set value = u.value + excluded.value`,
          [deploymentId, JSON.stringify(ch)],
        );
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
