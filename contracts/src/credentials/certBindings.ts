import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { InputError, KachingError } from '../errors/errors.js';

export interface CertBindingRow {
  binding_id: string;
  deployment_id: string;
  org_id: string;
  /** Lower-case hex, or null for a subject binding. */
  cert_sha256: string | null;
  subject: string | null;
  label: string | null;
  created_at: string;
  revoked_at: string | null;
}

const COLUMNS = `binding_id, deployment_id, org_id, encode(cert_sha256, 'hex') as cert_sha256, subject, label, created_at, revoked_at`;

/**
 * Binds a client certificate to a deployment's ingest tokens (exactly one of fingerprint or subject).
 * Binding what is already bound returns the existing row.
 */
export async function bindCert(
  pool: pg.Pool,
  input: { deploymentId: string; fingerprint?: Buffer | null; subject?: string | null; label?: string | null },
): Promise<{ binding: CertBindingRow; created: boolean }> {
  const fp = input.fingerprint ?? null;
  const subject = input.subject ?? null;
  if ((fp === null) === (subject === null)) {
    throw new InputError('FIELD_REQUIRED', { field: 'fingerprint', rule: 'oneOf:fingerprint|subject', message: 'Give exactly one of a fingerprint (or certificate) and a subject' });
  }
  if (subject !== null && (subject.length < 1 || subject.length > 255 || /[\u0000-\u001f]/.test(subject))) {
    throw new InputError('FIELD_FORMAT', { field: 'subject', rule: 'length:1..255,printable', message: 'subject must be 1-255 printable characters' });
  }
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(input.deploymentId)) {
    throw new InputError('FIELD_FORMAT', { field: 'deployment_id', rule: 'format:uuid' });
  }
  const dep = await pool.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [input.deploymentId]);
  const orgId = dep.rows[0]?.org_id;
  if (!orgId) throw new KachingError('NOT_FOUND', { field: 'deployment_id', message: `deployment ${input.deploymentId} does not exist` });
  const ins = await pool.query<CertBindingRow>(
    `insert into ingest_cert_binding (binding_id, deployment_id, org_id, cert_sha256, subject, label)
     values ($1, $2, $3, $4, $5, $6) on conflict do nothing returning ${COLUMNS}`,
    [randomUUID(), input.deploymentId, orgId, fp, subject, input.label ?? null],
  );
  if (ins.rows[0]) return { binding: ins.rows[0], created: true };
  const existing = await pool.query<CertBindingRow>(
    `select ${COLUMNS} from ingest_cert_binding
      where deployment_id = $1 and revoked_at is null and (cert_sha256 = $2 or subject = $3)`,
    [input.deploymentId, fp, subject],
  );
  return { binding: existing.rows[0]!, created: false };
}

/** Ends a binding; ingest honours it at once when announced, else within INGEST_AUTH_CACHE_TTL_MS. */
export async function unbindCert(pool: pg.Pool, bindingId: string): Promise<CertBindingRow> {
  if (!/^[0-9a-f-]{36}$/i.test(bindingId)) throw new InputError('FIELD_FORMAT', { field: 'binding_id', rule: 'format:uuid' });
  const r = await pool.query<CertBindingRow>(
    `update ingest_cert_binding set revoked_at = coalesce(revoked_at, now()) where binding_id = $1 returning ${COLUMNS}`,
    [bindingId],
  );
  if (!r.rows[0]) throw new KachingError('NOT_FOUND', { field: 'binding_id', message: `binding ${bindingId} does not exist` });
  return r.rows[0];
}

export async function listCertBindings(pool: pg.Pool, deploymentId: string, includeRevoked = false): Promise<CertBindingRow[]> {
  const r = await pool.query<CertBindingRow>(
    `select ${COLUMNS} from ingest_cert_binding where deployment_id = $1 ${includeRevoked ? '' : 'and revoked_at is null'} order by created_at`,
    [deploymentId],
  );
  return r.rows;
}
