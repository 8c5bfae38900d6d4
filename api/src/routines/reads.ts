import pg from 'pg';
import { KachingError } from '@kaching/contracts';
import { decodeCursor, toPage, type Page } from './cursor.js';

/** A deployment's time zone as an SQL literal (it was checked against the IANA database when stored). */
const lit = (v: string): string => pg.escapeLiteral(v);

// Every function here takes a client inside asOrg(): row-level security already limits it to the
// caller's org, so the SQL carries no org predicate of its own to forget.

type Row = Record<string, unknown>;
const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v));

export async function requireDeployment(c: pg.PoolClient, deploymentId: string): Promise<Row> {
  const r = await c.query('select deployment_id, org_id, name, timezone, enforcement, redact_segments, created_at from deployment where deployment_id = $1', [deploymentId]);
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND', { field: 'deployment_id', message: `No deployment ${deploymentId} in this organisation` });
  return r.rows[0] as Row;
}

class Where {
  parts: string[] = [];
  params: unknown[] = [];
  add(sqlWithQ: string, ...values: unknown[]): this {
    let s = sqlWithQ;
    for (const v of values) {
      this.params.push(v);
      s = s.replace('?', `$${this.params.length}`);
    }
    this.parts.push(s);
    return this;
  }
  get sql(): string {
    return this.parts.length ? `where ${this.parts.join(' and ')}` : '';
  }
  p(v: unknown): string {
    this.params.push(v);
    return `$${this.params.length}`;
  }
}

export interface ListOpts {
  limit: number;
  cursor?: string;
}

const USAGE_COLS = `cpu_seconds, gpu_seconds, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
  context_bytes_read, context_bytes_written, model_tokens_in, model_tokens_out, cost_micro_usd, jobs, jobs_succeeded, jobs_failed`;

export async function usageDaily(c: pg.PoolClient, q: ListOpts & { deployment_id?: string; from?: string; to?: string }): Promise<Page<Row>> {
  const w = new Where();
  if (q.deployment_id) w.add('deployment_id = ?', q.deployment_id);
  if (q.from) w.add('day >= ?::date', q.from);
  if (q.to) w.add('day <= ?::date', q.to);
  const cur = decodeCursor(q.cursor, 2);
  if (cur) w.add('(day, deployment_id) > (?::date, ?::uuid)', cur[0], cur[1]);
  const r = await c.query(
    `select deployment_id, day::text as day, ${USAGE_COLS}, seats_active, nodes_active, orchestration_peak_concurrency
     from usage_rollup_daily ${w.sql} order by day, deployment_id limit ${q.limit + 1}`,
    w.params,
  );
  return toPage(r.rows as Row[], q.limit, (x) => [String(x.day), String(x.deployment_id)]);
}

export async function usageHourly(
  c: pg.PoolClient,
  q: ListOpts & { deployment_id?: string; from?: string; to?: string; agent_type?: string },
): Promise<Page<Row>> {
  const w = new Where();
  if (q.deployment_id) w.add('deployment_id = ?', q.deployment_id);
  if (q.agent_type) w.add('agent_type = ?', q.agent_type);
  if (q.from) w.add('bucket_start >= ?::timestamptz', q.from);
  if (q.to) w.add('bucket_start < ?::timestamptz', q.to);
  const cur = decodeCursor(q.cursor, 3);
  if (cur) w.add('(bucket_start, deployment_id, agent_type) > (?::timestamptz, ?::uuid, ?)', cur[0], cur[1], cur[2]);
  const r = await c.query(
    `select deployment_id, bucket_start, agent_type, ${USAGE_COLS}, ram_mb_peak
     from usage_rollup_hourly ${w.sql} order by bucket_start, deployment_id, agent_type limit ${q.limit + 1}`,
    w.params,
  );
  return toPage(r.rows as Row[], q.limit, (x) => [iso(x.bucket_start), String(x.deployment_id), String(x.agent_type)]);
}

export async function concurrency(c: pg.PoolClient, q: ListOpts & { deployment_id: string; from?: string; to?: string; now?: Date }) {
  const dep = await requireDeployment(c, q.deployment_id);
  const to = q.to ?? (q.now ?? new Date()).toISOString();
  const from = q.from ?? new Date(new Date(to).getTime() - 24 * 3_600_000).toISOString();
  const w = new Where().add('deployment_id = ?', q.deployment_id).add('minute >= ?::timestamptz', from).add('minute < ?::timestamptz', to);
  const peaks = await c.query(
    `select (select json_build_object('minute', minute, 'jobs_running', jobs_running) from concurrency_minute ${w.sql}
              order by jobs_running desc, minute limit 1) as peak,
            coalesce((select json_agg(d order by d.day) from (
               select (minute at time zone ${lit(String(dep.timezone))})::date::text as day, max(jobs_running) as peak
               from concurrency_minute ${w.sql} group by 1) d), '[]'::json) as daily_peaks`,
    w.params,
  );
  const cur = decodeCursor(q.cursor, 1);
  if (cur) w.add('minute > ?::timestamptz', cur[0]);
  const r = await c.query(`select minute, jobs_running from concurrency_minute ${w.sql} order by minute limit ${q.limit + 1}`, w.params);
  const page = toPage(r.rows as Row[], q.limit, (x) => [iso(x.minute)]);
  return { deployment_id: q.deployment_id, from, to, peak: peaks.rows[0].peak ?? null, daily_peaks: peaks.rows[0].daily_peaks, ...page };
}

export async function listAlerts(c: pg.PoolClient, q: ListOpts & { deployment_id?: string; acknowledged?: boolean }): Promise<Page<Row>> {
  const w = new Where();
  if (q.deployment_id) w.add('deployment_id = ?', q.deployment_id);
  if (q.acknowledged !== undefined) w.add('acknowledged = ?', q.acknowledged);
  const cur = decodeCursor(q.cursor, 2);
  if (cur) w.add('(created_at, alert_id) < (?::timestamptz, ?::uuid)', cur[0], cur[1]);
  const r = await c.query(
    `select alert_id, deployment_id, decision_id, created_at, severity, code, message, context, acknowledged, acknowledged_at
     from alert ${w.sql} order by created_at desc, alert_id desc limit ${q.limit + 1}`,
    w.params,
  );
  return toPage(r.rows as Row[], q.limit, (x) => [iso(x.created_at), String(x.alert_id)]);
}

export async function ackAlert(c: pg.PoolClient, alertId: string): Promise<Row> {
  const r = await c.query(
    `update alert set acknowledged = true, acknowledged_at = coalesce(acknowledged_at, now()) where alert_id = $1
     returning alert_id, deployment_id, code, acknowledged, acknowledged_at`,
    [alertId],
  );
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND', { field: 'id', message: `No alert ${alertId} in this organisation` });
  return r.rows[0] as Row;
}

export async function listSuggestions(c: pg.PoolClient, q: ListOpts & { deployment_id?: string; status?: string }): Promise<Page<Row>> {
  const w = new Where();
  if (q.deployment_id) w.add('deployment_id = ?', q.deployment_id);
  if (q.status) w.add('status = ?', q.status);
  const cur = decodeCursor(q.cursor, 2);
  if (cur) w.add('(created_at, suggestion_id) < (?::timestamptz, ?::uuid)', cur[0], cur[1]);
  const r = await c.query(
    `select suggestion_id, deployment_id, decision_id, created_at, kind, rationale, target_plan, diffs, status, shown_to_user, accepted
     from suggestion ${w.sql} order by created_at desc, suggestion_id desc limit ${q.limit + 1}`,
    w.params,
  );
  return toPage(r.rows as Row[], q.limit, (x) => [iso(x.created_at), String(x.suggestion_id)]);
}

export async function setSuggestionStatus(c: pg.PoolClient, id: string, status: 'shown' | 'accepted' | 'dismissed'): Promise<Row> {
  const r = await c.query(
    `update suggestion set status = $2, shown_to_user = true,
       accepted = case when $2 = 'accepted' then true when $2 = 'dismissed' then false else accepted end
     where suggestion_id = $1
     returning suggestion_id, deployment_id, status, shown_to_user, accepted`,
    [id, status],
  );
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND', { field: 'id', message: `No suggestion ${id} in this organisation` });
  return r.rows[0] as Row;
}

export async function getOrg(c: pg.PoolClient): Promise<Row> {
  const r = await c.query('select org_id, name, created_at, (select count(*) from deployment) as deployments from org');
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND');
  return r.rows[0] as Row;
}

export async function listDeployments(c: pg.PoolClient, q: ListOpts): Promise<Page<Row>> {
  const w = new Where();
  const cur = decodeCursor(q.cursor, 2);
  if (cur) w.add('(d.created_at, d.deployment_id) > (?::timestamptz, ?::uuid)', cur[0], cur[1]);
  const r = await c.query(
    `select d.deployment_id, d.name, d.timezone, d.enforcement, d.redact_segments, d.created_at,
       (select count(*) from node n where n.deployment_id = d.deployment_id) as nodes,
       (select count(*) from agent a where a.deployment_id = d.deployment_id) as agents
     from deployment d ${w.sql} order by d.created_at, d.deployment_id limit ${q.limit + 1}`,
    w.params,
  );
  return toPage(r.rows as Row[], q.limit, (x) => [iso(x.created_at), String(x.deployment_id)]);
}

/** [from, to): the query's, else the `days` before now (the API's clock). */
function windowOf(q: { from?: string; to?: string; now?: Date }, days = 7) {
  const to = q.to ?? (q.now ?? new Date()).toISOString();
  const from = q.from ?? new Date(new Date(to).getTime() - days * 86_400_000).toISOString();
  return { from, to };
}

/** Nodes of a deployment with their usage in [from, to) from the raw samples. */
export async function listNodes(c: pg.PoolClient, deploymentId: string, q: ListOpts & { from?: string; to?: string; now?: Date }) {
  await requireDeployment(c, deploymentId);
  const { from, to } = windowOf(q);
  const w = new Where().add('n.deployment_id = ?', deploymentId);
  const pf = w.p(from);
  const pt = w.p(to);
  const cur = decodeCursor(q.cursor, 1);
  if (cur) w.add('n.node_id > ?::uuid', cur[0]);
  const r = await c.query(
    `select n.node_id, n.hostname, n.hw_class, n.labels, n.first_seen_at, n.last_seen_at,
       coalesce(u.jobs, 0) as jobs, coalesce(u.cpu_seconds, 0) as cpu_seconds, coalesce(u.gpu_seconds, 0) as gpu_seconds,
       coalesce(u.context_bytes_written, 0) as context_bytes_written, coalesce(u.model_tokens, 0) as model_tokens,
       coalesce(u.agent_types, '{}') as agent_types
     from node n left join lateral (
       select count(*) as jobs, sum(s.cpu_seconds) as cpu_seconds, sum(s.gpu_seconds) as gpu_seconds,
              sum(s.context_bytes_written) as context_bytes_written, sum(s.model_tokens_in + s.model_tokens_out) as model_tokens,
              array_agg(distinct s.agent_type) as agent_types
       from usage_sample s
       where s.deployment_id = n.deployment_id and s.node_id = n.node_id
         and s.started_at >= ${pf}::timestamptz and s.started_at < ${pt}::timestamptz) u on true
     ${w.sql} order by n.node_id limit ${q.limit + 1}`,
    w.params,
  );
  return { deployment_id: deploymentId, from, to, ...toPage(r.rows as Row[], q.limit, (x) => [String(x.node_id)]) };
}

/** Agent types of a deployment with their rolled-up usage in [from, to). */
export async function listAgentTypes(c: pg.PoolClient, deploymentId: string, q: { from?: string; to?: string; now?: Date }) {
  await requireDeployment(c, deploymentId);
  const { from, to } = windowOf(q);
  const r = await c.query(
    `select t.agent_type,
       (select count(*) from agent a where a.deployment_id = $1 and a.agent_type = t.agent_type) as agents,
       coalesce(sum(h.jobs), 0) as jobs, coalesce(sum(h.jobs_failed), 0) as jobs_failed,
       coalesce(sum(h.cpu_seconds), 0) as cpu_seconds, coalesce(sum(h.gpu_seconds), 0) as gpu_seconds,
       coalesce(sum(h.context_bytes_written), 0) as context_bytes_written,
       coalesce(sum(h.model_tokens_in), 0) as model_tokens_in, coalesce(sum(h.model_tokens_out), 0) as model_tokens_out
     from (select distinct agent_type from agent where deployment_id = $1
           union select distinct agent_type from usage_rollup_hourly where deployment_id = $1) t
     left join usage_rollup_hourly h on h.deployment_id = $1 and h.agent_type = t.agent_type
       and h.bucket_start >= $2::timestamptz and h.bucket_start < $3::timestamptz
     group by t.agent_type order by t.agent_type`,
    [deploymentId, from, to],
  );
  return { deployment_id: deploymentId, from, to, items: r.rows as Row[] };
}

/** One agent type: its hourly series, its agents and the nodes they run on. */
export async function agentTypeDetail(c: pg.PoolClient, deploymentId: string, agentType: string, q: { from?: string; to?: string; now?: Date }) {
  await requireDeployment(c, deploymentId);
  const { from, to } = windowOf(q);
  const series = await c.query(
    `select bucket_start, jobs, jobs_failed, cpu_seconds, gpu_seconds, context_bytes_written, model_tokens_in, model_tokens_out
     from usage_rollup_hourly where deployment_id = $1 and agent_type = $2 and bucket_start >= $3::timestamptz and bucket_start < $4::timestamptz
     order by bucket_start`,
    [deploymentId, agentType, from, to],
  );
  const agents = await c.query(
    `select a.agent_id, a.version, a.node_id, n.hostname, a.first_seen_at, a.last_seen_at
     from agent a left join node n on n.deployment_id = a.deployment_id and n.node_id = a.node_id
     where a.deployment_id = $1 and a.agent_type = $2 order by a.last_seen_at desc limit 200`,
    [deploymentId, agentType],
  );
  if (series.rowCount === 0 && agents.rowCount === 0) {
    throw new KachingError('NOT_FOUND', { field: 'agent_type', message: `No agent type "${agentType}" in this deployment` });
  }
  return { deployment_id: deploymentId, agent_type: agentType, from, to, series: series.rows as Row[], agents: agents.rows as Row[] };
}
