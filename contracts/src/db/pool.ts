import pg from 'pg';
import { names } from '../names/names.js';

// Return bigint columns (count(*), sums of bigint) as strings: the caller decides, we never lose digits.
export interface PoolOptions {
  databaseUrl: string;
  namespace: string;
  max?: number;
  applicationName?: string;
  /**
   * Postgres ends a session left idle inside a transaction this long (ms; 0 = never). A process paused
   * (SIGSTOP, a long GC) or cut off mid-transaction must not hold row locks the other instances wait on.
   */
  idleInTransactionTimeoutMs?: number;
}

/** No transaction of KACHING's own waits on the client for more than a few ms between statements. */
export const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

/** A pg pool whose every connection works inside the installation's schema. */
export function createPool(opts: PoolOptions): pg.Pool {
  const schema = names(opts.namespace).dbSchema;
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'kaching',
    options: `-c search_path=${schema},public -c idle_in_transaction_session_timeout=${opts.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS}`,
  });
  // A connection lost under a client (Postgres restarted, network cut) fails the query that uses it
  // and pg-pool discards the client; as an 'error' event with no listener it would kill the process
  // (idle clients emit on the pool, checked-out ones on the client). Callers may add listeners to log.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Runs fn inside one transaction; rolls back on throw. */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  opts: { isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(opts.isolation ? `begin isolation level ${opts.isolation}` : 'begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Runs fn as the row-level-security role with the caller's org set, in one transaction:
 * whatever fn queries, Postgres itself hides other orgs' rows.
 */
export async function asOrg<T>(pool: pg.Pool, orgId: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(pool, async (client) => {
    await client.query('set local role kaching_org_reader');
    await client.query(`select set_config('kaching.org_id', $1, true)`, [orgId]);
    return fn(client);
  });
}
