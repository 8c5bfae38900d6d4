import type pg from 'pg';
import { addDays, effectiveFeatures, formatBytes, formatCount, formatUsd, localDay, windowAt, type PeriodKind } from '@kaching/contracts';
import { requireDeployment } from './reads.js';

type Row = Record<string, unknown>;

/**
 * The deployment's limits as stored: the license in force (deployment-specific before org-wide),
 * its quotas and budgets with the current period's window (local days of the deployment, at `now`), and
 * feature flags. Runs inside asOrg().
 */
export async function storedLimits(c: pg.PoolClient, deploymentId: string, now: Date = new Date()): Promise<Row> {
  const d = await requireDeployment(c, deploymentId);
  const tz = String(d.timezone);
  const lic = await c.query(
    `select l.license_id, l.plan_id, pp.name as plan_name, pp.rank as plan_rank, l.seats_limit, l.nodes_limit, l.features,
            l.valid_from, l.valid_to, l.activated_at, ($2::timestamptz between l.valid_from and l.valid_to) as valid
     from license l left join pricing_plan pp on pp.plan_id = l.plan_id
     where l.deployment_id = $1 or (l.deployment_id is null and l.org_id = (select org_id from deployment where deployment_id = $1))
     order by ($2::timestamptz between l.valid_from and l.valid_to) desc, (l.deployment_id is null), l.activated_at desc limit 1`,
    [deploymentId, now],
  );
  const withWindow = (rows: Row[]) =>
    rows.map((r) => {
      const w = windowAt(r.period as PeriodKind, now, tz);
      return { ...r, window_start: w.startDay, window_end: w.endDay };
    });
  const quotas = await c.query(
    'select quota_id, name, metric, period, hard_limit, soft_threshold, updated_at from quota where deployment_id = $1 order by name',
    [deploymentId],
  );
  const budgets = await c.query(
    'select budget_id, scope, metric, period, limit_units, action, action_params, updated_at from budget where deployment_id = $1 order by scope',
    [deploymentId],
  );
  const flags = await c.query('select flag, enabled, source, override from feature_flag where deployment_id = $1 order by flag', [deploymentId]);
  const eff = await effectiveFeatures(c, deploymentId, now);
  return {
    deployment_id: deploymentId,
    enforcement: d.enforcement,
    timezone: tz,
    license: lic.rows[0] ?? null,
    quotas: withWindow(quotas.rows),
    budgets: withWindow(budgets.rows),
    feature_flags: flags.rows,
    /** As GET /v1/features and the features KV bucket publish them. */
    features: eff?.features ?? {},
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
  /** used and cap as people read them (contracts' formatting: "1.4 GB", "2.8M", "$24.00"). */
  used_text: string;
  cap_text: string | null;
  /** used / cap in percent, one decimal; null without a cap. */
  pct: number | null;
  period: string;
  source: string | null;
  /** One value per local day, oldest first (14 days). */
  series: { day: string; value: string }[];
}

const DAYS = 14;

/**
 * Tier utilisation for the dashboard: seats and nodes against the license caps, context volume and tokens
 * against their quotas, cost against the cost budget. Every "used" is read from the enforcer's own ledger
 * (enforcer_usage_daily, enforcer_contribution) over the enforcer's windows — local days of the deployment
 * at `now` — so a card shows the very number the enforcer compares with that cap. Exact SQL numerics.
 */
export async function utilisation(c: pg.PoolClient, deploymentId: string, now: Date = new Date()): Promise<{ deployment_id: string; generated_at: string; cards: UtilisationCard[]; limits: Row }> {
  const limits = await storedLimits(c, deploymentId, now);
  const tz = String(limits.timezone);
  const lic = limits.license as Row | null;
  const quotas = limits.quotas as Row[];
  const budgets = limits.budgets as Row[];
  const today = localDay(now, tz);
  const first = addDays(today, -(DAYS - 1));
  const days = Array.from({ length: DAYS }, (_, i) => addDays(first, i));
  const tomorrow = addDays(today, 1);

  /** Per local day of [from, to): a summed ledger metric (several summed together), or distinct agents/nodes. */
  const perDay = async (metrics: string[] | 'agent_id' | 'node_id', from: string, to: string): Promise<Map<string, string>> => {
    const r = Array.isArray(metrics)
      ? await c.query<{ day: string; v: string }>(
          `select day::text, sum(value)::text as v from enforcer_usage_daily
            where deployment_id = $1 and metric = any($2::text[]) and day >= $3::date and day < $4::date group by day`,
          [deploymentId, metrics, from, to],
        )
      : await c.query<{ day: string; v: string }>(
          `select day::text, count(distinct ${metrics})::text as v from enforcer_contribution
            where deployment_id = $1 and day >= $2::date and day < $3::date group by day`,
          [deploymentId, from, to],
        );
    return new Map(r.rows.map((x) => [x.day, x.v]));
  };
  /** The window total, as the enforcer sums it (windowUsage): distinct members over the window, not a sum of days. */
  const windowTotal = async (metrics: string[] | 'agent_id' | 'node_id', from: string, to: string): Promise<string> => {
    const r = Array.isArray(metrics)
      ? await c.query<{ v: string }>(
          `select coalesce(sum(value), 0)::text as v from enforcer_usage_daily
            where deployment_id = $1 and metric = any($2::text[]) and day >= $3::date and day < $4::date`,
          [deploymentId, metrics, from, to],
        )
      : await c.query<{ v: string }>(
          `select count(distinct ${metrics})::text as v from enforcer_contribution where deployment_id = $1 and day >= $2::date and day < $3::date`,
          [deploymentId, from, to],
        );
    return r.rows[0]?.v ?? '0';
  };
  const series = async (metrics: string[] | 'agent_id' | 'node_id') => {
    const m = await perDay(metrics, first, tomorrow);
    return days.map((day) => ({ day, value: m.get(day) ?? '0' }));
  };
  const pctOf = async (used: string, cap: string | null): Promise<number | null> => {
    if (cap === null) return null;
    const r = await c.query<{ pct: string | null }>('select round(100 * $1::numeric / nullif($2::numeric, 0), 1)::text as pct', [used, cap]);
    return r.rows[0]?.pct == null ? null : Number(r.rows[0].pct);
  };
  const quotaFor = (metrics: string[]) => quotas.find((q) => metrics.includes(String(q.metric)));
  const budgetFor = (metrics: string[]) => budgets.find((b) => metrics.includes(String(b.metric)));
  /** Used over the limit's window, or over the 14 days shown when nothing limits the metric. */
  const usedIn = (limit: Row | undefined, metrics: string[] | 'agent_id' | 'node_id') =>
    windowTotal(metrics, String(limit?.window_start ?? first), String(limit?.window_end ?? tomorrow));
  const cards: (Omit<UtilisationCard, 'used_text' | 'cap_text'> & Partial<UtilisationCard>)[] = [];

  for (const [key, label, unit, member, cap] of [
    ['seats', 'Seats', 'agents', 'agent_id', lic?.seats_limit],
    ['nodes', 'Nodes', 'nodes', 'node_id', lic?.nodes_limit],
  ] as const) {
    // license caps are per local day (the enforcer's daily window)
    const used = await windowTotal(member, today, tomorrow);
    const capS = cap == null ? null : String(cap);
    cards.push({ key, label, unit, used, cap: capS, pct: await pctOf(used, capS), period: 'today', source: lic ? `license ${String(lic.plan_id)}` : null, series: await series(member) });
  }

  const ctxQ = quotaFor(['context_bytes_written']);
  const ctxUsed = await usedIn(ctxQ, ['context_bytes_written']);
  const ctxCap = ctxQ?.hard_limit == null ? null : String(ctxQ.hard_limit);
  cards.push({ key: 'context', label: 'Context volume', unit: 'bytes', used: ctxUsed, cap: ctxCap, pct: await pctOf(ctxUsed, ctxCap), period: String(ctxQ?.period ?? `${DAYS}d`), source: ctxQ ? `quota ${String(ctxQ.name)}` : null, series: await series(['context_bytes_written']) });

  // token limits are on input or output tokens (the enforcer's model_tokens_in / model_tokens_out)
  const tokQ = quotaFor(['model_tokens_in', 'model_tokens_out']) ?? budgetFor(['model_tokens_in', 'model_tokens_out']);
  const tokMetrics = tokQ ? [String(tokQ.metric)] : ['model_tokens_in', 'model_tokens_out'];
  const tokUsed = await usedIn(tokQ, tokMetrics);
  const tokCapRaw = tokQ ? (tokQ.hard_limit ?? tokQ.limit_units) : null;
  const tokCap = tokCapRaw == null ? null : String(tokCapRaw);
  const tokLabel = tokQ?.metric === 'model_tokens_in' ? 'Model tokens in' : tokQ?.metric === 'model_tokens_out' ? 'Model tokens out' : 'Model tokens';
  cards.push({ key: 'tokens', label: tokLabel, unit: 'tokens', used: tokUsed, cap: tokCap, pct: await pctOf(tokUsed, tokCap), period: String(tokQ?.period ?? `${DAYS}d`), source: tokQ ? `${tokQ.quota_id ? 'quota' : 'budget'} ${String(tokQ.name ?? tokQ.scope)}` : null, series: await series(tokMetrics) });

  // cost in USD: the enforcer ledger's cost_usd, priced once, by the enforcer
  const costB = budgetFor(['cost_usd']);
  const costUsed = await usedIn(costB, ['cost_usd']);
  const costCap = costB ? String(costB.limit_units) : null;
  cards.push({ key: 'cost', label: 'Model cost', unit: 'usd', used: costUsed, cap: costCap, pct: await pctOf(costUsed, costCap), period: String(costB?.period ?? `${DAYS}d`), source: costB ? `budget ${String(costB.scope)}` : null, series: await series(['cost_usd']) });

  const text = (unit: string, v: string) => (unit === 'bytes' ? formatBytes(v) : unit === 'usd' ? formatUsd(v) : formatCount(v));
  const out: UtilisationCard[] = cards.map((c) => ({ ...c, used_text: text(c.unit, c.used), cap_text: c.cap === null ? null : text(c.unit, c.cap) }));
  return { deployment_id: deploymentId, generated_at: now.toISOString(), cards: out, limits };
}

/** Bottleneck callouts: how often each code blocked or warned in the last 7 days. */
export async function bottlenecks(c: pg.PoolClient, deploymentId: string, now: Date = new Date()): Promise<Row[]> {
  await requireDeployment(c, deploymentId);
  const r = await c.query(
    `select code, count(*)::int as times, max(created_at) as last_at,
            max(context->>'action') filter (where context ? 'action') as action,
            (array_agg(message order by created_at desc))[1] as last_message
     from alert where deployment_id = $1 and created_at >= $2::timestamptz - interval '7 days'
     group by code order by count(*) desc, code`,
    [deploymentId, now],
  );
  return r.rows as Row[];
}
