import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { baseConfig, type BaseConfig } from '@kaching/contracts';

/**
 * Runs `fn` against a database of its own (`<prefix>_<hex>`, created on the server DATABASE_URL names and
 * dropped afterwards, whatever happens), with a suffix for namespaces that must not meet another run's.
 */
export async function withScratchDatabase<T>(prefix: string, fn: (config: BaseConfig, suffix: string) => Promise<T>): Promise<T> {
  const base = baseConfig();
  const suffix = randomBytes(4).toString('hex');
  const db = `${prefix}_${suffix}`;
  const admin = new pg.Client({ connectionString: withDatabase(base.databaseUrl, 'postgres') });
  await admin.connect();
  await admin.query(`create database ${db}`);
  try {
    return await fn({ ...base, databaseUrl: withDatabase(base.databaseUrl, db) }, suffix);
  } finally {
    await admin.query(`drop database if exists ${db} with (force)`).catch(() => undefined);
    await admin.end();
  }
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
