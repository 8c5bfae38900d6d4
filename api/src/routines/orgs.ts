import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { InputError, inTransaction } from '@kaching/contracts';

export async function createOrg(pool: pg.Pool, opts: { name: string }): Promise<{ org_id: string; name: string }> {
  const name = opts.name.trim();
  if (name.length < 1 || name.length > 200) throw new InputError('FIELD_LENGTH', { field: 'name', rule: 'length:1..200' });
  const orgId = randomUUID();
  await pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, name]);
  return { org_id: orgId, name };
}

export interface NewDeployment {
  name: string;
  timezone?: string;
  enforcement?: 'soft' | 'hard';
  redact_segments?: string[];
}

export function checkTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch {
    throw new InputError('FIELD_FORMAT', { field: 'timezone', rule: 'format:iana-timezone', message: `Unknown time zone "${tz}"` });
  }
}

/** Works on any client: the operator's pool (CLI) or an org-scoped RLS transaction (HTTP). */
export async function insertDeployment(db: pg.Pool | pg.PoolClient, orgId: string, d: NewDeployment) {
  const name = d.name.trim();
  if (name.length < 1 || name.length > 200) throw new InputError('FIELD_LENGTH', { field: 'name', rule: 'length:1..200' });
  const tz = d.timezone ?? 'UTC';
  checkTimezone(tz);
  const enforcement = d.enforcement ?? 'soft';
  if (enforcement !== 'soft' && enforcement !== 'hard') throw new InputError('FIELD_ENUM', { field: 'enforcement', rule: 'enum:soft|hard' });
  const id = randomUUID();
  const r = await db.query(
    `insert into deployment (deployment_id, org_id, name, timezone, enforcement, redact_segments)
     values ($1, $2, $3, $4, $5, $6)
     returning deployment_id, org_id, name, timezone, enforcement, redact_segments, created_at`,
    [id, orgId, name, tz, enforcement, d.redact_segments ?? []],
  );
  return r.rows[0] as Record<string, unknown>;
}

export async function createDeployment(pool: pg.Pool, orgId: string, d: NewDeployment) {
  const org = await pool.query('select 1 from org where org_id = $1', [orgId]);
  if (org.rowCount === 0) throw new InputError('NOT_FOUND', { field: 'org', message: `No org ${orgId}` });
  return insertDeployment(pool, orgId, d);
}

/**
 * The operator's path to a new time zone (CLI): the change and the rebuild of every day-keyed row of the
 * deployment (daily rollups, seats/nodes, peak concurrency, the enforcer's ledger) in one transaction.
 */
export async function setDeploymentTimezone(pool: pg.Pool, deploymentId: string, timezone: string): Promise<{ deployment_id: string; timezone: string; previous: string; rebuilt: boolean }> {
  checkTimezone(timezone);
  return inTransaction(pool, async (c) => {
    const r = await c.query<{ timezone: string }>('select timezone from deployment where deployment_id = $1 for update', [deploymentId]);
    const previous = r.rows[0]?.timezone;
    if (previous === undefined) throw new InputError('NOT_FOUND', { field: 'deployment', message: `No deployment ${deploymentId}` });
    if (previous === timezone) return { deployment_id: deploymentId, timezone, previous, rebuilt: false };
    await c.query('update deployment set timezone = $2 where deployment_id = $1', [deploymentId, timezone]);
    await c.query('select rebuild_deployment_days($1)', [deploymentId]);
    return { deployment_id: deploymentId, timezone, previous, rebuilt: true };
  });
}
