import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import {
  advanceLane, beginLaneTransaction, lockLane, type LeaseToken, revisionKey, type DecisionAction, type DecisionCode, type PeriodKind, type PolicyDecision, type StreamRecord, type Names,
} from '@kaching/contracts';
import { fromMicro, toMicro } from '@kaching/contracts';
import { licenseStatus, loadLimits, SUMMED_METRICS, windowUsage, type DeploymentLimits } from '@kaching/contracts';
import { localDay, windowForDay, type PeriodWindow } from '@kaching/contracts';
import { attributionInstant, formatQuantity, parseTagScope, type LlmUsage, type PriceBook } from '@kaching/contracts';
import { budgetUsage } from '@kaching/contracts';
import { suggestPlan } from './suggest.js';

export const CHECKPOINT_KEY = 'enforcer';

/** Deterministic decision id: same deployment, code, scope, window and threshold → same id, forever. */
export function decisionId(deploymentId: string, code: DecisionCode, scope: string, windowStart: string | null, threshold: string | null): string {
  return createHash('sha256').update([deploymentId, code, scope, windowStart ?? '-', threshold ?? '-'].join('|')).digest('hex').slice(0, 32);
}

/** Cached limits per deployment; a config change drops the entry, and a TTL bounds staleness if one is missed. */
export class LimitsCache {
  private m = new Map<string, { p: Promise<DeploymentLimits | null>; at: number }>();
  constructor(private readonly ttlMs = 30_000) {}
  get(db: pg.Pool, id: string): Promise<DeploymentLimits | null> {
    const e = this.m.get(id);
    if (e && Date.now() - e.at < this.ttlMs) return e.p;
    const p = loadLimits(db, id);
    this.m.set(id, { p, at: Date.now() });
    p.catch(() => this.m.delete(id));
    return p;
  }
  drop(id?: string): void {
    if (id) this.m.delete(id);
    else this.m.clear();
  }
}

export interface Decoded {
  seq: number;
  record: StreamRecord;
  /** eventDigest, when the Nats-Msg-Id carried it (saves re-canonicalising the event). */
  digest?: string;
}

interface Row {
  deployment_id: string;
  correlation_id: string;
  org_id: string;
  revision: string;
  day: string;
  node_id: string;
  agent_id: string;
  status: string;
  model_name: string | null;
  cost_micro_usd: string | null;
  price_version: number | null;
  amounts: Record<string, number | string>;
  stream_seq: number;
  at: number;
  attributed_at: string;
  provider: string | null;
  /** The event's model usage, kept so the contribution can be priced again when the book changes (reprice.ts). */
  llm: LlmUsage | null;
  tags: Record<string, string> | null;
}

export interface EngineCtx {
  pool: pg.Pool;
  names: Names;
  limits: LimitsCache;
  prices: PriceBook;
  onDecision?: (d: PolicyDecision) => void;
  /** Decision ids known to be committed: the steady state skips re-inserting them every batch. */
  known?: Set<string>;
  /** Ids touched by the open transaction; moved to `known` only after commit. */
  touched?: string[];
}

/** Rows for the usage records of a batch: the last revision per identity, with cost and local day. */
async function toRows(ctx: EngineCtx, batch: Decoded[]): Promise<{ rows: Row[]; unknownDeployments: number }> {
  const best = new Map<string, Row>();
  let unknown = 0;
  for (const d of batch) {
    if (d.record.kind !== 'usage') continue;
    const e = d.record.usage;
    const lim = await ctx.limits.get(ctx.pool, e.deployment_id);
    if (!lim) {
      unknown++;
      continue;
    }
    const rev = revisionKey(e, d.digest);
    const key = `${e.deployment_id}\u0000${e.job.correlation_id}`;
    const prev = best.get(key);
    if (prev && prev.revision >= rev) continue;
    const at = attributionInstant(e.job);
    let cost: { microUsd: bigint; version: number } | null = null;
    if (e.llm) cost = ctx.prices.cost(e.llm, at, { gpu_seconds: e.metrics.gpu_seconds, cpu_seconds: e.metrics.cpu_seconds });
    const m = e.metrics;
    best.set(key, {
      deployment_id: e.deployment_id, correlation_id: e.job.correlation_id, org_id: d.record.ingest.org_id, revision: rev,
      // the attribution instant (ended_at ?? started_at) decides the local day, as in the daily rollups
      day: localDay(at, lim.timezone), attributed_at: new Date(at).toISOString(), node_id: e.node.node_id, agent_id: e.agent.agent_id, status: e.job.status,
      model_name: e.llm?.model_name ?? null, provider: e.llm?.provider ?? null, llm: e.llm ?? null,
      tags: e.tags && Object.keys(e.tags).length ? e.tags : null,
      cost_micro_usd: cost ? cost.microUsd.toString() : null, price_version: cost?.version ?? null,
      amounts: {
        cpu_seconds: m.cpu_seconds, gpu_seconds: m.gpu_seconds, context_bytes_written: m.context_bytes_written, context_bytes_read: m.context_bytes_read,
        context_reads: m.context_reads, context_writes: m.context_writes, model_tokens_in: e.llm?.tokens_in ?? 0, model_tokens_out: e.llm?.tokens_out ?? 0,
        // exact: micro-USD → USD as a decimal string, summed by Postgres numeric
        cost_usd: cost ? fromMicro(cost.microUsd) : '0', jobs: 1,
      },
      stream_seq: d.seq, at,
    });
  }
  return { rows: [...best.values()], unknownDeployments: unknown };
}

const APPLY_SQL = `
with input as (
  select * from jsonb_to_recordset($1::jsonb) as x(deployment_id uuid, correlation_id text, org_id uuid, revision text, day date,
    attributed_at timestamptz, node_id uuid, agent_id uuid, status text, model_name text, provider text, llm jsonb, tags jsonb,
    cost_micro_usd bigint, price_version integer, amounts jsonb, stream_seq bigint)
),
old as (
  select c.deployment_id, c.correlation_id, c.org_id, c.day, c.amounts, c.revision
    from enforcer_contribution c join input i using (deployment_id, correlation_id)
),
win as (
  select i.* from input i left join old o using (deployment_id, correlation_id)
   where o.revision is null or (i.revision collate "C") > o.revision
),
deltas as (
  select deployment_id, org_id, day, metric, sum(v) as v from (
    select w.deployment_id, w.org_id, w.day, e.key as metric, e.value::numeric as v from win w, jsonb_each_text(w.amounts) e
    union all
    select o.deployment_id, o.org_id, o.day, e.key, -(e.value::numeric) from old o join win w using (deployment_id, correlation_id), jsonb_each_text(o.amounts) e
  ) z group by deployment_id, org_id, day, metric
),
up as (
  insert into enforcer_usage_daily (deployment_id, metric, day, org_id, value)
  select deployment_id, metric, day, org_id, v from deltas
  on conflict (deployment_id, metric, day) do update set value = enforcer_usage_daily.value + excluded.value
  returning 1
),
c as (
  insert into enforcer_contribution (deployment_id, correlation_id, org_id, revision, day, attributed_at, node_id, agent_id, status, model_name, provider, llm, tags,
    cost_micro_usd, price_version, amounts, stream_seq)
  select deployment_id, correlation_id, org_id, revision, day, attributed_at, node_id, agent_id, status, model_name, provider, llm, tags,
    cost_micro_usd, price_version, amounts, stream_seq from win
  on conflict (deployment_id, correlation_id) do update set revision = excluded.revision, day = excluded.day, attributed_at = excluded.attributed_at, node_id = excluded.node_id,
    agent_id = excluded.agent_id, status = excluded.status, model_name = excluded.model_name, provider = excluded.provider, llm = excluded.llm,
    tags = excluded.tags, cost_micro_usd = excluded.cost_micro_usd,
    price_version = excluded.price_version, amounts = excluded.amounts, stream_seq = excluded.stream_seq
  returning 1
),
s as (
  insert into enforcer_deployment_state (deployment_id, latest_day)
  select deployment_id, max(day) from win group by deployment_id
  on conflict (deployment_id) do update set latest_day = greatest(enforcer_deployment_state.latest_day, excluded.latest_day)
  returning 1
),
r as (
  update enforcer_reservation v set settled_at = now() from input i
   where v.deployment_id = i.deployment_id and v.correlation_id = i.correlation_id and v.settled_at is null
  returning 1
)
select w.deployment_id, w.correlation_id, (select count(*) from up) + (select count(*) from c) + (select count(*) from s) + (select count(*) from r) as n
  from win w`;

/**
 * Serialises everything that reads and writes a deployment's usage and decisions (batches of any lane,
 * config re-evaluations), across instances: a re-partition can put one deployment's events in two lanes
 * owned by two processes, and two transactions that each saw only their own part could both miss a threshold.
 */
export async function lockDeployments(client: pg.PoolClient, ids: Iterable<string>): Promise<void> {
  const list = [...new Set(ids)].sort();
  if (!list.length) return;
  await client.query(`select pg_advisory_xact_lock(hashtextextended('kaching.enforcer.' || d, 0)) from (select d from unnest($1::text[]) as d order by d) s`, [list]);
}

export interface BatchResult {
  applied: number;
  skipped: number;
  lastSeq: number;
  decisions: PolicyDecision[];
}

/**
 * One batch in ONE transaction: skip seq <= checkpoint, apply usage by difference, evaluate the touched
 * deployments, write new decisions (+ alerts, suggestions, outbox, notifications), advance the checkpoint.
 */
export async function processBatch(ctx: EngineCtx, batch: Decoded[], lease: LeaseToken): Promise<BatchResult> {
  const client = await ctx.pool.connect();
  try {
    await beginLaneTransaction(client, lease);
    // the lane's checkpoint and this instance's fence (contracts/src/consumer/lease.ts)
    const cp = await lockLane(client, lease);
    ctx.touched = [];
    const fresh = batch.filter((d) => d.seq > cp);
    const maxSeq = batch.reduce((a, d) => Math.max(a, d.seq), cp);
    // priced with the book as of this transaction: a price writer waits for it (PriceBook.lockForBatch)
    if (fresh.some((d) => d.record.kind === 'usage' && d.record.usage.llm)) await ctx.prices.lockForBatch(client);
    const { rows } = await toRows(ctx, fresh);
    const decisions: PolicyDecision[] = [];
    if (rows.length) {
      await lockDeployments(client, rows.map((r) => r.deployment_id));
      // Days in the zone the deployment has now: a timezone change (which rebuilds the ledger in the new zone)
      // updates the deployment row, so it waits for this batch, or this batch for it — never a day in a stale zone.
      const zones = await client.query<{ deployment_id: string; timezone: string }>(
        'select deployment_id, timezone from deployment where deployment_id = any($1::uuid[]) order by deployment_id for share',
        [[...new Set(rows.map((r) => r.deployment_id))]],
      );
      const zoneOf = new Map(zones.rows.map((z) => [z.deployment_id, z.timezone]));
      for (const r of rows) r.day = localDay(r.at, zoneOf.get(r.deployment_id) ?? 'UTC');
      const res = await client.query(APPLY_SQL, [JSON.stringify(rows.map(({ at: _a, ...r }) => r))]);
      const won = new Set(res.rows.map((r) => `${r.deployment_id}\u0000${r.correlation_id}`));
      const byDep = new Map<string, { at: number; unpriced: Map<string, string> }>();
      for (const r of rows) {
        if (!won.has(`${r.deployment_id}\u0000${r.correlation_id}`)) continue;
        const x = byDep.get(r.deployment_id) ?? { at: 0, unpriced: new Map<string, string>() };
        x.at = Math.max(x.at, r.at);
        if (r.model_name && r.cost_micro_usd === null) x.unpriced.set(r.model_name, r.day);
        byDep.set(r.deployment_id, x);
      }
      const lims = new Map<string, DeploymentLimits>();
      for (const dep of byDep.keys()) {
        const lim = await ctx.limits.get(ctx.pool, dep);
        if (lim) lims.set(dep, lim);
      }
      const pre = await prefetch(client, [...lims.values()]);
      for (const [dep, x] of byDep) {
        const lim = lims.get(dep);
        if (!lim) continue;
        decisions.push(...(await evaluateDeployment(ctx, client, lim, { at: x.at, unpriced: x.unpriced, pre })));
      }
    }
    if (maxSeq > cp) await advanceLane(client, lease, maxSeq);
    await client.query('commit');
    if (ctx.known && ctx.touched) {
      if (ctx.known.size > 100_000) ctx.known.clear();
      for (const id of ctx.touched) ctx.known.add(id);
    }
    return { applied: rows.length, skipped: batch.length - fresh.length, lastSeq: maxSeq, decisions };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Re-evaluates one deployment now (config change: a raised limit clears, a lowered one decides). */
export async function reevaluate(ctx: EngineCtx, deploymentId: string, now: Date = new Date()): Promise<PolicyDecision[]> {
  const lim = await ctx.limits.get(ctx.pool, deploymentId);
  if (!lim) return [];
  const client = await ctx.pool.connect();
  try {
    await client.query('begin');
    await lockDeployments(client, [deploymentId]);
    const out = await evaluateDeployment(ctx, client, lim, { at: now.getTime(), unpriced: new Map(), now });
    await client.query('commit');
    return out;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

interface ActiveRow {
  deployment_id: string;
  decision_id: string;
  scope: string;
  code: string;
  decision: PolicyDecision;
}

interface Prefetched {
  latestDay: Map<string, string>;
  usage: Map<string, bigint>;
  active: Map<string, ActiveRow[]>;
}

const usageKey = (dep: string, metric: string, w: PeriodWindow) => `${dep}|${metric}|${w.startDay}|${w.endDay}`;

/** Everything the evaluation of many deployments reads, in three queries instead of a few per deployment. */
async function prefetch(client: pg.PoolClient, lims: DeploymentLimits[]): Promise<Prefetched> {
  const ids = lims.map((l) => l.deployment_id);
  const latestDay = new Map<string, string>();
  const usage = new Map<string, bigint>();
  const active = new Map<string, ActiveRow[]>();
  if (!ids.length) return { latestDay, usage, active };
  const s = await client.query('select deployment_id, latest_day::text as d from enforcer_deployment_state where deployment_id = any($1::uuid[])', [ids]);
  for (const r of s.rows) latestDay.set(r.deployment_id, r.d);
  const items: [string, string, PeriodWindow][] = [];
  for (const l of lims) {
    const day = latestDay.get(l.deployment_id);
    if (!day) continue;
    for (const x of [...l.quotas, ...l.budgets.filter((b) => !parseTagScope(b.scope))]) {
      if (SUMMED_METRICS.includes(x.metric)) items.push([l.deployment_id, x.metric, windowForDay(x.period, day, l.timezone)]);
    }
  }
  if (items.length) {
    const r = await client.query(
      `select i.idx, coalesce((select sum(value) from enforcer_usage_daily u where u.deployment_id = i.dep and u.metric = i.metric and u.day >= i.s and u.day < i.e), 0)::text as v
         from unnest($1::uuid[], $2::text[], $3::date[], $4::date[]) with ordinality as i(dep, metric, s, e, idx)`,
      [items.map((x) => x[0]), items.map((x) => x[1]), items.map((x) => x[2].startDay), items.map((x) => x[2].endDay)],
    );
    for (const row of r.rows) {
      const [dep, metric, w] = items[Number(row.idx) - 1]!;
      usage.set(usageKey(dep, metric, w), toMicro(row.v));
    }
  }
  const a = await client.query<ActiveRow>(`select deployment_id, decision_id, scope, code, decision from enforcer_decision where deployment_id = any($1::uuid[]) and state = 'active'`, [ids]);
  for (const r of a.rows) active.set(r.deployment_id, [...(active.get(r.deployment_id) ?? []), r]);
  return { latestDay, usage, active };
}

interface Candidate {
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

/**
 * Evaluates a deployment's limits at its newest local day (late events for old days never move the
 * current decision backwards), or at `now` for a config change.
 */
async function evaluateDeployment(
  ctx: EngineCtx,
  client: pg.PoolClient,
  lim: DeploymentLimits,
  o: { at: number; unpriced: Map<string, string>; now?: Date; pre?: Prefetched },
): Promise<PolicyDecision[]> {
  const tz = lim.timezone;
  let day: string;
  if (o.now) {
    day = localDay(o.now, tz);
  } else if (o.pre?.latestDay.has(lim.deployment_id)) {
    day = o.pre.latestDay.get(lim.deployment_id)!;
  } else {
    const s = await client.query('select latest_day::text as d from enforcer_deployment_state where deployment_id = $1', [lim.deployment_id]);
    day = s.rows[0]?.d ?? localDay(o.at, tz);
  }
  const usageOf = async (metric: string, w: PeriodWindow): Promise<bigint> =>
    o.pre?.usage.get(usageKey(lim.deployment_id, metric, w)) ?? windowUsage(client, lim.deployment_id, metric, w);
  const hard = lim.enforcement === 'hard';
  const byScope = new Map<string, Candidate[]>();
  const add = (c: Candidate) => byScope.set(c.scope, [...(byScope.get(c.scope) ?? []), c]);
  const windowOf = new Map<string, string>();

  for (const q of lim.quotas) {
    const w = windowForDay(q.period, day, tz);
    windowOf.set(q.name, w.windowStart);
    const used = await usageOf(q.metric, w);
    const hardL = q.hard_limit === null ? null : toMicro(q.hard_limit);
    const soft = q.soft_threshold === null ? null : toMicro(q.soft_threshold);
    const cap = hardL ?? soft!;
    const base = { scope: q.name, metric: q.metric, window: w, observed: used, limit: hardL ?? undefined, suggest: { metric: q.metric, period: q.period, observed: used, cap } };
    if (soft !== null && used >= soft) {
      add({ ...base, code: 'QUOTA_NEARING', action: 'warn', severity: 'warn', threshold: soft,
        message: `Quota ${q.name}: ${q.metric} ${human(q.metric, used)} reached the soft threshold ${human(q.metric, soft)} (${q.period} window from ${w.startDay})` });
    }
    if (hardL !== null && used > hardL) {
      add({ ...base, code: 'QUOTA_EXCEEDED', action: hard ? 'block' : 'warn', severity: 'error', threshold: hardL,
        message: `Quota ${q.name}: ${q.metric} ${human(q.metric, used)} exceeds the limit ${human(q.metric, hardL)} (${q.period} window from ${w.startDay})` });
    }
  }
  for (const b of lim.budgets) {
    const w = windowForDay(b.period, day, tz);
    windowOf.set(b.scope, w.windowStart);
    // a budget scoped to a tag value counts only the usage of events carrying it (chargeback)
    const used = parseTagScope(b.scope) ? await budgetUsage(client, lim.deployment_id, b, w) : await usageOf(b.metric, w);
    const limit = toMicro(b.limit_units);
    if (used >= limit) {
      const params: PolicyDecision['params'] = {};
      if (b.action === 'throttle' && b.action_params?.max_concurrency !== undefined) params.max_concurrency = b.action_params.max_concurrency;
      if (b.action === 'fallback_model' && b.action_params?.model !== undefined) params.model = b.action_params.model;
      add({ code: 'BUDGET_EXCEEDED', scope: b.scope, metric: b.metric, window: w, observed: used, limit, threshold: limit,
        action: hard ? b.action : 'warn', severity: 'error', ...(Object.keys(params).length ? { params } : {}),
        message: `Budget ${b.scope}: ${b.metric} ${human(b.metric, used)} reached the budget ${human(b.metric, limit)} (${b.period} window from ${w.startDay}); action ${hard ? b.action : 'warn'}`,
        suggest: { metric: b.metric, period: b.period, observed: used, cap: limit } });
    }
  }
  if (lim.license) {
    const l = lim.license;
    if (licenseStatus(l, o.at) === 'expired') {
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
      const used = await windowUsage(client, lim.deployment_id, metric, dayW);
      const capM = toMicro(cap);
      if (used > capM) {
        add({ code, scope, metric, window: dayW, observed: used, limit: capM, threshold: capM, action: hard ? 'block' : 'warn', severity: 'error',
          message: `${human(metric, used)} ${metric.replace('_active', '')} active on ${dayW.startDay}; the license allows ${human(metric, capM)}`,
          suggest: { metric, period: null, observed: used, cap: capM } });
      }
    }
  }
  // once per model and deployment (no window): it stays active until a price or alias covers the model,
  // and then the events already stored are priced too (reprice.ts)
  for (const model of o.unpriced.keys()) {
    add({ code: 'PRICE_UNKNOWN', scope: `model:${model}`, action: 'warn', severity: 'warn',
      message: `No price is known for model ${model}: its cost is counted once a price or alias covers it (kaching prices sync / price set / prices alias set)` });
  }

  const out: PolicyDecision[] = [];
  for (const [scope, cands] of byScope) out.push(...(await applyScope(ctx, client, lim, scope, cands, !!o.now)));
  // after applyScope: its inserts may have replaced prefetched actives, so only use the prefetch when nothing was added
  const activeRows =
    o.pre && out.length === 0
      ? o.pre.active.get(lim.deployment_id) ?? []
      : (await client.query<ActiveRow>(`select deployment_id, decision_id, scope, code, decision from enforcer_decision where deployment_id = $1 and state = 'active'`, [lim.deployment_id])).rows;
  for (const a of activeRows) {
    if (byScope.has(a.scope)) continue;
    const cur = windowOf.get(a.scope);
    const was = a.decision.period?.window_start;
    let clear: boolean;
    if (o.now) {
      // config change: a raised (or removed) limit clears; a decision about a later window than now stays
      if (a.code === 'PRICE_UNKNOWN') {
        clear = ctx.prices.pricesModel(a.scope.slice('model:'.length));
      } else clear = !(was && cur && was > cur);
    } else {
      // event path: only a rolled-over period clears (a replay rebuilding usage must not clear the current window)
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

/** Exact micro-units → text for people (the decision's numbers and the alert context stay exact). */
const human = (metric: string, v: bigint): string => formatQuantity(metric, fromMicro(v));

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
