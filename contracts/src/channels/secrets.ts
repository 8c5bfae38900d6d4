import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type pg from 'pg';

/**
 * The installation's channel key (32 random bytes, created on first use). Only the services' own database
 * role reads it: the org role used for API requests has no grant on the table.
 */
export async function channelKey(db: pg.Pool | pg.PoolClient): Promise<Buffer> {
  await db.query('insert into channel_key (key) values ($1) on conflict (singleton) do nothing', [randomBytes(32)]);
  return (await db.query<{ key: Buffer }>('select key from channel_key')).rows[0]!.key;
}

/** AES-256-GCM, bound to the channel id (a ciphertext copied onto another row does not open): iv | tag | data. */
export function sealSecret(key: Buffer, channelId: string, secret: string): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(channelId));
  const data = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), data]);
}

export function openSecret(key: Buffer, channelId: string, sealed: Buffer): string {
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12)).setAAD(Buffer.from(channelId));
  d.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([d.update(sealed.subarray(28)), d.final()]).toString('utf8');
}
