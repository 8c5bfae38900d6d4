import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';

/** Who this installation is: the JWT issuer and the HQ sender id, and the secret salt of HQ pseudonyms. */
export interface InstallationIdentity {
  installationId: string;
  /** 32 random bytes; keys HMAC-SHA-256 of ids sent to HQ. Never leaves the installation. */
  hqSalt: Buffer;
}

/**
 * Reads the installation's identity, creating it on first use. Concurrent first calls (several
 * processes starting at once) agree: the insert of the single row is a no-op for all but one.
 */
export async function installationIdentity(db: pg.Pool | pg.PoolClient): Promise<InstallationIdentity> {
  await db.query('insert into installation (installation_id, hq_salt) values ($1, $2) on conflict (singleton) do nothing', [
    randomUUID(),
    randomBytes(32),
  ]);
  const r = await db.query<{ installation_id: string; hq_salt: Buffer }>('select installation_id, hq_salt from installation');
  const row = r.rows[0]!;
  return { installationId: row.installation_id, hqSalt: row.hq_salt };
}

export const jwtIssuer = (installationId: string): string => `urn:kaching:installation:${installationId}`;
