import type pg from 'pg';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../names/names.js';
import { AuthError, InputError, KachingError } from '../errors/errors.js';
import { inTransaction } from '../db/pool.js';

type Q = pg.Pool | pg.PoolClient;

/** Flag names: what license features and event tags look like, and a safe JSON key. */
export const FLAG_NAME_RULE = /^[a-z][a-z0-9_.-]{0,63}$/;

export interface FeatureFlag {
  flag: string;
  enabled: boolean;
  /** Set with the operator's override: may switch on a feature the license does not grant. */
  override: boolean;
  updated_at: string;
  updated_by: string | null;
  /** Whether the flag takes effect (an "on" without license grant or override does not). */
  effective: boolean;
}

export interface LicenseInForce {
  license_id: string;
  plan_id: string;
  valid_from: string;
  valid_to: string;
  features: Record<string, unknown>;
}

/** Published to KV (`<ns>_features`, key = deployment id) and answered by GET /v1/features. */
export interface EffectiveFeatures {
  schema: 'kaching.v1.features';
  deployment_id: string;
  org_id: string;
  /** License features overlaid with the flags that take effect. */
  features: Record<string, unknown>;
  license: Omit<LicenseInForce, 'features'> & { features: Record<string, unknown> } | null;
  flags: FeatureFlag[];
  generated_at: string;
}

/** A license value grants its feature unless it is false, null, 0 or "". */
export function grants(v: unknown): boolean {
  return v !== undefined && v !== null && v !== false && v !== 0 && v !== '';
}

/** An "off" always counts; an "on" counts when the license grants the feature or an operator overrode it. */
export function flagTakesEffect(licenseFeatures: Record<string, unknown> | undefined, f: { flag: string; enabled: boolean; override?: boolean }): boolean {
  return !f.enabled || f.override === true || grants(licenseFeatures?.[f.flag]);
}

/** License features overlaid with the flags that take effect (the one merge rule, shared with the enforcer). */
export function mergeFeatures(licenseFeatures: Record<string, unknown> | undefined, flags: { flag: string; enabled: boolean; override?: boolean }[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(licenseFeatures ?? {}) };
  for (const f of flags) if (flagTakesEffect(licenseFeatures, f)) out[f.flag] = f.enabled;
  return out;
}

/**
 * The license in force for a deployment at `now`: valid at `now`, deployment-bound before org-wide,
 * newest activation first. An expired license grants no features.
 */
export async function licenseInForce(db: Q, deploymentId: string, now: Date): Promise<LicenseInForce | null> {
  const r = await db.query(
    `select l.license_id, l.plan_id, l.valid_from, l.valid_to, l.features from license l
      where (l.deployment_id = $1 or (l.deployment_id is null and l.org_id = (select org_id from deployment where deployment_id = $1)))
        and $2::timestamptz between l.valid_from and l.valid_to
      order by (l.deployment_id is null), l.activated_at desc limit 1`,
    [deploymentId, now],
  );
  const l = r.rows[0];
  if (!l) return null;
  return { license_id: l.license_id, plan_id: l.plan_id, valid_from: new Date(l.valid_from).toISOString(), valid_to: new Date(l.valid_to).toISOString(), features: l.features ?? {} };
}

/** Effective features of a deployment (null: no such deployment, or not visible under RLS). */
export async function effectiveFeatures(db: Q, deploymentId: string, now: Date): Promise<EffectiveFeatures | null> {
  const d = await db.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [deploymentId]);
  if (!d.rows[0]) return null;
  const license = await licenseInForce(db, deploymentId, now);
  const rows = await db.query(
    'select flag, enabled, override, updated_at, updated_by from feature_flag where deployment_id = $1 order by flag',
    [deploymentId],
  );
  const features = mergeFeatures(license?.features, rows.rows);
  const flags: FeatureFlag[] = rows.rows.map((f) => ({
    flag: f.flag, enabled: f.enabled, override: f.override, updated_at: new Date(f.updated_at).toISOString(), updated_by: f.updated_by,
    effective: flagTakesEffect(license?.features, f),
  }));
  return { schema: 'kaching.v1.features', deployment_id: deploymentId, org_id: d.rows[0].org_id, features, license, flags, generated_at: now.toISOString() };
}

export interface SetFlagInput {
  deploymentId: string;
  flag: string;
  enabled: boolean;
  /** Asked for explicitly: switch on a feature the license does not grant. */
  override?: boolean;
  /** Whether the caller holds the operator permission (operator API key scope; the CLI always does). */
  operator: boolean;
  /** Who: an API key id, a user id, or "cli". */
  by: string;
  now: Date;
}

export function checkFlagName(flag: string, field = 'flag'): void {
  if (!FLAG_NAME_RULE.test(flag)) {
    throw new InputError('FIELD_FORMAT', { field, rule: `pattern:${FLAG_NAME_RULE.source}`, message: 'A flag name is lower-case letters, digits, "_", "." or "-", starting with a letter, at most 64 characters' });
  }
}

/**
 * Sets a flag. Switching a feature on that the license in force does not grant needs `override` and the
 * operator permission; switching off, or on what the license grants, needs neither.
 */
export async function setFlag(db: Q, i: SetFlagInput): Promise<FeatureFlag> {
  checkFlagName(i.flag);
  const d = await db.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [i.deploymentId]);
  const orgId = d.rows[0]?.org_id;
  if (!orgId) throw new InputError('NOT_FOUND', { field: 'deployment_id', message: `No deployment ${i.deploymentId}` });
  const license = await licenseInForce(db, i.deploymentId, i.now);
  const licensed = grants(license?.features[i.flag]);
  let override = false;
  if (i.enabled && !licensed) {
    const what = license ? `license ${license.license_id} (plan ${license.plan_id}) does not grant "${i.flag}"` : `no license is in force, so nothing grants "${i.flag}"`;
    if (!i.override) throw new KachingError('FEATURE_NOT_LICENSED', { field: 'enabled', rule: 'license-grant', message: `The ${what}; pass override: true with an operator key to switch it on anyway` });
    if (!i.operator) throw new AuthError('FEATURE_OVERRIDE_SCOPE', { field: 'override', rule: 'scope:operator', message: `The ${what}; only an operator key may override it` });
    override = true;
  }
  const r = await db.query(
    `insert into feature_flag (deployment_id, org_id, flag, enabled, source, override, updated_at, updated_by)
     values ($1, $2, $3, $4, 'override', $5, $6, $7)
     on conflict (deployment_id, flag) do update set enabled = excluded.enabled, override = excluded.override,
       updated_at = excluded.updated_at, updated_by = excluded.updated_by
     returning flag, enabled, override, updated_at, updated_by`,
    [i.deploymentId, orgId, i.flag, i.enabled, override, i.now, i.by],
  );
  const f = r.rows[0];
  return { flag: f.flag, enabled: f.enabled, override: f.override, updated_at: new Date(f.updated_at).toISOString(), updated_by: f.updated_by, effective: true };
}

/** Removes a flag: the license's value (if any) applies again. */
export async function removeFlag(db: Q, deploymentId: string, flag: string): Promise<void> {
  checkFlagName(flag);
  const r = await db.query('delete from feature_flag where deployment_id = $1 and flag = $2', [deploymentId, flag]);
  if (r.rowCount === 0) throw new InputError('NOT_FOUND', { field: 'flag', message: `No flag "${flag}" on deployment ${deploymentId}` });
}

/** The KV bucket of effective features (history 5, like decisions: a watcher sees every change). */
export function featuresBucket(nc: NatsConnection, n: Names, replicas = 1): Promise<KV> {
  return new Kvm(nc).create(n.featuresBucket, { history: 5, replicas });
}

/**
 * Reads a deployment's effective features and puts them into KV, holding a per-deployment advisory lock
 * across read and put: publishers (API instances, the CLI) are serialised per deployment, and as each
 * publishes after its own commit, the last put always carries the newest committed state.
 * `db` is a client inside a transaction (asOrg, or inTransaction).
 */
export async function publishFeatures(db: pg.PoolClient, kv: KV, n: Names, deploymentId: string, now: Date, o: { onlyIfChanged?: boolean } = {}): Promise<EffectiveFeatures | null> {
  await db.query(`select pg_advisory_xact_lock(hashtext('kaching.features'), hashtext($1))`, [deploymentId]);
  const doc = await effectiveFeatures(db, deploymentId, now);
  if (!doc) return null;
  if (o.onlyIfChanged) {
    const cur = await kv.get(n.featuresKey(deploymentId));
    if (cur && cur.operation === 'PUT' && sameContent(cur.json<EffectiveFeatures>(), doc)) return null;
  }
  await kv.put(n.featuresKey(deploymentId), JSON.stringify(doc));
  return doc;
}

/** Equal but for generated_at: nothing an orchestrator acts on changed. */
function sameContent(a: EffectiveFeatures, b: EffectiveFeatures): boolean {
  return JSON.stringify({ ...a, generated_at: '' }) === JSON.stringify({ ...b, generated_at: '' });
}

/**
 * Brings every deployment's KV entry up to date, putting only those that changed: fills the bucket for
 * deployments that never saw a write, drops a license's features once it expires (or adds them once it
 * starts), and heals a publish lost to a NATS outage. Runs on the operator pool.
 */
export async function sweepFeatures(pool: pg.Pool, kv: KV, n: Names, now: Date): Promise<{ checked: number; published: number }> {
  const ids = (await pool.query<{ deployment_id: string }>('select deployment_id from deployment order by deployment_id')).rows.map((r) => r.deployment_id);
  let published = 0;
  for (const d of ids) {
    if (await inTransaction(pool, (c) => publishFeatures(c, kv, n, d, now, { onlyIfChanged: true }))) published++;
  }
  return { checked: ids.length, published };
}
