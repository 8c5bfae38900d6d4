import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { names } from '../names/names.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface MigrateResult {
  schema: string;
  applied: string[];
  alreadyApplied: string[];
}

/**
 * Applies every migration in `contracts/migrations` not yet applied to the namespace's schema.
 * Idempotent, and safe when several processes start at once: an advisory lock (per database and
 * schema) serialises them, and each file runs in its own transaction with its bookkeeping row.
 */
export async function migrate(opts: { databaseUrl: string; namespace: string; dir?: string }): Promise<MigrateResult> {
  const schema = names(opts.namespace).dbSchema;
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const files = (await readdir(dir)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const client = new pg.Client({ connectionString: opts.databaseUrl, application_name: 'kaching-migrate' });
  await client.connect();
  const applied: string[] = [];
  const alreadyApplied: string[] = [];
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [`kaching.migrate.${schema}`]);
    await client.query(`create schema if not exists ${pg.escapeIdentifier(schema)}`);
    await client.query(`set search_path = ${pg.escapeIdentifier(schema)}, public`);
    await client.query(`create table if not exists schema_migrations (
      name text primary key, checksum text not null, applied_at timestamptz not null default now())`);
    const done = new Map<string, string>(
      (await client.query<{ name: string; checksum: string }>('select name, checksum from schema_migrations')).rows.map(
        (r) => [r.name, r.checksum],
      ),
    );
    for (const file of files) {
      const sql = await readFile(`${dir}/${file}`, 'utf8');
      const checksum = createHash('sha256').update(sql).digest('hex');
      const previous = done.get(file);
      if (previous !== undefined) {
        if (previous !== checksum) {
          throw new Error(`migration ${file} changed after it was applied to schema "${schema}" (checksum mismatch)`);
        }
        alreadyApplied.push(file);
        continue;
      }
      await client.query('begin');
      try {
        await client.query(sql);
        await client.query('insert into schema_migrations (name, checksum) values ($1, $2)', [file, checksum]);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(file);
    }
    return { schema, applied, alreadyApplied };
  } finally {
    await client.query('select pg_advisory_unlock_all()').catch(() => undefined);
    await client.end();
  }
}
