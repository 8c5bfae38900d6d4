import { createHash, X509Certificate } from 'node:crypto';
import type pg from 'pg';
import { InputError } from '@kaching/contracts';

// HQ's registry of who may push: each installation is known by the SHA-256 fingerprint of its
// client certificate (pinned, so another certificate from the same CA is not enough).

export function certFingerprint(pem: string | Buffer): Buffer {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (e) {
    throw new InputError('FIELD_FORMAT', { field: 'cert', rule: 'format:x509-pem', message: `Not a PEM certificate: ${(e as Error).message}` });
  }
  return Buffer.from(cert.fingerprint256.replace(/:/g, ''), 'hex');
}

export interface HqInstallation {
  installation_id: string;
  name: string;
  cert_sha256: string;
  created_at: string;
  revoked_at: string | null;
  last_push_at: string | null;
}

const COLUMNS = `installation_id, name, encode(cert_sha256, 'hex') as cert_sha256, created_at, revoked_at, last_push_at`;

/** Registers an installation (or replaces its certificate, un-revoking it). */
export async function registerInstallation(pool: pg.Pool, opts: { installationId: string; name: string; certPem: string | Buffer }): Promise<HqInstallation> {
  const name = opts.name.trim();
  if (name.length < 1 || name.length > 200) throw new InputError('FIELD_LENGTH', { field: 'name', rule: 'length:1..200' });
  const fp = certFingerprint(opts.certPem);
  const r = await pool
    .query<HqInstallation>(
      `insert into hq_installation (installation_id, name, cert_sha256) values ($1, $2, $3)
       on conflict (installation_id) do update set name = excluded.name, cert_sha256 = excluded.cert_sha256, revoked_at = null
       returning ${COLUMNS}`,
      [opts.installationId, name, fp],
    )
    .catch((e: { code?: string }) => {
      if (e.code === '23505') throw new InputError('CONFLICT', { field: 'cert', message: 'That certificate is registered for another installation' });
      throw e;
    });
  return r.rows[0]!;
}

export async function listInstallations(pool: pg.Pool): Promise<HqInstallation[]> {
  return (await pool.query<HqInstallation>(`select ${COLUMNS} from hq_installation order by name, installation_id`)).rows;
}

export async function revokeInstallation(pool: pg.Pool, installationId: string): Promise<HqInstallation> {
  const r = await pool.query<HqInstallation>(`update hq_installation set revoked_at = coalesce(revoked_at, now()) where installation_id = $1 returning ${COLUMNS}`, [installationId]);
  if (!r.rows[0]) throw new InputError('NOT_FOUND', { field: 'id', message: `No installation ${installationId}` });
  return r.rows[0];
}

/** The unrevoked installation a client certificate (DER bytes) is registered for. */
export async function installationByCert(pool: pg.Pool, certDer: Buffer): Promise<{ installation_id: string; name: string } | undefined> {
  const fp = createHash('sha256').update(certDer).digest();
  const r = await pool.query<{ installation_id: string; name: string }>('select installation_id, name from hq_installation where cert_sha256 = $1 and revoked_at is null', [fp]);
  return r.rows[0];
}
