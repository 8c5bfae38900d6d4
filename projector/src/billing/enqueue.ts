import type pg from 'pg';

/**
 * Billing records of runs, enqueued in the caller's transaction (the rollups batch with its checkpoint, or a
 * re-pricing chunk). `source` yields one row per run whose state changed, with the columns of BATCH_SOURCE.
 * A run is billed once it is finished (status other than running) and priced: the first time as a `usage`
 * record, afterwards only when its cost moved (a later revision or a re-pricing) as a `correction` carrying
 * the difference. billing_run holds what billing was told, so a replay or rebuild that re-derives the same
 * cost enqueues nothing, and the idempotency keys (deployment/correlation/revision, plus /n for the n-th
 * record of a run) are the same whoever computes them.
 */
export function billingEnqueueSql(source: string): string[] {
  const utc = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  return [
    'drop table if exists bl_c',
    `create temp table bl_c on commit drop as
      select s.*, b.cost_micro_usd as b_cost, b.records as b_records
      from (${source}) s left join billing_run b on b.deployment_id = s.deployment_id and b.correlation_id = s.correlation_id
      where s.status <> 'running' and s.cost_micro_usd is not null
        and (b.deployment_id is null
          or (b.cost_micro_usd <> s.cost_micro_usd and b.revision collate "C" <= s.revision collate "C"))`,
    `alter table bl_c add column record jsonb, add column idempotency_key text`,
    `update bl_c set
      record = jsonb_build_object('run_id', correlation_id, 'deployment_id', deployment_id, 'org_id', org_id, 'job_id', job_id,
        'revision', revision, 'status', status, 'agent_id', agent_id, 'agent_type', agent_type, 'provider', provider,
        'model_name', model_name, 'tokens_in', model_tokens_in, 'tokens_out', model_tokens_out, 'tokens_cached_in', model_tokens_cached_in,
        'tokens_cache_write', model_tokens_cache_write, 'tokens_reasoning', model_tokens_reasoning, 'price_version', price_version,
        'started_at', ${utc('started_at')}, 'completed_at', ${utc('attributed_at')}),
      idempotency_key = encode(sha256(convert_to(deployment_id::text || '/' || correlation_id || '/' || revision
        || coalesce('/' || (b_records + 1)::text, ''), 'UTF8')), 'hex')`,
    `insert into billing_outbox (idempotency_key, kind, org_id, deployment_id, correlation_id, revision, cost_micro_usd,
        delta_micro_usd, record, occurred_at)
      select idempotency_key, case when b_cost is null then 'usage' else 'correction' end, org_id, deployment_id, correlation_id,
        revision, cost_micro_usd, cost_micro_usd - coalesce(b_cost, 0), record, attributed_at
      from bl_c order by deployment_id, correlation_id
      on conflict (idempotency_key) do nothing`,
    `insert into billing_run as b (deployment_id, correlation_id, org_id, revision, cost_micro_usd, records, record)
      select deployment_id, correlation_id, org_id, revision, cost_micro_usd, 1, record from bl_c
      on conflict (deployment_id, correlation_id) do update set revision = excluded.revision, cost_micro_usd = excluded.cost_micro_usd,
        records = b.records + 1, record = excluded.record, updated_at = now()`,
  ];
}

/** The live rollups batch: the runs whose winning revision changed (rl_ch), with times and job id from the staged winners. */
export const BATCH_SOURCE = `select ch.deployment_id, ch.correlation_id, ch.org_id, ch.revision, ch.status, ch.cost_micro_usd, ch.price_version,
    ch.attributed_at, w.started_at, w.job_id, ch.agent_id, ch.agent_type, ch.provider, ch.model_name, ch.model_tokens_in, ch.model_tokens_out,
    ch.model_tokens_cached_in, ch.model_tokens_cache_write, ch.model_tokens_reasoning
  from rl_ch ch join stg_win w on w.deployment_id = ch.deployment_id and w.correlation_id = ch.correlation_id`;

/** Runs of one deployment whose cost a re-pricing chunk changed (their rollup state; times and job id from raw's job row). */
export async function enqueueRepriced(client: pg.ClientBase, deploymentId: string, correlationIds: string[]): Promise<void> {
  if (!correlationIds.length) return;
  await client.query('drop table if exists bl_src');
  await client.query(
    `create temp table bl_src on commit drop as
      select s.deployment_id, s.correlation_id, s.org_id, s.revision, s.status, s.cost_micro_usd, s.price_version, s.attributed_at,
        coalesce(j.started_at, s.attributed_at) as started_at, j.job_id, s.agent_id, s.agent_type, s.provider, s.model_name,
        s.model_tokens_in, s.model_tokens_out, s.model_tokens_cached_in, s.model_tokens_cache_write, s.model_tokens_reasoning
      from projector_rollup_job s left join job j on j.deployment_id = s.deployment_id and j.correlation_id = s.correlation_id
      where s.deployment_id = $1 and s.correlation_id = any($2::text[])`,
    [deploymentId, correlationIds],
  );
  await client.query(billingEnqueueSql('select * from bl_src').join(';\n'));
}
