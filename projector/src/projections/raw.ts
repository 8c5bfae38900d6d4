import type { Tables } from '../db/tables.js';
import type { Sighting } from '../records.js';
import { lit, q, type BuildStep } from './common.js';

const SAMPLE_COLS = `deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, ended_at,
  status, cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
  context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
  model_tokens_cached_in, model_tokens_reasoning, model_tokens_cache_write, cost_micro_usd, price_version, tags, flags, revision, stream_seq`;
const SAMPLE_UPDATE = SAMPLE_COLS.split(',')
  .map((c) => c.trim())
  .filter((c) => !['deployment_id', 'correlation_id', 'started_at'].includes(c))
  .map((c) => `${c} = excluded.${c}`)
  .join(', ');

/**
 * raw: node/agent first/last seen, then the job row and usage_sample row of each identity's winning
 * revision (applied only when it beats the stored revision), then job-status heartbeats.
 */
export function rawMerge(t: Tables, seen: { nodes: Sighting[]; agents: Sighting[] }): string[] {
  const sql: string[] = [];
  const job = q(t.job);
  const us = q(t.usageSample);
  sql.push(...sightingUpserts(seen));
  // A revision that moved started_at moves the sample to another partition: drop the old row first.
  sql.push(`delete from ${us} u using stg_win w, ${job} j
    where j.deployment_id = w.deployment_id and j.correlation_id = w.correlation_id
      and j.revision collate "C" < w.revision collate "C" and j.started_at <> w.started_at
      and u.deployment_id = j.deployment_id and u.correlation_id = j.correlation_id and u.started_at = j.started_at`);
  sql.push(`insert into ${job} as j (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type,
      ucxl_addr, started_at, ended_at, status, meta, flags, revision, stream_seq)
    select deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type, ucxl_addr, started_at, ended_at,
      status, meta, flags, revision, seq from stg_win
    on conflict (deployment_id, correlation_id) do update set org_id = excluded.org_id, job_id = excluded.job_id,
      agent_id = excluded.agent_id, node_id = excluded.node_id, agent_type = excluded.agent_type,
      ucxl_addr = excluded.ucxl_addr, started_at = excluded.started_at, ended_at = excluded.ended_at,
      status = excluded.status, meta = excluded.meta, flags = excluded.flags, revision = excluded.revision,
      stream_seq = excluded.stream_seq
    where j.revision collate "C" < excluded.revision collate "C"`);
  sql.push(`insert into ${us} as u (${SAMPLE_COLS})
    select deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, ended_at, status,
      cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
      context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
      model_tokens_cached_in, model_tokens_reasoning, model_tokens_cache_write, cost_micro_usd, price_version, tags, flags, revision, seq
    from stg_win
    on conflict (deployment_id, correlation_id, started_at) do update set ${SAMPLE_UPDATE}
    where u.revision collate "C" < excluded.revision collate "C"`);
  // Heartbeats: a job known only from job-status events gets a placeholder row (revision '' loses to any
  // usage revision) so the concurrency index can be recomputed from this table alone.
  sql.push(`insert into ${job} as j (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type,
      ucxl_addr, started_at, ended_at, status, meta, flags, last_heartbeat_at, revision, stream_seq)
    select distinct on (deployment_id, correlation_id) deployment_id, correlation_id, org_id, job_id, agent_id, node_id,
      agent_type, coalesce(ucxl_addr, ''), min(started_at) over w, null, 'running', '{}', '{}', max(observed_at) over w,
      '', min(seq) over w
    from stg_events where kind = 'job_status' window w as (partition by deployment_id, correlation_id)
    order by deployment_id, correlation_id, seq asc
    on conflict (deployment_id, correlation_id) do update set
      last_heartbeat_at = greatest(j.last_heartbeat_at, excluded.last_heartbeat_at),
      started_at = case when j.revision = '' then least(j.started_at, excluded.started_at) else j.started_at end`);
  return sql;
}

/**
 * raw, rebuilt from a whole staged stream at once (replay): the same outcome as rawMerge applied batch by
 * batch — each identity's winning revision (table `win`), heartbeat placeholders from the first heartbeat —
 * as set-based inserts into empty tables. Two independent steps (run side by side). Node/agent sightings
 * go through sightingUpserts.
 */
export function rawBuild(t: Tables, stage: string, win: string): BuildStep[] {
  const s = q(stage);
  const w = q(win);
  return [
    {
      indexes: ['job'],
      sql: [
        // Fresh staging tables have no statistics: the planner guessed a few rows and chose a merge join that
        // sorted all the winners to disk (3.4 s of 8 s at 1M events); bulk_hb (heartbeats only) is small, so hash it.
        'set local enable_mergejoin = off',
        `create temp table bulk_hb on commit drop as
          select distinct on (deployment_id, correlation_id collate "C") deployment_id, correlation_id, org_id, job_id, agent_id,
            node_id, agent_type, coalesce(ucxl_addr, '') as ucxl_addr, min(started_at) over w as started_at,
            max(observed_at) over w as hb, min(seq) over w as seq
          from ${s} where kind = 'job_status' window w as (partition by deployment_id, correlation_id collate "C")
          order by deployment_id, correlation_id collate "C", seq asc`,
        `insert into ${q(t.job)} (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type, ucxl_addr,
            started_at, ended_at, status, meta, flags, last_heartbeat_at, revision, stream_seq)
          select w.deployment_id, w.correlation_id, w.org_id, w.job_id, w.agent_id, w.node_id, w.agent_type, w.ucxl_addr,
            w.started_at, w.ended_at, w.status, w.meta, w.flags, h.hb, w.revision, w.seq
          from ${w} w left join bulk_hb h on h.deployment_id = w.deployment_id and h.correlation_id = w.correlation_id
          union all
          select h.deployment_id, h.correlation_id, h.org_id, h.job_id, h.agent_id, h.node_id, h.agent_type, h.ucxl_addr,
            h.started_at, null, 'running', '{}', '{}', h.hb, '', h.seq
          from bulk_hb h
          where not exists (select 1 from ${w} w where w.deployment_id = h.deployment_id and w.correlation_id = h.correlation_id)`,
      ],
    },
    {
      indexes: ['usageSample'],
      sql: [
        `insert into ${q(t.usageSample)} (${SAMPLE_COLS})
          select deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, ended_at, status,
            cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
            context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
            model_tokens_cached_in, model_tokens_reasoning, model_tokens_cache_write, cost_micro_usd, price_version, tags, flags, revision, seq
          from ${w}`,
      ],
    },
  ];
}

/**
 * node/agent first/last seen and latest attributes, upserted so that applying sightings in any grouping
 * (batch by batch, or a whole rebuild at once) ends the same.
 */
export function sightingUpserts(seen: { nodes: Sighting[]; agents: Sighting[] }): string[] {
  const sql: string[] = [];
  // Seen-times use the ingest clock (in the stream), so a replay reproduces them exactly. The batch is
  // aggregated in JS (a handful of nodes and agents per batch): a window sort over the batch cost more.
  const values = (rows: (string | null)[][], types: string[]) =>
    rows.map((r) => `(${r.map((v, i) => `${lit(v)}::${types[i]}`).join(', ')})`).join(',\n      ');
  if (seen.nodes.length) {
    const rows = seen.nodes.map((x) => [x.deploymentId, x.id, x.orgId, x.hostname, x.hwClass, x.firstSeen, x.lastSeen]);
    sql.push(`insert into node (deployment_id, node_id, org_id, hostname, hw_class, first_seen_at, last_seen_at)
    values ${values(rows, ['uuid', 'uuid', 'uuid', 'text', 'text', 'timestamptz', 'timestamptz'])}
    on conflict (deployment_id, node_id) do update set
      hostname = case when excluded.last_seen_at >= node.last_seen_at then excluded.hostname else node.hostname end,
      hw_class = case when excluded.last_seen_at >= node.last_seen_at then coalesce(excluded.hw_class, node.hw_class) else node.hw_class end,
      first_seen_at = least(node.first_seen_at, excluded.first_seen_at),
      last_seen_at = greatest(node.last_seen_at, excluded.last_seen_at)`);
  }
  if (seen.agents.length) {
    const rows = seen.agents.map((x) => [x.deploymentId, x.id, x.orgId, x.nodeId, x.agentType, x.version, x.firstSeen, x.lastSeen]);
    sql.push(`insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, version, first_seen_at, last_seen_at)
    values ${values(rows, ['uuid', 'uuid', 'uuid', 'uuid', 'text', 'text', 'timestamptz', 'timestamptz'])}
    on conflict (deployment_id, agent_id) do update set
      node_id = case when excluded.last_seen_at >= agent.last_seen_at then excluded.node_id else agent.node_id end,
      agent_type = case when excluded.last_seen_at >= agent.last_seen_at then excluded.agent_type else agent.agent_type end,
      version = case when excluded.last_seen_at >= agent.last_seen_at then coalesce(excluded.version, agent.version) else agent.version end,
      first_seen_at = least(agent.first_seen_at, excluded.first_seen_at),
      last_seen_at = greatest(agent.last_seen_at, excluded.last_seen_at)`);
  }
  return sql;
}
