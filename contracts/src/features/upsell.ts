import type pg from 'pg';
import type { PeriodKind } from '../types/decision.js';
import { toMicro } from '../policy/decimal.js';
import { suggestPlan, type Suggestion } from '../policy/suggest.js';
import { licenseInForce } from './features.js';

export interface UpsellScope {
  /** The quota name the alerts were about. */
  scope: string;
  metric: string;
  period: PeriodKind | null;
  near_alerts: number;
  /** The newest alert's observed value and the quota's cap now (hard limit, else the soft threshold). */
  observed: string;
  cap: string | null;
  last_alert_at: string;
  suggestion: Suggestion | null;
}

export interface UpsellRow {
  rank: number;
  org_id: string;
  org_name: string;
  deployment_id: string;
  deployment_name: string;
  plan_id: string | null;
  near_alerts: number;
  last_alert_at: string;
  /** The suggestion for the scope with the most near-limit alerts (ties: the newest). */
  suggestion: Suggestion | null;
  scopes: UpsellScope[];
}

export interface UpsellReport {
  window: { from: string; to: string; days: number };
  items: UpsellRow[];
}

/**
 * "Who to upsell this week" (KACHING spec, query C): deployments of every org ranked by their near-limit
 * (QUOTA_NEARING) alerts created in (now − days, now], most first, then the newest alert, then the id;
 * each with the upgrade the enforcer's suggestion logic offers for its busiest quota. Installation-wide:
 * run on the operator pool, never under an org's RLS.
 */
export async function upsellReport(db: pg.Pool | pg.PoolClient, now: Date, o: { days?: number; limit?: number } = {}): Promise<UpsellReport> {
  const days = o.days ?? 7;
  const limit = o.limit ?? 25;
  const from = new Date(now.getTime() - days * 86_400_000);
  const r = await db.query(
    `with near as (
       select a.deployment_id, a.context->>'scope' as scope, a.context->>'metric' as metric,
              a.context->'period'->>'kind' as period, a.context->>'observed' as observed, a.created_at
         from alert a
        where a.code = 'QUOTA_NEARING' and a.created_at > $1 and a.created_at <= $2),
     ranked as (
       select deployment_id, count(*)::int as near_alerts, max(created_at) as last_alert_at from near
        group by deployment_id order by count(*) desc, max(created_at) desc, deployment_id limit $3)
     select r.deployment_id, r.near_alerts, r.last_alert_at, d.name as deployment_name, d.org_id, o.name as org_name,
            s.scope, s.metric, s.period, s.alerts, s.observed, s.scope_last,
            coalesce(q.hard_limit, q.soft_threshold)::text as cap
       from ranked r
       join deployment d on d.deployment_id = r.deployment_id
       join org o on o.org_id = d.org_id
       join lateral (
         select scope, min(metric) as metric, min(period) as period, count(*)::int as alerts, max(created_at) as scope_last,
                (array_agg(observed order by created_at desc))[1] as observed
           from near n where n.deployment_id = r.deployment_id group by scope) s on true
       left join quota q on q.deployment_id = r.deployment_id and q.name = s.scope
      order by r.near_alerts desc, r.last_alert_at desc, r.deployment_id, s.alerts desc, s.scope_last desc, s.scope`,
    [from, now, limit],
  );
  const items: UpsellRow[] = [];
  for (const x of r.rows) {
    let row: UpsellRow | undefined = items.at(-1);
    if (!row || row.deployment_id !== x.deployment_id) {
      const lic = await licenseInForce(db, x.deployment_id, now);
      row = {
        rank: items.length + 1, org_id: x.org_id, org_name: x.org_name, deployment_id: x.deployment_id, deployment_name: x.deployment_name,
        plan_id: lic?.plan_id ?? null, near_alerts: x.near_alerts, last_alert_at: new Date(x.last_alert_at).toISOString(), suggestion: null, scopes: [],
      };
      items.push(row);
    }
    const observed = String(x.observed ?? '0');
    // the quota may have been deleted since: then the alert's own facts are all there is
    const cap: string | null = x.cap ?? null;
    const suggestion = cap !== null && toMicro(cap) > 0n
      ? await suggestPlan(db, { currentPlan: row.plan_id, metric: x.metric, period: (x.period ?? null) as PeriodKind | null, observed: toMicro(observed), cap: toMicro(cap) })
      : null;
    row.scopes.push({ scope: x.scope, metric: x.metric, period: x.period ?? null, near_alerts: x.alerts, observed, cap, last_alert_at: new Date(x.scope_last).toISOString(), suggestion });
    row.suggestion ??= suggestion;
  }
  return { window: { from: from.toISOString(), to: now.toISOString(), days }, items };
}
