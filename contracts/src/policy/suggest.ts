import type pg from 'pg';
import type { PeriodKind } from '../types/decision.js';
import { fromMicro, ratio1, toMicro } from './decimal.js';
import { periodLabel } from '../time/periods.js';
import { formatPercent, formatQuantity, formatRatio } from '../format/human.js';

export interface Suggestion {
  kind: 'upgrade_tier' | 'enable_feature' | 'tune_pipeline';
  rationale: string;
  target_plan: string | null;
  diffs: Record<string, unknown>;
}

interface Plan {
  plan_id: string;
  name: string;
  rank: number;
  limits: Record<string, number | null>;
}

// Plan ladders may name caps by their short names.
const ALIASES: Record<string, string[]> = { seats_active: ['seats'], nodes_active: ['nodes'] };

function capOf(p: Plan, metric: string): bigint | null | undefined {
  for (const k of [metric, ...(ALIASES[metric] ?? [])]) {
    if (k in p.limits) {
      const v = p.limits[k];
      return v === null ? null : toMicro(v!);
    }
  }
  return undefined;
}

/**
 * The next plan up the ladder (pricing_plan by rank, meta.limits metric→cap; null = unlimited) whose cap
 * covers the observed usage, with the quantitative deltas in words and as JSON.
 */
export async function suggestPlan(
  db: pg.Pool | pg.PoolClient,
  o: { currentPlan: string | null; metric: string; period: PeriodKind | null; observed: bigint; cap: bigint },
): Promise<Suggestion> {
  const rows = (await db.query('select plan_id, name, rank, meta from pricing_plan order by rank, plan_id')).rows;
  const plans: Plan[] = rows.map((r) => ({ plan_id: r.plan_id, name: r.name, rank: r.rank, limits: (r.meta?.limits ?? {}) as Record<string, number | null> }));
  const current = plans.find((p) => p.plan_id === o.currentPlan);
  const currentCap = (current && capOf(current, o.metric)) || o.cap;
  const label = o.period ? `${cap1(periodLabel(o.period))} ${o.metric}` : o.metric;
  const r = ratio1(o.observed, o.cap);
  const exact = o.cap === 0n ? Infinity : Number(o.observed) / Number(o.cap);
  const of = `${formatQuantity(o.metric, fromMicro(o.observed))} of ${formatQuantity(o.metric, fromMicro(o.cap))}`;
  const head = o.observed > o.cap ? `${label} is ${formatRatio(exact)} your cap (${of})` : `${label} is at ${formatPercent(exact)} of your cap (${of})`;
  const diffs: Record<string, unknown> = {
    metric: o.metric, period: o.period, observed: fromMicro(o.observed), cap: fromMicro(o.cap), ratio: r, from_plan: o.currentPlan,
  };
  for (const p of plans) {
    if (current && p.rank <= current.rank) continue;
    if (p.plan_id === o.currentPlan) continue;
    const c = capOf(p, o.metric);
    if (c === undefined) continue;
    if (c === null || c >= o.observed) {
      const factor = c === null ? null : ratio1(c, currentCap);
      diffs.to_plan = p.plan_id;
      diffs.target_cap = c === null ? null : fromMicro(c);
      diffs.factor = factor;
      const raise = c === null ? `${p.name} removes the cap` : `${p.name} raises it ${factor}× (to ${formatQuantity(o.metric, fromMicro(c))})`;
      return { kind: 'upgrade_tier', rationale: `${head}; ${raise}.`, target_plan: p.plan_id, diffs };
    }
  }
  return { kind: 'tune_pipeline', rationale: `${head}; no plan on the ladder covers it: reduce ${o.metric} or ask for a custom limit.`, target_plan: null, diffs };
}

const cap1 = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
