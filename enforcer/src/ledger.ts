import type pg from 'pg';
import { revisionKey, type LlmUsage } from '@kaching/contracts';
import { fromMicro, toMicro } from '@kaching/contracts';
import { SUMMED_METRICS, windowUsage, budgetUsage, type DeploymentLimits } from '@kaching/contracts';
import { localDay, windowForDay, type PeriodWindow } from '@kaching/contracts';
import { attributionInstant, parseTagScope } from '@kaching/contracts';
import type { Decoded, EngineCtx } from './engine.js';

/**
 * The usage ledger: each identity's last revision as a contribution (enforcer_contribution) and the daily
 * sums it moves by difference (enforcer_usage_daily), and the usage a deployment's limits read from it.
 */

export interface LedgerRow {
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

/** Rows for the usage records of a batch: the last revision per identity, with cost and local day. */
export async function toRows(ctx: EngineCtx, batch: Decoded[]): Promise<{ rows: LedgerRow[]; unknownDeployments: number }> {
  const best = new Map<string, LedgerRow>();
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

/**
 * Applies the rows by difference (an older revision changes nothing) in the zone each deployment has now, and
 * returns the rows that won. A timezone change (which rebuilds the ledger in the new zone) updates the
 * deployment row, so it waits for this batch, or this batch for it — never a day in a stale zone.
 */
export async function applyUsage(client: pg.PoolClient, rows: LedgerRow[]): Promise<LedgerRow[]> {
  const zones = await client.query<{ deployment_id: string; timezone: string }>(
    'select deployment_id, timezone from deployment where deployment_id = any($1::uuid[]) order by deployment_id for share',
    [[...new Set(rows.map((r) => r.deployment_id))]],
  );
  const zoneOf = new Map(zones.rows.map((z) => [z.deployment_id, z.timezone]));
  for (const r of rows) r.day = localDay(r.at, zoneOf.get(r.deployment_id) ?? 'UTC');
  const res = await client.query(APPLY_SQL, [JSON.stringify(rows.map(({ at: _a, ...r }) => r))]);
  const won = new Set(res.rows.map((r) => `${r.deployment_id}\u0000${r.correlation_id}`));
  return rows.filter((r) => won.has(`${r.deployment_id}\u0000${r.correlation_id}`));
}

/** One figure a limit compares with: a metric summed over a window, for a tag scope or the whole deployment. */
export interface UsageNeed {
  key: string;
  metric: string;
  window: PeriodWindow;
  /** A budget scoped to a tag value (`tag:<key>=<value>`) counts only the events carrying it. */
  budgetScope?: string;
}

export const usageKey = (metric: string, w: PeriodWindow, scope = '') => `${scope}|${metric}|${w.startDay}|${w.endDay}`;

/** Every figure the limits of a deployment compare at its local day `day` (quotas, budgets, license caps). */
export function usageNeeds(lim: DeploymentLimits, day: string): UsageNeed[] {
  const tz = lim.timezone;
  const out: UsageNeed[] = [];
  for (const q of lim.quotas) {
    const w = windowForDay(q.period, day, tz);
    out.push({ key: usageKey(q.metric, w), metric: q.metric, window: w });
  }
  for (const b of lim.budgets) {
    const w = windowForDay(b.period, day, tz);
    if (parseTagScope(b.scope)) out.push({ key: usageKey(b.metric, w, b.scope), metric: b.metric, window: w, budgetScope: b.scope });
    else out.push({ key: usageKey(b.metric, w), metric: b.metric, window: w });
  }
  if (lim.license) {
    const dayW = windowForDay('daily', day, tz);
    if (lim.license.nodes_limit !== null) out.push({ key: usageKey('nodes_active', dayW), metric: 'nodes_active', window: dayW });
    if (lim.license.seats_limit !== null) out.push({ key: usageKey('seats_active', dayW), metric: 'seats_active', window: dayW });
  }
  return out;
}

export interface ActiveRow {
  deployment_id: string;
  decision_id: string;
  scope: string;
  code: string;
  decision: import('@kaching/contracts').PolicyDecision;
}

/** What evaluating many deployments reads, fetched together: newest local day, summed usage, active decisions. */
export interface Prefetched {
  latestDay: Map<string, string>;
  /** `${deployment}${usageKey}` → micro-units. */
  usage: Map<string, bigint>;
  active: Map<string, ActiveRow[]>;
}

/** Everything the evaluation of many deployments reads, in three queries instead of a few per deployment. */
export async function prefetch(client: pg.PoolClient, lims: DeploymentLimits[]): Promise<Prefetched> {
  const ids = lims.map((l) => l.deployment_id);
  const latestDay = new Map<string, string>();
  const usage = new Map<string, bigint>();
  const active = new Map<string, ActiveRow[]>();
  if (!ids.length) return { latestDay, usage, active };
  const s = await client.query('select deployment_id, latest_day::text as d from enforcer_deployment_state where deployment_id = any($1::uuid[])', [ids]);
  for (const r of s.rows) latestDay.set(r.deployment_id, r.d);
  const items: [string, UsageNeed][] = [];
  for (const l of lims) {
    const day = latestDay.get(l.deployment_id);
    if (!day) continue;
    for (const n of usageNeeds(l, day)) if (!n.budgetScope && SUMMED_METRICS.includes(n.metric)) items.push([l.deployment_id, n]);
  }
  if (items.length) {
    const r = await client.query(
      `select i.idx, coalesce((select sum(value) from enforcer_usage_daily u where u.deployment_id = i.dep and u.metric = i.metric and u.day >= i.s and u.day < i.e), 0)::text as v
         from unnest($1::uuid[], $2::text[], $3::date[], $4::date[]) with ordinality as i(dep, metric, s, e, idx)`,
      [items.map((x) => x[0]), items.map((x) => x[1].metric), items.map((x) => x[1].window.startDay), items.map((x) => x[1].window.endDay)],
    );
    for (const row of r.rows) {
      const [dep, n] = items[Number(row.idx) - 1]!;
      usage.set(dep + n.key, toMicro(row.v));
    }
  }
  const a = await client.query<ActiveRow>(`select deployment_id, decision_id, scope, code, decision from enforcer_decision where deployment_id = any($1::uuid[]) and state = 'active'`, [ids]);
  for (const r of a.rows) active.set(r.deployment_id, [...(active.get(r.deployment_id) ?? []), r]);
  return { latestDay, usage, active };
}

/** The figures `usageNeeds` names, from the prefetch where it has them, else read now. */
export async function readUsage(client: pg.PoolClient, lim: DeploymentLimits, day: string, pre?: Prefetched): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const n of usageNeeds(lim, day)) {
    if (out.has(n.key)) continue;
    const got = pre?.usage.get(lim.deployment_id + n.key);
    out.set(n.key, got ?? (n.budgetScope ? await budgetUsage(client, lim.deployment_id, { scope: n.budgetScope, metric: n.metric }, n.window) : await windowUsage(client, lim.deployment_id, n.metric, n.window)));
  }
  return out;
}

