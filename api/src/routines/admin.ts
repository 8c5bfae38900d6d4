import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { InputError, KachingError, bindCert, certIdentity, issueIngestToken, listCertBindings, parseFingerprint, registerAgentKey, revokeAgentKey, revokeIngestToken, unbindCert, type RevokeReason } from '@kaching/contracts';
import { requireDeployment, type ListOpts } from './reads.js';
import { decodeCursor, toPage, type Page } from './cursor.js';
import { checkTimezone } from './orgs.js';

type Row = Record<string, unknown>;

/**
 * The credential routines (contracts/credentials) only call `.query`; handing them the RLS client makes
 * their writes subject to the org policy too (an insert for another org's deployment fails its check).
 */
function rlsPool(c: pg.PoolClient): pg.Pool {
  return { query: c.query.bind(c) } as unknown as pg.Pool;
}

export interface QuotaInput {
  deployment_id: string;
  name: string;
  metric: string;
  period: 'daily' | 'weekly' | 'monthly' | 'rolling_30d';
  hard_limit?: number | string | null;
  soft_threshold?: number | string | null;
}

export async function upsertQuota(c: pg.PoolClient, orgId: string, q: QuotaInput): Promise<Row> {
  await requireDeployment(c, q.deployment_id);
  if (q.hard_limit != null && q.soft_threshold != null && Number(q.soft_threshold) > Number(q.hard_limit)) {
    throw new InputError('FIELD_RANGE', { field: 'soft_threshold', rule: 'lte:hard_limit', message: 'soft_threshold must not exceed hard_limit' });
  }
  const r = await c.query(
    `insert into quota (quota_id, deployment_id, org_id, name, metric, period, hard_limit, soft_threshold)
     values ($1, $2, $3, $4, $5, $6, $7, $8)
     on conflict (deployment_id, name) do update set metric = excluded.metric, period = excluded.period,
       hard_limit = excluded.hard_limit, soft_threshold = excluded.soft_threshold, updated_at = now()
     returning quota_id, deployment_id, name, metric, period, hard_limit, soft_threshold, updated_at`,
    [randomUUID(), q.deployment_id, orgId, q.name, q.metric, q.period, q.hard_limit ?? null, q.soft_threshold ?? null],
  );
  return r.rows[0] as Row;
}

export interface BudgetInput {
  deployment_id: string;
  scope: string;
  metric: string;
  period: 'daily' | 'weekly' | 'monthly' | 'rolling_30d';
  limit_units: number | string;
  action: 'warn' | 'throttle' | 'block' | 'fallback_model';
  action_params?: { max_concurrency?: number; model?: string };
}

export async function upsertBudget(c: pg.PoolClient, orgId: string, b: BudgetInput): Promise<Row> {
  await requireDeployment(c, b.deployment_id);
  const params = b.action_params ?? {};
  if (b.action === 'throttle' && params.max_concurrency === undefined) {
    throw new InputError('FIELD_REQUIRED', { field: 'action_params.max_concurrency', message: 'throttle needs action_params.max_concurrency' });
  }
  if (b.action === 'fallback_model' && !params.model) {
    throw new InputError('FIELD_REQUIRED', { field: 'action_params.model', message: 'fallback_model needs action_params.model' });
  }
  const r = await c.query(
    `insert into budget (budget_id, deployment_id, org_id, scope, metric, period, limit_units, action, action_params)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     on conflict (deployment_id, scope) do update set metric = excluded.metric, period = excluded.period,
       limit_units = excluded.limit_units, action = excluded.action, action_params = excluded.action_params, updated_at = now()
     returning budget_id, deployment_id, scope, metric, period, limit_units, action, action_params, updated_at`,
    [randomUUID(), b.deployment_id, orgId, b.scope, b.metric, b.period, b.limit_units, b.action, params],
  );
  return r.rows[0] as Row;
}

export async function deleteRow(c: pg.PoolClient, table: 'quota' | 'budget', id: string): Promise<Row> {
  const col = table === 'quota' ? 'quota_id' : 'budget_id';
  const r = await c.query(`delete from ${table} where ${col} = $1 returning ${col} as id, deployment_id`, [id]);
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND', { field: 'id', message: `No ${table} ${id} in this organisation` });
  return r.rows[0] as Row;
}

export async function patchDeployment(
  c: pg.PoolClient,
  id: string,
  p: { name?: string; timezone?: string; enforcement?: 'soft' | 'hard'; redact_segments?: string[] },
): Promise<Row> {
  const before = await requireDeployment(c, id);
  if (p.timezone !== undefined) checkTimezone(p.timezone);
  const r = await c.query(
    `update deployment set name = coalesce($2, name), timezone = coalesce($3, timezone), enforcement = coalesce($4, enforcement),
       redact_segments = coalesce($5, redact_segments)
     where deployment_id = $1 returning deployment_id, org_id, name, timezone, enforcement, redact_segments, created_at`,
    [id, p.name ?? null, p.timezone ?? null, p.enforcement ?? null, p.redact_segments ?? null],
  );
  // A deployment's days are local days: its daily rollups and the enforcer's ledger move to the new zone in
  // this same transaction (the row update above holds off projector and enforcer batches meanwhile).
  if (p.timezone !== undefined && p.timezone !== before.timezone) await c.query('select rebuild_deployment_days($1)', [id]);
  return r.rows[0] as Row;
}

export async function patchNode(c: pg.PoolClient, deploymentId: string, nodeId: string, p: { labels?: Record<string, string>; hw_class?: string }): Promise<Row> {
  await requireDeployment(c, deploymentId);
  const r = await c.query(
    `update node set labels = coalesce($3, labels), hw_class = coalesce($4, hw_class)
     where deployment_id = $1 and node_id = $2 returning deployment_id, node_id, hostname, hw_class, labels`,
    [deploymentId, nodeId, p.labels ?? null, p.hw_class ?? null],
  );
  if (r.rowCount === 0) throw new KachingError('NOT_FOUND', { field: 'node_id', message: `No node ${nodeId} in this deployment` });
  return r.rows[0] as Row;
}

export interface TokenAction {
  action: 'issue' | 'rotate' | 'revoke';
  deployment_id?: string;
  token_id?: string;
  scopes?: string[];
  expires_at?: string;
  label?: string;
  /** rotate: how long the old token keeps working (default: revoked at once). */
  grace_s?: number;
}

/** Issue / rotate / revoke ingest tokens of the caller's deployments. Returns the deployment touched. */
export async function tokenAction(c: pg.PoolClient, a: TokenAction): Promise<{ deployment_id: string; result: Row }> {
  if (a.action === 'issue') {
    if (!a.deployment_id) throw new InputError('FIELD_REQUIRED', { field: 'deployment_id' });
    await requireDeployment(c, a.deployment_id);
    const t = await issueIngestToken(rlsPool(c), {
      deploymentId: a.deployment_id,
      scopes: a.scopes,
      expiresAt: a.expires_at ? new Date(a.expires_at) : null,
      label: a.label ?? null,
    });
    return { deployment_id: a.deployment_id, result: { action: 'issue', token_id: t.tokenId, token: t.token, deployment_id: t.deploymentId, scopes: t.scopes, expires_at: t.expiresAt } };
  }
  if (!a.token_id) throw new InputError('FIELD_REQUIRED', { field: 'token_id' });
  const old = await c.query<{ deployment_id: string; scopes: string[]; label: string | null; expires_at: Date | null }>(
    'select deployment_id, scopes, label, expires_at from ingest_token where token_id = $1',
    [a.token_id],
  );
  const row = old.rows[0];
  if (!row) throw new KachingError('NOT_FOUND', { field: 'token_id', message: `No ingest token ${a.token_id} in this organisation` });
  if (a.action === 'revoke') {
    const r = await revokeIngestToken(rlsPool(c), { tokenId: a.token_id });
    return { deployment_id: row.deployment_id, result: { action: 'revoke', token_id: r.tokenId, deployment_id: r.deploymentId, revoked_at: r.revokedAt } };
  }
  const t = await issueIngestToken(rlsPool(c), {
    deploymentId: row.deployment_id,
    scopes: a.scopes ?? row.scopes,
    expiresAt: a.expires_at ? new Date(a.expires_at) : row.expires_at,
    label: a.label ?? row.label,
  });
  const grace = a.grace_s ?? 0;
  if (grace > 0) {
    await c.query(`update ingest_token set expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $2)) where token_id = $1`, [a.token_id, grace]);
  } else {
    await revokeIngestToken(rlsPool(c), { tokenId: a.token_id });
  }
  return {
    deployment_id: row.deployment_id,
    result: { action: 'rotate', token_id: t.tokenId, token: t.token, deployment_id: t.deploymentId, scopes: t.scopes, expires_at: t.expiresAt, replaced_token_id: a.token_id, old_valid_for_s: grace },
  };
}

export async function listTokens(c: pg.PoolClient, deploymentId: string, q: ListOpts): Promise<Page<Row>> {
  await requireDeployment(c, deploymentId);
  const cur = decodeCursor(q.cursor, 2);
  const r = await c.query(
    `select token_id, deployment_id, scopes, label, created_at, expires_at, revoked_at from ingest_token
     where deployment_id = $1 and ($2::timestamptz is null or (created_at, token_id) < ($2::timestamptz, $3::uuid))
     order by created_at desc, token_id desc limit ${q.limit + 1}`,
    [deploymentId, cur?.[0] ?? null, cur?.[1] ?? null],
  );
  return toPage(r.rows as Row[], q.limit, (x) => [(x.created_at as Date).toISOString(), String(x.token_id)]);
}

export interface KeyAction {
  action: 'register' | 'revoke';
  deployment_id: string;
  key_id: string;
  public_key?: string;
  valid_from?: string;
  valid_to?: string;
  /** revoke only; default compromise (see DEFAULT_REVOKE_REASON). */
  reason?: RevokeReason;
}

export async function keyAction(c: pg.PoolClient, a: KeyAction, inFlightMs: number): Promise<Row> {
  await requireDeployment(c, a.deployment_id);
  if (a.action === 'revoke') {
    const r = await revokeAgentKey(rlsPool(c), { deploymentId: a.deployment_id, keyId: a.key_id, ...(a.reason ? { reason: a.reason } : {}) });
    return { action: 'revoke', deployment_id: r.deploymentId, key_id: r.keyId, revoked_at: r.revokedAt, reason: r.reason };
  }
  if (!a.public_key) throw new InputError('FIELD_REQUIRED', { field: 'public_key' });
  const r = await registerAgentKey(rlsPool(c), {
    deploymentId: a.deployment_id,
    keyId: a.key_id,
    publicKey: a.public_key,
    validFrom: a.valid_from ? new Date(a.valid_from) : null,
    validTo: a.valid_to ? new Date(a.valid_to) : null,
    inFlightMs,
  });
  return { action: 'register', deployment_id: r.deploymentId, key_id: r.keyId, valid_from: r.validFrom, valid_to: r.validTo };
}

export async function listKeys(c: pg.PoolClient, deploymentId: string, q: ListOpts): Promise<Page<Row>> {
  await requireDeployment(c, deploymentId);
  const cur = decodeCursor(q.cursor, 1);
  const r = await c.query(
    `select key_id, deployment_id, encode(public_key, 'base64') as public_key, valid_from, valid_to, revoked_at, revoke_reason, created_at
     from agent_key where deployment_id = $1 and ($2::text is null or key_id > $2) order by key_id limit ${q.limit + 1}`,
    [deploymentId, cur?.[0] ?? null],
  );
  return toPage(r.rows as Row[], q.limit, (x) => [String(x.key_id)]);
}

export interface CertBindingAction {
  action: 'bind' | 'unbind';
  deployment_id?: string;
  fingerprint?: string;
  cert_pem?: string;
  subject?: string;
  label?: string;
  binding_id?: string;
}

/** Binds / unbinds a client certificate to a deployment's ingest tokens (mTLS; see ingest/README.md). */
export async function certBindingAction(c: pg.PoolClient, a: CertBindingAction): Promise<{ deployment_id: string; result: Row }> {
  if (a.action === 'unbind') {
    if (!a.binding_id) throw new InputError('FIELD_REQUIRED', { field: 'binding_id' });
    const b = await unbindCert(rlsPool(c), a.binding_id);
    return { deployment_id: b.deployment_id, result: { action: 'unbind', ...b } };
  }
  if (!a.deployment_id) throw new InputError('FIELD_REQUIRED', { field: 'deployment_id' });
  await requireDeployment(c, a.deployment_id);
  let fingerprint: Buffer | null = null;
  if (a.fingerprint !== undefined) fingerprint = parseFingerprint(a.fingerprint);
  if (a.cert_pem !== undefined) {
    if (fingerprint) throw new InputError('FIELD_FORMAT', { field: 'cert_pem', rule: 'oneOf:fingerprint|cert_pem|subject', message: 'Give one of fingerprint, cert_pem and subject' });
    try {
      fingerprint = certIdentity(a.cert_pem).fingerprint;
    } catch (e) {
      throw new InputError('FIELD_FORMAT', { field: 'cert_pem', rule: 'format:x509-pem', message: `Not a PEM certificate: ${(e as Error).message}` });
    }
  }
  const { binding, created } = await bindCert(rlsPool(c), { deploymentId: a.deployment_id, fingerprint, subject: a.subject ?? null, label: a.label ?? null });
  return { deployment_id: a.deployment_id, result: { action: 'bind', created, ...binding } };
}

export async function listCertBindingsOf(c: pg.PoolClient, deploymentId: string): Promise<Row[]> {
  await requireDeployment(c, deploymentId);
  return (await listCertBindings(rlsPool(c), deploymentId, true)) as unknown as Row[];
}

// Installation-wide tables (no org): plans and model prices. Written with the operator scope only.

export async function listPlans(db: pg.Pool | pg.PoolClient): Promise<Row[]> {
  return (await db.query('select plan_id, name, rank, meta from pricing_plan order by rank, plan_id')).rows as Row[];
}

export async function upsertPlan(pool: pg.Pool, p: { plan_id: string; name: string; rank: number; meta?: Record<string, unknown> }): Promise<Row> {
  const r = await pool.query(
    `insert into pricing_plan (plan_id, name, rank, meta) values ($1, $2, $3, $4)
     on conflict (plan_id) do update set name = excluded.name, rank = excluded.rank, meta = excluded.meta
     returning plan_id, name, rank, meta`,
    [p.plan_id, p.name, p.rank, p.meta ?? {}],
  );
  return r.rows[0] as Row;
}

export async function allDeploymentIds(pool: pg.Pool): Promise<string[]> {
  return (await pool.query<{ deployment_id: string }>('select deployment_id from deployment')).rows.map((r) => r.deployment_id);
}
