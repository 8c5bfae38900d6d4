import type pg from 'pg';
import { KachingError } from '../errors/errors.js';
import type { DecisionAction, EnforcementMode, PeriodKind } from '../types/decision.js';
import { windowAt, type PeriodWindow } from '../time/periods.js';
import { parseTagScope, type TagScope } from './tagScope.js';
import { effectiveFeatures, mergeFeatures } from '../features/features.js';
import { fromMicro, toMicro } from './decimal.js';

export interface QuotaLimit {
  quota_id: string;
  name: string;
  metric: string;
  period: PeriodKind;
  hard_limit: string | null;
  soft_threshold: string | null;
}

export interface BudgetLimit {
  budget_id: string;
  scope: string;
  metric: string;
  period: PeriodKind;
  limit_units: string;
  action: DecisionAction;
  action_params: { max_concurrency?: number; model?: string };
}

export interface LicenseLimit {
  license_id: string;
  plan_id: string;
  seats_limit: number | null;
  nodes_limit: number | null;
  features: Record<string, unknown>;
  valid_from: string;
  valid_to: string;
}

export interface DeploymentLimits {
  deployment_id: string;
  org_id: string;
  timezone: string;
  enforcement: EnforcementMode;
  license: LicenseLimit | null;
  /** License features overlaid with the feature_flag rows that take effect. */
  features: Record<string, unknown>;
  quotas: QuotaLimit[];
  budgets: BudgetLimit[];
}

type Q = pg.Pool | pg.PoolClient;

export async function loadLimits(db: Q, deploymentId: string): Promise<DeploymentLimits | null> {
  const d = await db.query('select deployment_id, org_id, timezone, enforcement from deployment where deployment_id = $1', [deploymentId]);
  const dep = d.rows[0];
  if (!dep) return null;
  const [lic, quotas, budgets, flags] = await Promise.all([
    db.query(
      `select license_id, plan_id, seats_limit, nodes_limit, features, valid_from, valid_to from license
        where deployment_id = $1 or (deployment_id is null and org_id = $2)
        order by (deployment_id is not null) desc, activated_at desc limit 1`,
      [deploymentId, dep.org_id],
    ),
    db.query(`select quota_id, name, metric, period, hard_limit::text, soft_threshold::text from quota where deployment_id = $1 order by name`, [deploymentId]),
    db.query(`select budget_id, scope, metric, period, limit_units::text, action, action_params from budget where deployment_id = $1 order by scope`, [deploymentId]),
    db.query(`select flag, enabled, override from feature_flag where deployment_id = $1`, [deploymentId]),
  ]);
  const l = lic.rows[0];
  const license: LicenseLimit | null = l
    ? { license_id: l.license_id, plan_id: l.plan_id, seats_limit: l.seats_limit, nodes_limit: l.nodes_limit, features: l.features ?? {},
        valid_from: new Date(l.valid_from).toISOString(), valid_to: new Date(l.valid_to).toISOString() }
    : null;
  // an "on" flag counts only with the license's grant or an operator override (contracts' rule)
  const features = mergeFeatures(license?.features, flags.rows);
  return {
    deployment_id: dep.deployment_id, org_id: dep.org_id, timezone: dep.timezone, enforcement: dep.enforcement, license, features,
    quotas: quotas.rows, budgets: budgets.rows,
  };
}

/** Usage of a metric in a window, in micro-units (exact). */
export async function windowUsage(db: Q, deploymentId: string, metric: string, w: PeriodWindow): Promise<bigint> {
  if (metric === 'nodes_active' || metric === 'seats_active') {
    const col = metric === 'nodes_active' ? 'node_id' : 'agent_id';
    const r = await db.query(`select count(distinct ${col})::text as n from enforcer_contribution where deployment_id = $1 and day >= $2 and day < $3`, [deploymentId, w.startDay, w.endDay]);
    return toMicro(r.rows[0].n);
  }
  if (metric === 'concurrency') {
    // jobs whose latest revision says running, whatever the window
    const r = await db.query(`select count(*)::text as n from enforcer_contribution where deployment_id = $1 and status = 'running'`, [deploymentId]);
    return toMicro(r.rows[0].n);
  }
  const r = await db.query(
    `select coalesce(sum(value), 0)::text as v from enforcer_usage_daily where deployment_id = $1 and metric = $2 and day >= $3 and day < $4`,
    [deploymentId, metric, w.startDay, w.endDay],
  );
  return toMicro(r.rows[0].v);
}

/**
 * Usage of the events carrying one tag value (a budget scoped `tag:<key>=<value>`), from the per-event ledger
 * (each contribution keeps its event's tags): the same amounts the daily ledger sums, filtered.
 */
export async function tagWindowUsage(db: Q, deploymentId: string, tag: TagScope, metric: string, w: PeriodWindow): Promise<bigint> {
  const inWindow = `deployment_id = $1 and day >= $2 and day < $3 and tags ->> $4 = $5`;
  const args = [deploymentId, w.startDay, w.endDay, tag.key, tag.value];
  let r: pg.QueryResult;
  if (metric === 'nodes_active' || metric === 'seats_active') {
    const col = metric === 'nodes_active' ? 'node_id' : 'agent_id';
    r = await db.query(`select count(distinct ${col})::text as v from enforcer_contribution where ${inWindow}`, args);
  } else if (metric === 'concurrency') {
    r = await db.query(`select count(*)::text as v from enforcer_contribution where deployment_id = $1 and status = 'running' and tags ->> $2 = $3`, [deploymentId, tag.key, tag.value]);
  } else {
    r = await db.query(`select coalesce(sum((amounts ->> $6)::numeric), 0)::text as v from enforcer_contribution where ${inWindow}`, [...args, metric]);
  }
  return toMicro(r.rows[0].v);
}

/** A budget's usage in a window: of the whole deployment, or of one tag value when it is tag-scoped. */
export function budgetUsage(db: Q, deploymentId: string, b: Pick<BudgetLimit, 'scope' | 'metric'>, w: PeriodWindow): Promise<bigint> {
  const tag = parseTagScope(b.scope);
  return tag ? tagWindowUsage(db, deploymentId, tag, b.metric, w) : windowUsage(db, deploymentId, b.metric, w);
}

export type LicenseStatus = 'valid' | 'expired' | 'not_yet_valid' | 'none';
export function licenseStatus(l: LicenseLimit | null, at: number): LicenseStatus {
  if (!l) return 'none';
  if (at < Date.parse(l.valid_from)) return 'not_yet_valid';
  if (at >= Date.parse(l.valid_to)) return 'expired';
  return 'valid';
}

export interface EffectiveLimits extends DeploymentLimits {
  at: string;
  license_status: LicenseStatus;
  nodes_active: number;
  seats_active: number;
  quotas: (QuotaLimit & { window: PeriodWindow; used: string })[];
  budgets: (BudgetLimit & { window: PeriodWindow; used: string; reserved: string; remaining: string })[];
}

/** License merged with quotas and budgets, each with its current window and usage (served at /v1/limits/effective). */
export async function effectiveLimits(pool: pg.Pool, deploymentId: string, now: Date = new Date()): Promise<EffectiveLimits> {
  const lim = await loadLimits(pool, deploymentId);
  if (!lim) throw new KachingError('NOT_FOUND', { message: `No deployment ${deploymentId}`, field: 'deployment_id' });
  const tz = lim.timezone;
  const quotas = await Promise.all(
    lim.quotas.map(async (q) => {
      const window = windowAt(q.period, now, tz);
      return { ...q, window, used: fromMicro(await windowUsage(pool, deploymentId, q.metric, window)) };
    }),
  );
  const budgets = await Promise.all(
    lim.budgets.map(async (b) => {
      const window = windowAt(b.period, now, tz);
      const used = await budgetUsage(pool, deploymentId, b, window);
      const reserved = await openReservations(pool, deploymentId, b.scope, now);
      const rem = toMicro(b.limit_units) - used - reserved;
      return { ...b, window, used: fromMicro(used), reserved: fromMicro(reserved), remaining: fromMicro(rem > 0n ? rem : 0n) };
    }),
  );
  const day = windowAt('daily', now, tz);
  return {
    ...lim, at: now.toISOString(), license_status: licenseStatus(lim.license, now.getTime()),
    // features as published to orchestrators: only a license in force at `now` grants any
    features: (await effectiveFeatures(pool, deploymentId, now))?.features ?? {},
    nodes_active: Number(await windowUsage(pool, deploymentId, 'nodes_active', day)) / 1e6,
    seats_active: Number(await windowUsage(pool, deploymentId, 'seats_active', day)) / 1e6,
    quotas, budgets,
  };
}

export async function openReservations(db: Q, deploymentId: string, scope: string, now: Date): Promise<bigint> {
  const r = await db.query(
    `select coalesce(sum(units), 0)::text as v from enforcer_reservation
      where deployment_id = $1 and scope = $2 and settled_at is null and expires_at > $3`,
    [deploymentId, scope, now],
  );
  return toMicro(r.rows[0].v);
}
