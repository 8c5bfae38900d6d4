import type pg from 'pg';
import type { Tables } from '../db/tables.js';
import { q, stageWinners } from './common.js';

const SAMPLE_COLS = `deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, ended_at,
  status, cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
  context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
  model_tokens_cached_in, model_tokens_reasoning, flags, revision, stream_seq`;
const SAMPLE_UPDATE = SAMPLE_COLS.split(',')
  .map((c) => c.trim())
  .filter((c) => !['deployment_id', 'correlation_id', 'started_at'].includes(c))
  .map((c) => `${c} = excluded.${c}`)
  .join(', ');

/**
 * raw: node/agent first/last seen, then the job row and usage_sample row of each identity's winning
 * revision (applied only when it beats the stored revision), then job-status heartbeats.
 */
export async function applyRaw(client: pg.ClientBase, t: Tables): Promise<void> {
  const job = q(t.job);
  const us = q(t.usageSample);
  // Seen-times use the ingest clock (in the stream), so a replay reproduces them exactly.
  await client.query(`insert into node (deployment_id, node_id, org_id, hostname, hw_class, first_seen_at, last_seen_at)
    select distinct on (deployment_id, node_id) deployment_id, node_id, org_id, hostname, hw_class,
      min(received_at) over w, max(received_at) over w
    from stg_events window w as (partition by deployment_id, node_id)
    order by deployment_id, node_id, received_at desc, seq desc
    on conflict (deployment_id, node_id) do update set
      hostname = case when excluded.last_seen_at >= node.last_seen_at then excluded.hostname else node.hostname end,
      hw_class = case when excluded.last_seen_at >= node.last_seen_at then coalesce(excluded.hw_class, node.hw_class) else node.hw_class end,
      first_seen_at = least(node.first_seen_at, excluded.first_seen_at),
      last_seen_at = greatest(node.last_seen_at, excluded.last_seen_at)`);
  await client.query(`insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, version, first_seen_at, last_seen_at)
    select distinct on (deployment_id, agent_id) deployment_id, agent_id, org_id, node_id, agent_type, agent_version,
      min(received_at) over w, max(received_at) over w
    from stg_events window w as (partition by deployment_id, agent_id)
    order by deployment_id, agent_id, received_at desc, seq desc
    on conflict (deployment_id, agent_id) do update set
      node_id = case when excluded.last_seen_at >= agent.last_seen_at then excluded.node_id else agent.node_id end,
      agent_type = case when excluded.last_seen_at >= agent.last_seen_at then excluded.agent_type else agent.agent_type end,
      version = case when excluded.last_seen_at >= agent.last_seen_at then coalesce(excluded.version, agent.version) else agent.version end,
      first_seen_at = least(agent.first_seen_at, excluded.first_seen_at),
      last_seen_at = greatest(agent.last_seen_at, excluded.last_seen_at)`);

  await stageWinners(client, t.shadow);
  // A revision that moved started_at moves the sample to another partition: drop the old row first.
  await client.query(`delete from ${us} u using stg_win w, ${job} j
    where j.deployment_id = w.deployment_id and j.correlation_id = w.correlation_id
      and j.revision collate "C" < w.revision collate "C" and j.started_at <> w.started_at
      and u.deployment_id = j.deployment_id and u.correlation_id = j.correlation_id and u.started_at = j.started_at`);
  await client.query(`insert into ${job} as j (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type,
      ucxl_addr, started_at, ended_at, status, meta, flags, revision, stream_seq)
    select deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type, ucxl_addr, started_at, ended_at,
      status, meta, flags, revision, seq from stg_win
    on conflict (deployment_id, correlation_id) do update set org_id = excluded.org_id, job_id = excluded.job_id,
      agent_id = excluded.agent_id, node_id = excluded.node_id, agent_type = excluded.agent_type,
      ucxl_addr = excluded.ucxl_addr, started_at = excluded.started_at, ended_at = excluded.ended_at,
      status = excluded.status, meta = excluded.meta, flags = excluded.flags, revision = excluded.revision,
      stream_seq = excluded.stream_seq
    where j.revision collate "C" < excluded.revision collate "C"`);
  await client.query(`insert into ${us} as u (${SAMPLE_COLS})
    select deployment_id, correlation_id, started_at, org_id, job_id, agent_id, node_id, agent_type, ended_at, status,
      cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
      context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
      model_tokens_cached_in, model_tokens_reasoning, flags, revision, seq
    from stg_win
    on conflict (deployment_id, correlation_id, started_at) do update set ${SAMPLE_UPDATE}
    where u.revision collate "C" < excluded.revision collate "C"`);
  // Heartbeats: a job known only from job-status events gets a placeholder row (revision '' loses to any
  // usage revision) so the concurrency index can be recomputed from this table alone.
  await client.query(`insert into ${job} as j (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type,
      ucxl_addr, started_at, ended_at, status, meta, flags, last_heartbeat_at, revision, stream_seq)
    select distinct on (deployment_id, correlation_id) deployment_id, correlation_id, org_id, job_id, agent_id, node_id,
      agent_type, coalesce(ucxl_addr, ''), min(started_at) over w, null, 'running', '{}', '{}', max(observed_at) over w,
      '', min(seq) over w
    from stg_events where kind = 'job_status' window w as (partition by deployment_id, correlation_id)
    order by deployment_id, correlation_id, seq asc
    on conflict (deployment_id, correlation_id) do update set
      last_heartbeat_at = greatest(j.last_heartbeat_at, excluded.last_heartbeat_at),
      started_at = case when j.revision = '' then least(j.started_at, excluded.started_at) else j.started_at end`);
}

/** UTC days of the batch's usage samples (partitions needed before the merge). */
export async function batchDays(client: pg.ClientBase): Promise<string[]> {
  const r = await client.query<{ d: string }>(
    `select distinct to_char(started_at at time zone 'UTC', 'YYYY-MM-DD') as d from stg_events where kind = 'usage'`,
  );
  return r.rows.map((x) => x.d);
}
