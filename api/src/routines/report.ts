import type pg from 'pg';
import { InputError, microUsdToUsd } from '@kaching/contracts';
import { costs, resolveWindow, type CostAmount } from './costs.js';
import { requireDeployment } from './reads.js';

/** Longest period one report covers: a year and a day, so "last year" always fits. */
export const REPORT_MAX_DAYS = 367;

export interface ReportQuery {
  deployment_id: string;
  /** First local day, inclusive (YYYY-MM-DD). */
  from: string;
  /** Local day after the last one, exclusive (YYYY-MM-DD), as in /v1/costs. */
  to: string;
}

export interface TagCost {
  tag: string;
  value: string;
  cost_micro_usd: number;
  cost_usd: string;
  requests: number;
}

export interface UsageReport {
  deployment: { deployment_id: string; name: string; timezone: string; org_name: string };
  period: { from: string; to: string; last_day: string; days: number; timezone: string };
  /** Sums over the period from the daily rollups; peaks are the highest day. Decimals as strings. */
  totals: {
    jobs: number; jobs_succeeded: number; jobs_failed: number;
    cpu_seconds: string; gpu_seconds: string;
    tokens_in: number; tokens_out: number; tokens_cache_read: number; tokens_cache_write: number; tokens_reasoning: number;
    context_bytes_read: number; context_bytes_written: number;
    disk_io_mb: string; net_in_mb: string; net_out_mb: string;
    peak_seats: number; peak_nodes: number; peak_concurrency: number;
  };
  cost: CostAmount & { currency: 'USD' };
  by_model: (CostAmount & { key: string | null; provider?: string })[];
  by_agent_type: (CostAmount & { key: string | null })[];
  top_tags: TagCost[];
  alerts: { total: number; items: { created_at: string; severity: string; code: string; message: string }[] };
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function days(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

/** Checks a report period: two real dates, `from` before `to`, at most REPORT_MAX_DAYS apart. */
export function checkPeriod(from: string, to: string): number {
  for (const [field, v] of [['from', from], ['to', to]] as const) {
    if (!DATE.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) {
      throw new InputError('FIELD_FORMAT', { field, rule: 'format:date', message: `${field} must be a date (YYYY-MM-DD), the deployment's local day` });
    }
  }
  const n = days(from, to);
  if (n <= 0) throw new InputError('FIELD_RANGE', { field: 'from', rule: 'before:to', message: '`from` must lie before `to` (`to` is exclusive)' });
  if (n > REPORT_MAX_DAYS) throw new InputError('FIELD_RANGE', { field: 'to', rule: `maximum:${REPORT_MAX_DAYS} days`, message: `a report covers at most ${REPORT_MAX_DAYS} days` });
  return n;
}

/**
 * Cost by tag value over a window of instants, across every tag key: the tags that cost most. From the raw
 * samples (tags are not rolled up), at each request's attribution instant, as /v1/costs does.
 */
export async function topTags(c: pg.PoolClient, deploymentId: string, fromTs: string, toTs: string, limit = 10): Promise<TagCost[]> {
  const r = await c.query<{ tag: string; value: string; cost: string; requests: string }>(
    `select t.key as tag, t.value, coalesce(sum(s.cost_micro_usd), 0)::text as cost, count(*)::text as requests
       from usage_sample s cross join lateral jsonb_each_text(coalesce(s.tags, '{}'::jsonb)) t
      where s.deployment_id = $1 and s.model_name is not null
        and coalesce(s.ended_at, s.started_at) >= $2::timestamptz and coalesce(s.ended_at, s.started_at) < $3::timestamptz
        and s.started_at < $3::timestamptz
      group by 1, 2 order by sum(s.cost_micro_usd) desc nulls last, 1, 2 limit $4`,
    [deploymentId, fromTs, toTs, limit],
  );
  return r.rows.map((x) => ({ tag: x.tag, value: x.value, cost_micro_usd: Number(x.cost), cost_usd: microUsdToUsd(BigInt(x.cost)), requests: Number(x.requests) }));
}

/** GET /v1/costs/tags: the window as /v1/costs takes it (local days or instants, same defaults). */
export async function costTags(c: pg.PoolClient, q: { deployment_id: string; from?: string; to?: string; limit?: number }, now: number) {
  const dep = await requireDeployment(c, q.deployment_id);
  const b = await resolveWindow(c, q, now, String(dep.timezone));
  return { deployment_id: q.deployment_id, from: new Date(b.from_ts).toISOString(), to: new Date(b.to_ts).toISOString(), currency: 'USD', items: await topTags(c, q.deployment_id, b.from_ts, b.to_ts, q.limit ?? 10) };
}

/** Everything the usage and cost report shows. Runs inside asOrg(): row-level security scopes it to one org. */
export async function usageReport(c: pg.PoolClient, q: ReportQuery, now: number): Promise<UsageReport> {
  const n = checkPeriod(q.from, q.to);
  const dep = await requireDeployment(c, q.deployment_id);
  const tz = String(dep.timezone);
  const org = await c.query<{ name: string }>('select name from org where org_id = $1', [dep.org_id]);
  const b = (await c.query<{ from_ts: string; to_ts: string }>(
    `select ($1::date::timestamp at time zone $3)::text as from_ts, ($2::date::timestamp at time zone $3)::text as to_ts`,
    [q.from, q.to, tz],
  )).rows[0]!;
  const t = (await c.query(
    `select coalesce(sum(jobs), 0)::int8 as jobs, coalesce(sum(jobs_succeeded), 0)::int8 as jobs_succeeded, coalesce(sum(jobs_failed), 0)::int8 as jobs_failed,
            coalesce(sum(cpu_seconds), 0)::text as cpu_seconds, coalesce(sum(gpu_seconds), 0)::text as gpu_seconds,
            coalesce(sum(context_bytes_read), 0)::int8 as context_bytes_read, coalesce(sum(context_bytes_written), 0)::int8 as context_bytes_written,
            coalesce(sum(disk_io_mb), 0)::text as disk_io_mb, coalesce(sum(net_in_mb), 0)::text as net_in_mb, coalesce(sum(net_out_mb), 0)::text as net_out_mb,
            coalesce(max(seats_active), 0) as peak_seats, coalesce(max(nodes_active), 0) as peak_nodes,
            coalesce(max(orchestration_peak_concurrency), 0) as peak_concurrency
       from usage_rollup_daily where deployment_id = $1 and day >= $2::date and day < $3::date`,
    [q.deployment_id, q.from, q.to],
  )).rows[0]!;
  // token kinds come from the per-model rollup, which splits cache reads/writes and reasoning out
  const k = (await c.query(
    `select coalesce(sum(tokens_in), 0)::int8 as tokens_in, coalesce(sum(tokens_out), 0)::int8 as tokens_out,
            coalesce(sum(tokens_cache_read), 0)::int8 as tokens_cache_read, coalesce(sum(tokens_cache_write), 0)::int8 as tokens_cache_write,
            coalesce(sum(tokens_reasoning), 0)::int8 as tokens_reasoning
       from usage_rollup_model_daily where deployment_id = $1 and day >= $2::date and day < $3::date`,
    [q.deployment_id, q.from, q.to],
  )).rows[0]!;
  const byModel = await costs(c, { deployment_id: q.deployment_id, from: q.from, to: q.to, group_by: 'model', interval: 'day' }, now);
  const byType = await costs(c, { deployment_id: q.deployment_id, from: q.from, to: q.to, group_by: 'agent_type', interval: 'day' }, now);
  const alerts = await c.query<{ created_at: Date; severity: string; code: string; message: string; total: string }>(
    `select created_at, severity, code, message, count(*) over ()::text as total from alert
      where deployment_id = $1 and created_at >= $2::timestamptz and created_at < $3::timestamptz
      order by created_at, alert_id limit 50`,
    [q.deployment_id, b.from_ts, b.to_ts],
  );
  const last = new Date(`${q.to}T00:00:00Z`);
  last.setUTCDate(last.getUTCDate() - 1);
  const { groups: _g, series: _s, ...total } = byModel;
  return {
    deployment: { deployment_id: q.deployment_id, name: String(dep.name), timezone: tz, org_name: org.rows[0]?.name ?? '' },
    period: { from: q.from, to: q.to, last_day: last.toISOString().slice(0, 10), days: n, timezone: tz },
    totals: {
      jobs: Number(t.jobs), jobs_succeeded: Number(t.jobs_succeeded), jobs_failed: Number(t.jobs_failed),
      cpu_seconds: t.cpu_seconds, gpu_seconds: t.gpu_seconds,
      tokens_in: Number(k.tokens_in), tokens_out: Number(k.tokens_out), tokens_cache_read: Number(k.tokens_cache_read),
      tokens_cache_write: Number(k.tokens_cache_write), tokens_reasoning: Number(k.tokens_reasoning),
      context_bytes_read: Number(t.context_bytes_read), context_bytes_written: Number(t.context_bytes_written),
      disk_io_mb: t.disk_io_mb, net_in_mb: t.net_in_mb, net_out_mb: t.net_out_mb,
      peak_seats: Number(t.peak_seats), peak_nodes: Number(t.peak_nodes), peak_concurrency: Number(t.peak_concurrency),
    },
    cost: {
      currency: 'USD', cost_micro_usd: total.cost_micro_usd, cost_usd: total.cost_usd, requests: total.requests,
      average_micro_usd_per_request: total.average_micro_usd_per_request, unpriced_requests: total.unpriced_requests,
    },
    by_model: byModel.groups,
    by_agent_type: byType.groups,
    top_tags: await topTags(c, q.deployment_id, b.from_ts, b.to_ts),
    alerts: {
      total: Number(alerts.rows[0]?.total ?? 0),
      items: alerts.rows.map((a) => ({ created_at: new Date(a.created_at).toISOString(), severity: a.severity, code: a.code, message: a.message })),
    },
  };
}
