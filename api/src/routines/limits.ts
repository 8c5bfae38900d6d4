import type pg from 'pg';
import { requireDeployment } from './reads.js';

type Row = Record<string, unknown>;

// SQL for the start of the current period of a quota/budget in the deployment's time zone.
const PERIOD_START = `case p.period
    when 'daily' then date_trunc('day', now() at time zone d.timezone)::date
    when 'weekly' then date_trunc('week', now() at time zone d.timezone)::date
    when 'monthly' then date_trunc('month', now() at time zone d.timezone)::date
    else (now() at time zone d.timezone)::date - 29 end`;

/**
 * The deployment's limits as stored: the license in force (deployment-specific before org-wide),
 * its quotas and budgets with the current period's window, and feature flags. Runs inside asOrg().
 */
export async function storedLimits(c: pg.PoolClient, deploymentId: string): Promise<Row> {
  const d = await requireDeployment(c, deploymentId);
  const lic = await c.query(
    `select l.license_id, l.plan_id, pp.name as plan_name, pp.rank as plan_rank, l.seats_limit, l.nodes_limit, l.features,
            l.valid_from, l.valid_to, l.activated_at, (now() between l.valid_from and l.valid_to) as valid
     from license l left join pricing_plan pp on pp.plan_id = l.plan_id
     where l.deployment_id = $1 or (l.deployment_id is null and l.org_id = (select org_id from deployment where deployment_id = $1))
     order by (now() between l.valid_from and l.valid_to) desc, (l.deployment_id is null), l.activated_at desc limit 1`,
    [deploymentId],
  );
  const quotas = await c.query(
    `select p.quota_id, p.name, p.metric, p.period, p.hard_limit, p.soft_threshold, p.updated_at, (${PERIOD_START})::text as window_start
     from quota p join deployment d using (deployment_id) where p.deployment_id = $1 order by p.name`,
    [deploymentId],
  );
  const budgets = await c.query(
    `select p.budget_id, p.scope, p.metric, p.period, p.limit_units, p.action, p.action_params, p.updated_at, (${PERIOD_START})::text as window_start
     from budget p join deployment d using (deployment_id) where p.deployment_id = $1 order by p.scope`,
    [deploymentId],
  );
  const flags = await c.query('select flag, enabled, source from feature_flag where deployment_id = $1 order by flag', [deploymentId]);
  return {
    deployment_id: deploymentId,
    enforcement: d.enforcement,
    timezone: d.timezone,
    license: lic.rows[0] ?? null,
    quotas: quotas.rows,
    budgets: budgets.rows,
    feature_flags: flags.rows,
  };
}

export interface UtilisationCard {
  key: 'seats' | 'nodes' | 'context' | 'tokens' | 'cost';
  label: string;
  /** agents | nodes | bytes | tokens | usd */
  unit: string;
  /** Exact decimal strings, as Postgres computed them. */
  used: string;
  cap: string | null;
  /** used / cap in percent, one decimal; null without a cap. */
  pct: number | null;
  period: string;
  source: string | null;
  /** One value per day, oldest first (14 days). */
  series: { day: string; value: string }[];
}

const DAYS = 14;

/**
 * Tier utilisation for the dashboard: seats and nodes against the license caps, context volume and
 * tokens against their quotas, cost against the cost budget. All arithmetic in SQL numerics.
 */
export async function utilisation(c: pg.PoolClient, deploymentId: string): Promise<{ deployment_id: string; generated_at: string; cards: UtilisationCard[]; limits: Row }> {
  const limits = await storedLimits(c, deploymentId);
  const lic = limits.license as Row | null;
  const quotas = limits.quotas as Row[];
  const budgets = limits.budgets as Row[];
  const days = await c.query<{ day: string; seats: string; nodes: string; context: string; tokens: string; tokens_in: string; tokens_out: string }>(
    `select g.day::date::text as day, coalesce(r.seats_active, 0)::text as seats, coalesce(r.nodes_active, 0)::text as nodes,
            coalesce(r.context_bytes_written, 0)::text as context, coalesce(r.model_tokens_in + r.model_tokens_out, 0)::text as tokens,
            coalesce(r.model_tokens_in, 0)::text as tokens_in, coalesce(r.model_tokens_out, 0)::text as tokens_out
     from deployment d
     cross join generate_series((now() at time zone d.timezone)::date - ${DAYS - 1}, (now() at time zone d.timezone)::date, interval '1 day') g(day)
     left join usage_rollup_daily r on r.deployment_id = d.deployment_id and r.day = g.day::date
     where d.deployment_id = $1 order by g.day`,
    [deploymentId],
  );
  const costDays = await c.query<{ day: string; value: string }>(
    `select g.day::date::text as day, (coalesce(sum(${COST_EXPR}), 0) / 1000000)::numeric(24,6)::text as value
     from deployment d
     cross join generate_series((now() at time zone d.timezone)::date - ${DAYS - 1}, (now() at time zone d.timezone)::date, interval '1 day') g(day)
     left join usage_sample s on s.deployment_id = d.deployment_id
       and s.started_at >= (g.day::date::timestamp at time zone d.timezone) and s.started_at < ((g.day::date + 1)::timestamp at time zone d.timezone)
     where d.deployment_id = $1 group by g.day order by g.day`,
    [deploymentId],
  );
  const series = (k: 'seats' | 'nodes' | 'context' | 'tokens') => days.rows.map((r) => ({ day: r.day, value: r[k] }));
  const latest = (k: 'seats' | 'nodes') => days.rows[days.rows.length - 1]?.[k] ?? '0';

  const quotaFor = (metrics: string[]) => quotas.find((q) => metrics.includes(String(q.metric)));
  const budgetFor = (metrics: string[]) => budgets.find((b) => metrics.includes(String(b.metric)));
  const cards: UtilisationCard[] = [];
  const pctOf = async (used: string, cap: string | null): Promise<number | null> => {
    if (cap === null) return null;
    const r = await c.query<{ pct: string | null }>('select round(100 * $1::numeric / nullif($2::numeric, 0), 1)::text as pct', [used, cap]);
    return r.rows[0]?.pct == null ? null : Number(r.rows[0].pct);
  };
  const sumSince = async (expr: string, from: string, table: 'rollup' | 'sample') => {
    const r =
      table === 'rollup'
        ? await c.query<{ v: string }>(`select coalesce(sum(${expr}), 0)::text as v from usage_rollup_daily where deployment_id = $1 and day >= $2::date`, [deploymentId, from])
        : await c.query<{ v: string }>(
            `select (coalesce(sum(${COST_EXPR}), 0) / 1000000)::numeric(24,6)::text as v from usage_sample s join deployment d using (deployment_id)
             where s.deployment_id = $1 and s.started_at >= ($2::date::timestamp at time zone d.timezone)`,
            [deploymentId, from],
          );
    return r.rows[0]?.v ?? '0';
  };

  const seatsCap = lic?.seats_limit == null ? null : String(lic.seats_limit);
  cards.push({ key: 'seats', label: 'Seats', unit: 'agents', used: latest('seats'), cap: seatsCap, pct: await pctOf(latest('seats'), seatsCap), period: 'today', source: lic ? `license ${String(lic.plan_id)}` : null, series: series('seats') });
  const nodesCap = lic?.nodes_limit == null ? null : String(lic.nodes_limit);
  cards.push({ key: 'nodes', label: 'Nodes', unit: 'nodes', used: latest('nodes'), cap: nodesCap, pct: await pctOf(latest('nodes'), nodesCap), period: 'today', source: lic ? `license ${String(lic.plan_id)}` : null, series: series('nodes') });

  const ctxQ = quotaFor(['context_bytes_written', 'context_bytes']);
  const ctxFrom = String(ctxQ?.window_start ?? days.rows[0]?.day);
  const ctxUsed = await sumSince('context_bytes_written', ctxFrom, 'rollup');
  const ctxCap = ctxQ?.hard_limit == null ? null : String(ctxQ.hard_limit);
  cards.push({ key: 'context', label: 'Context volume', unit: 'bytes', used: ctxUsed, cap: ctxCap, pct: await pctOf(ctxUsed, ctxCap), period: String(ctxQ?.period ?? `${DAYS}d`), source: ctxQ ? `quota ${String(ctxQ.name)}` : null, series: series('context') });

  // token limits may be on input, output or both (the enforcer limits model_tokens_in / model_tokens_out)
  const TOKEN_EXPR: Record<string, string> = {
    model_tokens: 'model_tokens_in + model_tokens_out',
    model_tokens_in: 'model_tokens_in',
    model_tokens_out: 'model_tokens_out',
  };
  const tokMetrics = Object.keys(TOKEN_EXPR);
  const tokQ = quotaFor(tokMetrics) ?? budgetFor(tokMetrics);
  const tokMetric = String(tokQ?.metric ?? 'model_tokens');
  const tokExpr = TOKEN_EXPR[tokMetric]!;
  const tokFrom = String(tokQ?.window_start ?? days.rows[0]?.day);
  const tokUsed = await sumSince(tokExpr, tokFrom, 'rollup');
  const tokCapRaw = tokQ ? (tokQ.hard_limit ?? tokQ.limit_units) : null;
  const tokCap = tokCapRaw == null ? null : String(tokCapRaw);
  const tokSeries = tokMetric === 'model_tokens' ? series('tokens') : days.rows.map((r) => ({ day: r.day, value: r[tokMetric === 'model_tokens_in' ? 'tokens_in' : 'tokens_out'] }));
  const tokLabel = tokMetric === 'model_tokens_in' ? 'Model tokens in' : tokMetric === 'model_tokens_out' ? 'Model tokens out' : 'Model tokens';
  cards.push({ key: 'tokens', label: tokLabel, unit: 'tokens', used: tokUsed, cap: tokCap, pct: await pctOf(tokUsed, tokCap), period: String(tokQ?.period ?? `${DAYS}d`), source: tokQ ? `${tokQ.quota_id ? 'quota' : 'budget'} ${String(tokQ.name ?? tokQ.scope)}` : null, series: tokSeries });

  // cost in USD (the enforcer's cost_usd budgets); micro-USD budgets are converted
  const costB = budgetFor(['cost_usd', 'cost_micro_usd']);
  const costFrom = String(costB?.window_start ?? days.rows[0]?.day);
  const costUsed = await sumSince('', costFrom, 'sample');
  const costCap = costB
    ? (await c.query<{ v: string }>(`select ($1::numeric / $2)::numeric(24,6)::text as v`, [costB.limit_units, costB.metric === 'cost_micro_usd' ? 1_000_000 : 1])).rows[0]!.v
    : null;
  cards.push({ key: 'cost', label: 'Model cost', unit: 'usd', used: costUsed, cap: costCap, pct: await pctOf(costUsed, costCap), period: String(costB?.period ?? `${DAYS}d`), source: costB ? `budget ${String(costB.scope)}` : null, series: costDays.rows });

  return { deployment_id: deploymentId, generated_at: new Date().toISOString(), cards, limits };
}

// Cost of one sample in micro-USD: its tokens at the price version in force when the job started.
const COST_EXPR = `coalesce((select (s.model_tokens_in - s.model_tokens_cached_in) * mp.input_per_1m_micro_usd / 1000000.0
      + s.model_tokens_cached_in * mp.cached_input_per_1m_micro_usd / 1000000.0
      + s.model_tokens_out * mp.output_per_1m_micro_usd / 1000000.0
      + s.gpu_seconds * mp.gpu_second_micro_usd + s.cpu_seconds * mp.cpu_second_micro_usd
    from model_price mp where mp.model_name = s.model_name and mp.provider = s.provider and mp.effective_from <= s.started_at
    order by mp.version desc limit 1), 0)`;

/** Bottleneck callouts: how often each code blocked or warned in the last 7 days. */
export async function bottlenecks(c: pg.PoolClient, deploymentId: string): Promise<Row[]> {
  await requireDeployment(c, deploymentId);
  const r = await c.query(
    `select code, count(*)::int as times, max(created_at) as last_at,
            max(context->>'action') filter (where context ? 'action') as action,
            (array_agg(message order by created_at desc))[1] as last_message
     from alert where deployment_id = $1 and created_at >= now() - interval '7 days'
     group by code order by count(*) desc, code`,
    [deploymentId],
  );
  return r.rows as Row[];
}
