import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createDeployment, createOrg, issueApiKey } from '@kaching/api';

export interface SeededOrg {
  orgId: string;
  deploymentId: string;
  nodeId: string;
  agentId: string;
  alertId: string;
  suggestionId: string;
  quotaId: string;
  budgetId: string;
  tokenId: string;
  readKey: string;
  adminKey: string;
}

/**
 * An org with one deployment and a row in every org-keyed table, written directly as the operator (and, for
 * the enforcer's ledger, the enforcer) would. Times are relative to `at` — pass a pinned instant when a test
 * checks "today" (default: now); `timezone` is the deployment's.
 */
export async function seedOrg(pool: pg.Pool, name: string, opts: { agentType?: string; at?: Date; timezone?: string } = {}): Promise<SeededOrg> {
  const at = opts.at ?? new Date();
  const org = await createOrg(pool, { name });
  const dep = await createDeployment(pool, org.org_id, { name: `${name}-prod`, timezone: opts.timezone ?? 'UTC' });
  const orgId = org.org_id;
  const deploymentId = String(dep.deployment_id);
  const nodeId = randomUUID();
  const agentId = randomUUID();
  const agentType = opts.agentType ?? 'coder';
  await pool.query(
    `insert into node (deployment_id, node_id, org_id, hostname, hw_class, first_seen_at, last_seen_at) values ($1, $2, $3, $4, 'gpu-a100', $5::timestamptz - interval '3 days', $5)`,
    [deploymentId, nodeId, orgId, `${name}-node-1`, at],
  );
  await pool.query(
    `insert into agent (deployment_id, agent_id, org_id, node_id, agent_type, version, first_seen_at, last_seen_at) values ($1, $2, $3, $4, $5, '1.0.0', $6::timestamptz - interval '3 days', $6)`,
    [deploymentId, agentId, orgId, nodeId, agentType, at],
  );
  await pool.query(`select ensure_usage_partitions(($1::timestamptz - interval '2 days')::date, 4)`, [at]);
  await pool.query(`select ensure_hourly_partitions($1::timestamptz - interval '2 days', $1::timestamptz)`, [at]);
  await pool.query(
    `insert into job (deployment_id, correlation_id, org_id, job_id, agent_id, node_id, agent_type, ucxl_addr, started_at, ended_at, status, revision, stream_seq)
     values ($1, 'corr-1', $2, $3, $4, $5, $6, 'ucxl://x', $7::timestamptz - interval '1 hour', $7, 'succeeded', 'r1', 1)`,
    [deploymentId, orgId, randomUUID(), agentId, nodeId, agentType, at],
  );
  await pool.query(
    `insert into usage_sample (deployment_id, correlation_id, started_at, ended_at, org_id, job_id, agent_id, node_id, agent_type, status, cpu_seconds,
       context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out, revision, stream_seq)
     values ($1, 'corr-1', $7::timestamptz - interval '1 hour', $7, $2, $3, $4, $5, $6, 'succeeded', 12.5, 1000, 'gpt-x', 'openai', 1000, 500, 'r1', 1)`,
    [deploymentId, orgId, randomUUID(), agentId, nodeId, agentType, at],
  );
  await pool.query(
    `insert into usage_rollup_hourly (deployment_id, bucket_start, agent_type, org_id, jobs, model_tokens_in, model_tokens_out, context_bytes_written)
     values ($1, date_trunc('hour', $4::timestamptz, 'UTC'), $3, $2, 1, 1000, 500, 1000)`,
    [deploymentId, orgId, agentType, at],
  );
  // the job's day: the deployment's local day of its end (the attribution instant)
  const day = `($3::timestamptz at time zone (select timezone from deployment where deployment_id = $1))::date`;
  await pool.query(
    `insert into usage_rollup_daily (deployment_id, day, org_id, jobs, model_tokens_in, model_tokens_out, context_bytes_written, seats_active, nodes_active)
     values ($1, ${day}, $2, 1, 1000, 500, 1000, 1, 1)`,
    [deploymentId, orgId, at],
  );
  // the enforcer's ledger of the same job: what the dashboard's cards show as used
  await pool.query(
    `insert into enforcer_contribution (deployment_id, correlation_id, org_id, revision, day, attributed_at, node_id, agent_id, status, model_name, amounts, stream_seq)
     values ($1, 'corr-1', $2, 'r1', ${day}, $3, $4, $5, 'succeeded', 'gpt-x', $6, 1)`,
    [deploymentId, orgId, at, nodeId, agentId, { cpu_seconds: 12.5, context_bytes_written: 1000, model_tokens_in: 1000, model_tokens_out: 500, cost_usd: '0', jobs: 1 }],
  );
  await pool.query(
    `insert into enforcer_usage_daily (deployment_id, metric, day, org_id, value)
     select $1, m, ${day}, $2, v from (values ('cpu_seconds', 12.5), ('context_bytes_written', 1000), ('model_tokens_in', 1000), ('model_tokens_out', 500), ('jobs', 1)) x(m, v)`,
    [deploymentId, orgId, at],
  );
  await pool.query(`insert into concurrency_minute (deployment_id, minute, org_id, jobs_running) values ($1, date_trunc('minute', $3::timestamptz - interval '5 minutes', 'UTC'), $2, 3)`, [deploymentId, orgId, at]);
  const alertId = randomUUID();
  await pool.query(
    `insert into alert (alert_id, deployment_id, org_id, decision_id, created_at, severity, code, message, context) values ($1, $2, $3, $4, $5, 'warn', 'QUOTA_NEARING', 'context at 85%', '{"action":"warn"}')`,
    [alertId, deploymentId, orgId, `dec-${alertId}`, at],
  );
  const suggestionId = randomUUID();
  await pool.query(
    `insert into suggestion (suggestion_id, deployment_id, org_id, decision_id, created_at, kind, rationale, target_plan, diffs) values ($1, $2, $3, $4, $5, 'upgrade_tier', 'context is 1.8x your cap', 'business', '{"context_cap":"3x"}')`,
    [suggestionId, deploymentId, orgId, `sdec-${suggestionId}`, at],
  );
  const quotaId = randomUUID();
  await pool.query(
    `insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold) values ($1, $2, $3, 'context', 'context_bytes_written', 'monthly', 100000, 80000)`,
    [quotaId, deploymentId, orgId],
  );
  const budgetId = randomUUID();
  await pool.query(
    `insert into budget (budget_id, deployment_id, org_id, scope, metric, period, limit_units, action) values ($1, $2, $3, 'llm', 'cost_usd', 'monthly', 50, 'block')`,
    [budgetId, deploymentId, orgId],
  );
  await pool.query(`insert into pricing_plan (plan_id, name, rank) values ('team', 'Team', 1) on conflict do nothing`);
  await pool.query(
    `insert into license (license_id, org_id, deployment_id, plan_id, seats_limit, nodes_limit, valid_from, valid_to, signed_blob) values ($1, $2, $3, 'team', 10, 4, $4::timestamptz - interval '1 day', $4::timestamptz + interval '300 days', '\\x00')`,
    [randomUUID(), orgId, deploymentId, at],
  );
  await pool.query(`insert into feature_flag (deployment_id, org_id, flag, enabled) values ($1, $2, 'otlp', true)`, [deploymentId, orgId]);
  const tokenId = randomUUID();
  await pool.query(`insert into ingest_token (token_id, deployment_id, org_id, token_hash, scopes) values ($1, $2, $3, '\\x00', '{ingest:usage}')`, [tokenId, deploymentId, orgId]);
  await pool.query(`insert into agent_key (deployment_id, key_id, org_id, public_key) values ($1, 'k1', $2, $3)`, [deploymentId, orgId, Buffer.alloc(32, 7)]);
  // a user with a session (placeholder hashes: no test signs in with these)
  const userId = randomUUID();
  await pool.query(`insert into org_user (user_id, org_id, login, role, password_hash) values ($1, $2, $3, 'viewer', '$scrypt$ln=17,r=8,p=1$AA==$AA==')`, [userId, orgId, `seed-${userId}@${name}.example`]);
  await pool.query(
    `insert into user_session (session_id, org_id, user_id, secret_hash, kind, created_at, expires_at, last_seen_at) values ($1, $2, $3, $4, 'browser', now(), now() + interval '1 hour', now())`,
    [userId.replace(/-/g, '').slice(0, 24), orgId, userId, Buffer.alloc(32)],
  );
  const readKey = (await issueApiKey(pool, { orgId, scopes: ['read'] })).apiKey;
  const adminKey = (await issueApiKey(pool, { orgId, scopes: ['read', 'admin'] })).apiKey;
  return { orgId, deploymentId, nodeId, agentId, alertId, suggestionId, quotaId, budgetId, tokenId, readKey, adminKey };
}

export const ORG_TABLES = [
  'org', 'deployment', 'node', 'agent', 'job', 'usage_sample', 'usage_rollup_hourly', 'usage_rollup_daily', 'concurrency_minute',
  'license', 'quota', 'budget', 'feature_flag', 'alert', 'suggestion', 'ingest_token', 'api_key', 'agent_key',
  'org_user', 'user_session', 'enforcer_contribution',
] as const;

export function client(baseUrl: string, key?: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(baseUrl + path, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}
