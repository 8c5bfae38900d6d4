import {
  licenseStatus, parseTagScope, type DecisionAction, type DecisionCode, type DeploymentLimits, type PeriodKind, type PolicyDecision,
} from '@kaching/contracts';
import { formatQuantity, fromMicro, toMicro, windowForDay, type PeriodWindow } from '@kaching/contracts';
import { usageKey } from './ledger.js';

/** A decision the limits call for, before it has an id, a time and a place in the decision table. */
export interface Candidate {
  code: DecisionCode;
  scope: string;
  action: DecisionAction;
  severity: PolicyDecision['severity'];
  metric?: string;
  window?: PeriodWindow;
  threshold?: bigint;
  observed?: bigint;
  limit?: bigint;
  params?: PolicyDecision['params'];
  message: string;
  suggest?: { metric: string; period: PeriodKind | null; observed: bigint; cap: bigint };
}

export interface Evaluation {
  /** Candidates per scope, strongest last. */
  byScope: Map<string, Candidate[]>;
  /** Each scope's current window start (a decision about an older window is cleared). */
  windowOf: Map<string, string>;
}

/** Exact micro-units → text for people (the decision's numbers and the alert context stay exact). */
const human = (metric: string, v: bigint): string => formatQuantity(metric, fromMicro(v));

/**
 * The limits of a deployment against its usage at local day `day`: pure, no I/O. `usage` holds every figure
 * ledger.usageNeeds(lim, day) names (micro-units); `at` is the instant license validity is judged at;
 * `unpriced` the models seen without a price.
 */
export function evaluateLimits(lim: DeploymentLimits, day: string, usage: ReadonlyMap<string, bigint>, at: number, unpriced: Iterable<string>): Evaluation {
  const tz = lim.timezone;
  const hard = lim.enforcement === 'hard';
  const byScope = new Map<string, Candidate[]>();
  const add = (c: Candidate) => byScope.set(c.scope, [...(byScope.get(c.scope) ?? []), c]);
  const windowOf = new Map<string, string>();
  const used = (metric: string, w: PeriodWindow, scope = '') => usage.get(usageKey(metric, w, scope)) ?? 0n;

  for (const q of lim.quotas) {
    const w = windowForDay(q.period, day, tz);
    windowOf.set(q.name, w.windowStart);
    const u = used(q.metric, w);
    const hardL = q.hard_limit === null ? null : toMicro(q.hard_limit);
    const soft = q.soft_threshold === null ? null : toMicro(q.soft_threshold);
    const cap = hardL ?? soft!;
    const base = { scope: q.name, metric: q.metric, window: w, observed: u, limit: hardL ?? undefined, suggest: { metric: q.metric, period: q.period, observed: u, cap } };
    if (soft !== null && u >= soft) {
      add({ ...base, code: 'QUOTA_NEARING', action: 'warn', severity: 'warn', threshold: soft,
        message: `Quota ${q.name}: ${q.metric} ${human(q.metric, u)} reached the soft threshold ${human(q.metric, soft)} (${q.period} window from ${w.startDay})` });
    }
    if (hardL !== null && u > hardL) {
      add({ ...base, code: 'QUOTA_EXCEEDED', action: hard ? 'block' : 'warn', severity: 'error', threshold: hardL,
        message: `Quota ${q.name}: ${q.metric} ${human(q.metric, u)} exceeds the limit ${human(q.metric, hardL)} (${q.period} window from ${w.startDay})` });
    }
  }
  for (const b of lim.budgets) {
    const w = windowForDay(b.period, day, tz);
    windowOf.set(b.scope, w.windowStart);
    // a budget scoped to a tag value counts only the usage of events carrying it (chargeback)
    const u = used(b.metric, w, parseTagScope(b.scope) ? b.scope : '');
    const limit = toMicro(b.limit_units);
    if (u >= limit) {
      const params: PolicyDecision['params'] = {};
      if (b.action === 'throttle' && b.action_params?.max_concurrency !== undefined) params.max_concurrency = b.action_params.max_concurrency;
      if (b.action === 'fallback_model' && b.action_params?.model !== undefined) params.model = b.action_params.model;
      add({ code: 'BUDGET_EXCEEDED', scope: b.scope, metric: b.metric, window: w, observed: u, limit, threshold: limit,
        action: hard ? b.action : 'warn', severity: 'error', ...(Object.keys(params).length ? { params } : {}),
        message: `Budget ${b.scope}: ${b.metric} ${human(b.metric, u)} reached the budget ${human(b.metric, limit)} (${b.period} window from ${w.startDay}); action ${hard ? b.action : 'warn'}`,
        suggest: { metric: b.metric, period: b.period, observed: u, cap: limit } });
    }
  }
  if (lim.license) {
    const l = lim.license;
    if (licenseStatus(l, at) === 'expired') {
      add({ code: 'LICENSE_EXPIRED', scope: 'license', action: hard ? 'block' : 'warn', severity: 'error',
        message: `License ${l.license_id} (plan ${l.plan_id}) expired at ${l.valid_to}` });
    }
    const dayW = windowForDay('daily', day, tz);
    for (const [code, metric, cap, scope] of [
      ['NODES_LIMIT_EXCEEDED', 'nodes_active', l.nodes_limit, 'nodes'],
      ['SEATS_LIMIT_EXCEEDED', 'seats_active', l.seats_limit, 'seats'],
    ] as const) {
      if (cap === null) continue;
      windowOf.set(scope, dayW.windowStart);
      const u = used(metric, dayW);
      const capM = toMicro(cap);
      if (u > capM) {
        add({ code, scope, metric, window: dayW, observed: u, limit: capM, threshold: capM, action: hard ? 'block' : 'warn', severity: 'error',
          message: `${human(metric, u)} ${metric.replace('_active', '')} active on ${dayW.startDay}; the license allows ${human(metric, capM)}`,
          suggest: { metric, period: null, observed: u, cap: capM } });
      }
    }
  }
  // once per model and deployment (no window): it stays active until a price or alias covers the model,
  // and then the events already stored are priced too (reprice.ts)
  for (const model of unpriced) {
    add({ code: 'PRICE_UNKNOWN', scope: `model:${model}`, action: 'warn', severity: 'warn',
      message: `No price is known for model ${model}: its cost is counted once a price or alias covers it (kaching prices sync / price set / prices alias set)` });
  }
  return { byScope, windowOf };
}
