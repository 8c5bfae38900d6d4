import type pg from 'pg';
import { InputError, microUsdToUsd, windowAt } from '@kaching/contracts';
import { requireDeployment } from './reads.js';

export type CostGroupBy = 'model' | 'provider' | 'agent_type' | `tag:${string}`;
export type CostInterval = 'day' | 'hour';

export interface CostQuery {
  deployment_id: string;
  /** Inclusive; a date (the deployment's local day) or an instant. Default: 30 local days before `to`. */
  from?: string;
  /** Exclusive; a date or an instant. Default: the end of the current local day. */
  to?: string;
  group_by?: CostGroupBy;
  interval?: CostInterval;
}

export interface CostAmount {
  cost_micro_usd: number;
  cost_usd: string;
  requests: number;
  /** Integer micro-USD, rounded half up; null without requests. */
  average_micro_usd_per_request: number | null;
  /** Requests whose model had no price yet: their cost is not in the sums (PRICE_UNKNOWN). */
  unpriced_requests: number;
}

export interface CostReport extends CostAmount {
  deployment_id: string;
  timezone: string;
  from: string;
  to: string;
  group_by: CostGroupBy;
  interval: CostInterval;
  currency: 'USD';
  groups: (CostAmount & { key: string | null; provider?: string })[];
  series: { bucket: string; key: string | null; cost_micro_usd: number; cost_usd: string; requests: number }[];
}

const TAG_KEY = /^[a-z][a-z0-9_.-]{0,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function amount(cost: bigint, requests: number, unpriced: number): CostAmount {
  return {
    cost_micro_usd: Number(cost), cost_usd: microUsdToUsd(cost), requests,
    average_micro_usd_per_request: requests ? Number((cost * 2n + BigInt(requests)) / (2n * BigInt(requests))) : null,
    unpriced_requests: unpriced,
  };
}

/**
 * LLM cost of a deployment over a window, grouped and as a series, in integer micro-USD (the projections'
 * costs: each event priced once by the price version in force at its attribution instant). Daily series by
 * model, provider or agent type come from the per-model daily rollup; hourly series and tag groups from the
 * raw samples. Runs inside asOrg(): row-level security limits it to the caller's org.
 */
export async function costs(c: pg.PoolClient, q: CostQuery, now: number): Promise<CostReport> {
  const dep = await requireDeployment(c, q.deployment_id);
  const tz = String(dep.timezone);
  const groupBy: CostGroupBy = q.group_by ?? 'model';
  const interval: CostInterval = q.interval ?? 'day';
  let tagKey: string | null = null;
  if (groupBy.startsWith('tag:')) {
    tagKey = groupBy.slice(4);
    if (!TAG_KEY.test(tagKey)) throw new InputError('FIELD_FORMAT', { field: 'group_by', rule: 'tag:<key> with key ^[a-z][a-z0-9_.-]{0,63}$' });
  } else if (!['model', 'provider', 'agent_type'].includes(groupBy)) {
    throw new InputError('FIELD_ENUM', { field: 'group_by', rule: 'enum:model,provider,agent_type,tag:<key>' });
  }
  const b = await resolveWindow(c, q, now, tz);
  let rows: { bucket: string; key: string | null; provider: string | null; cost: string; requests: string; unpriced: string }[];
  if (interval === 'day' && !tagKey) {
    const key = groupBy === 'model' ? 'model_name' : groupBy;
    const r = await c.query(
      `select day::text as bucket, ${key} as key, ${groupBy === 'model' ? 'min(provider)' : 'null'} as provider,
              sum(cost_micro_usd)::text as cost, sum(requests)::text as requests, sum(unpriced_requests)::text as unpriced
         from usage_rollup_model_daily
        where deployment_id = $1 and day >= $2::date and day < $3::date
        group by 1, 2 order by 1, 2`,
      [q.deployment_id, b.from_day, b.to_day],
    );
    rows = r.rows;
  } else {
    const at = 'coalesce(ended_at, started_at)';
    const params: unknown[] = [q.deployment_id, b.from_ts, b.to_ts];
    const p = (v: unknown) => `$${params.push(v)}`;
    const bucket = interval === 'hour' ? `to_char(date_trunc('hour', ${at}, 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"')` : `((${at}) at time zone ${p(tz)})::date::text`;
    const key = tagKey ? `tags ->> ${p(tagKey)}` : groupBy === 'model' ? 'model_name' : groupBy;
    const r = await c.query(
      `select ${bucket} as bucket, ${key} as key, ${groupBy === 'model' ? 'min(provider)' : 'null'} as provider,
              coalesce(sum(cost_micro_usd), 0)::text as cost, count(*)::text as requests, count(*) filter (where cost_micro_usd is null)::text as unpriced
         from usage_sample
        where deployment_id = $1 and model_name is not null and ${at} >= $2::timestamptz and ${at} < $3::timestamptz
          -- partitioned by started_at: a job attributed in the window started before its end
          and started_at < $3::timestamptz
        group by 1, 2 order by 1, 2`,
      params,
    );
    rows = r.rows;
  }
  const groups = new Map<string, { key: string | null; provider: string | null; cost: bigint; requests: number; unpriced: number }>();
  let total = 0n;
  let requests = 0;
  let unpriced = 0;
  for (const r of rows) {
    const g = groups.get(r.key ?? '\u0000') ?? { key: r.key, provider: r.provider, cost: 0n, requests: 0, unpriced: 0 };
    g.cost += BigInt(r.cost);
    g.requests += Number(r.requests);
    g.unpriced += Number(r.unpriced);
    groups.set(r.key ?? '\u0000', g);
    total += BigInt(r.cost);
    requests += Number(r.requests);
    unpriced += Number(r.unpriced);
  }
  return {
    deployment_id: q.deployment_id, timezone: tz,
    from: interval === 'day' && !tagKey ? b.from_day : new Date(b.from_ts).toISOString(),
    to: interval === 'day' && !tagKey ? b.to_day : new Date(b.to_ts).toISOString(),
    group_by: groupBy, interval, currency: 'USD',
    ...amount(total, requests, unpriced),
    groups: [...groups.values()]
      .sort((x, y) => (y.cost > x.cost ? 1 : y.cost < x.cost ? -1 : String(x.key).localeCompare(String(y.key))))
      .map((g) => ({ key: g.key, ...(groupBy === 'model' && g.provider ? { provider: g.provider } : {}), ...amount(g.cost, g.requests, g.unpriced) })),
    series: rows.map((r) => ({ bucket: r.bucket, key: r.key, cost_micro_usd: Number(r.cost), cost_usd: microUsdToUsd(BigInt(r.cost)), requests: Number(r.requests) })),
  };
}

export interface ResolvedWindow { from_ts: string; to_ts: string; from_day: string; to_day: string }

/**
 * A cost window's ends (dates are the deployment's local days, or instants; defaults: the 30 local days up
 * to the end of today) as instants and as local days for the daily rollups; `from` must lie before `to`.
 */
export async function resolveWindow(c: pg.PoolClient, q: { from?: string; to?: string }, now: number, tz: string): Promise<ResolvedWindow> {
  const bounds = await c.query<{ from_ts: string; to_ts: string; from_day: string; to_day: string }>(
    `with b as (
       select case when $1::text ~ '^\\d{4}-\\d{2}-\\d{2}$' then ($1::date::timestamp at time zone $3) else $1::timestamptz end as f,
              case when $2::text ~ '^\\d{4}-\\d{2}-\\d{2}$' then ($2::date::timestamp at time zone $3) else $2::timestamptz end as t)
     select f::text as from_ts, t::text as to_ts, (f at time zone $3)::date::text as from_day,
            -- a window ending inside a day includes that day in the daily view
            (case when (t at time zone $3)::time = '00:00' then (t at time zone $3)::date else (t at time zone $3)::date + 1 end)::text as to_day
       from b`,
    [...defaultWindow(q, now, tz), tz],
  );
  const b = bounds.rows[0]!;
  if (b.from_ts >= b.to_ts) throw new InputError('FIELD_RANGE', { field: 'from', rule: 'before:to', message: '`from` must lie before `to`' });
  return b;
}

/** The window's ends as given, or the defaults: the 30 local days up to the end of today. */
function defaultWindow(q: { from?: string; to?: string }, now: number, tz: string): [string, string] {
  const today = windowAt('daily', new Date(now), tz);
  const to = q.to ?? today.endDay;
  let from = q.from;
  if (!from) {
    const end = DATE.test(to) ? to : today.endDay;
    const d = new Date(`${end}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() - 30);
    from = d.toISOString().slice(0, 10);
  }
  return [from, to];
}
