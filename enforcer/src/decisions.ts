import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { fromMicro, type DecisionCode, type DeploymentLimits, type PolicyDecision } from '@kaching/contracts';
import type { EngineCtx } from './engine.js';
import type { Candidate, Evaluation } from './evaluate.js';
import type { ActiveRow } from './ledger.js';
import { suggestPlan } from './suggest.js';

/**
 * Decision persistence: a candidate becomes a decision with a deterministic id, recorded once with its alert,
 * suggestion, outbox message and notifications in the batch's transaction; decisions no longer called for clear.
 */

/** Deterministic decision id: same deployment, code, scope, window and threshold → same id, forever. */
/** Deterministic decision id: same deployment, code, scope, window and threshold → same id, forever. */
export function decisionId(deploymentId: string, code: DecisionCode, scope: string, windowStart: string | null, threshold: string | null): string {
  return createHash('sha256').update([deploymentId, code, scope, windowStart ?? '-', threshold ?? '-'].join('|')).digest('hex').slice(0, 32);
}

/**
 * Writes what an evaluation calls for: new decisions per scope, then clears the active ones no candidate holds
 * any more — on the event path only when their period rolled over (a replay rebuilding usage must not clear the
 * current window), on a config change when the limit was raised or removed (or a price now covers the model).
 */
export async function persistDecisions(
  ctx: EngineCtx,
  client: pg.PoolClient,
  lim: DeploymentLimits,
  ev: Evaluation,
  o: { configChange: boolean; active?: ActiveRow[] },
): Promise<PolicyDecision[]> {
  const out: PolicyDecision[] = [];
  for (const [scope, cands] of ev.byScope) out.push(...(await applyScope(ctx, client, lim, scope, cands, o.configChange)));
  // after applyScope: its inserts may have replaced prefetched actives, so only use the prefetch when nothing was added
  const activeRows =
    o.active && out.length === 0
      ? o.active
      : (await client.query<ActiveRow>(`select deployment_id, decision_id, scope, code, decision from enforcer_decision where deployment_id = $1 and state = 'active'`, [lim.deployment_id])).rows;
  for (const a of activeRows) {
    if (ev.byScope.has(a.scope)) continue;
    const cur = ev.windowOf.get(a.scope);
    const was = a.decision.period?.window_start;
    let clear: boolean;
    if (o.configChange) {
      if (a.code === 'PRICE_UNKNOWN') {
        clear = ctx.prices.pricesModel(a.scope.slice('model:'.length));
      } else clear = !(was && cur && was > cur);
    } else {
      clear = !!(was && cur && was < cur);
    }
    if (clear) out.push(await clearDecision(ctx, client, a.decision_id, a.decision));
  }
  return out;
}

async function applyScope(ctx: EngineCtx, client: pg.PoolClient, lim: DeploymentLimits, scope: string, cands: Candidate[], configChange: boolean): Promise<PolicyDecision[]> {
  const out: PolicyDecision[] = [];
  let top: string | null = null;
  for (const c of cands) {
    const d = toDecision(lim, c);
    top = d.decision_id;
    if (!configChange && ctx.known?.has(d.decision_id)) continue;
    ctx.touched?.push(d.decision_id);
    const ins = await client.query(
      `insert into enforcer_decision (decision_id, deployment_id, org_id, code, scope, state, window_start, threshold, decision)
       values ($1, $2, $3, $4, $5, 'active', $6, $7, $8) on conflict (decision_id) do nothing returning decision_id`,
      [d.decision_id, lim.deployment_id, lim.org_id, d.code, scope, c.window?.windowStart ?? null, c.threshold === undefined ? null : fromMicro(c.threshold), d],
    );
    if (!ins.rows[0]) continue;
    await client.query(`update enforcer_decision set state = 'replaced' where deployment_id = $1 and scope = $2 and state = 'active' and decision_id <> $3`, [lim.deployment_id, scope, d.decision_id]);
    await client.query(
      `insert into alert (alert_id, deployment_id, org_id, decision_id, severity, code, message, context)
       values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (decision_id) do nothing`,
      [randomUUID(), lim.deployment_id, lim.org_id, d.decision_id, d.severity, d.code, d.message, { scope, metric: d.metric, period: d.period, observed: d.observed, limit: d.limit, action: d.action, params: d.params }],
    );
    if (c.suggest && c.suggest.cap > 0n) {
      const s = await suggestPlan(client, { currentPlan: lim.license?.plan_id ?? null, ...c.suggest });
      await client.query(
        `insert into suggestion (suggestion_id, deployment_id, org_id, decision_id, kind, rationale, target_plan, diffs)
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (decision_id) do nothing`,
        [randomUUID(), lim.deployment_id, lim.org_id, d.decision_id, s.kind, s.rationale, s.target_plan, s.diffs],
      );
    }
    await enqueue(ctx, client, d, d.decision_id);
    out.push(d);
  }
  // the scope's strongest holding decision must be the active one (e.g. after a limit change back)
  if (top && configChange) {
    const r = await client.query(`select decision_id, state, decision from enforcer_decision where decision_id = $1`, [top]);
    if (r.rows[0] && r.rows[0].state !== 'active') {
      await client.query(`update enforcer_decision set state = 'replaced' where deployment_id = $1 and scope = $2 and state = 'active'`, [lim.deployment_id, scope]);
      await client.query(`update enforcer_decision set state = 'active', cleared_at = null where decision_id = $1`, [top]);
      const d = { ...(r.rows[0].decision as PolicyDecision), state: 'active' as const, issued_at: new Date().toISOString() };
      await enqueue(ctx, client, d, `${top}:reactivated:${randomUUID()}`);
      out.push(d);
    }
  }
  return out;
}

async function clearDecision(ctx: EngineCtx, client: pg.PoolClient, id: string, prev: PolicyDecision): Promise<PolicyDecision> {
  await client.query(`update enforcer_decision set state = 'cleared', cleared_at = now() where decision_id = $1`, [id]);
  const d: PolicyDecision = { ...prev, state: 'cleared', issued_at: new Date().toISOString() };
  await enqueue(ctx, client, d, `${id}:cleared:${randomUUID()}`);
  return d;
}

/** Outbox (published after commit) and one notification per matching webhook, in the decision's transaction. */
async function enqueue(ctx: EngineCtx, client: pg.PoolClient, d: PolicyDecision, msgId: string): Promise<void> {
  await client.query(
    `insert into enforcer_outbox (deployment_id, decision_id, msg_id, kv_key, payload) values ($1, $2, $3, $4, $5) on conflict (msg_id) do nothing`,
    [d.deployment_id, d.decision_id, msgId, ctx.names.decisionKey(d.deployment_id, d.scope), d],
  );
  if (d.state === 'active' && msgId === d.decision_id) {
    await client.query(
      `insert into enforcer_notification (decision_id, webhook_id, org_id, payload)
       select $1, webhook_id, org_id, $2 from enforcer_webhook
        where enabled and org_id = $3 and (deployment_id is null or deployment_id = $4) and (codes is null or $5 = any(codes))
          and (severities is null or $6 = any(severities))
       on conflict do nothing`,
      [d.decision_id, d, d.org_id, d.deployment_id, d.code, d.severity],
    );
  }
  ctx.onDecision?.(d);
}


function toDecision(lim: DeploymentLimits, c: Candidate): PolicyDecision {
  const thr = c.threshold === undefined ? null : fromMicro(c.threshold);
  const d: PolicyDecision = {
    schema: 'kaching.v1.policy_decision',
    decision_id: decisionId(lim.deployment_id, c.code, c.scope, c.window?.windowStart ?? (c.code === 'LICENSE_EXPIRED' ? lim.license?.valid_to ?? null : null), thr),
    deployment_id: lim.deployment_id, org_id: lim.org_id, code: c.code, scope: c.scope, state: 'active', action: c.action,
    enforcement: lim.enforcement, severity: c.severity, message: c.message, issued_at: new Date().toISOString(),
  };
  if (c.metric) d.metric = c.metric;
  if (c.window) d.period = { kind: c.window.kind, window_start: c.window.windowStart, window_end: c.window.windowEnd, timezone: c.window.timezone };
  if (c.threshold !== undefined) d.threshold = Number(fromMicro(c.threshold));
  if (c.observed !== undefined) d.observed = Number(fromMicro(c.observed));
  if (c.limit !== undefined) d.limit = Number(fromMicro(c.limit));
  if (c.params) d.params = c.params;
  return d;
}
