import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { baseConfig, createPool, migrate, names, type Names } from '@kaching/contracts';

/**
 * One test file's private world on the real servers: its own Postgres database (migrated) and
 * its own namespace (stream, subjects, consumers, KV). Files run in parallel and never meet.
 */
export interface IsolatedEnv {
  namespace: string;
  names: Names;
  databaseUrl: string;
  natsUrl: string;
  pool: pg.Pool;
  /** Environment for a child process (a service or the CLI) that must live in this world. */
  env: NodeJS.ProcessEnv;
  nats(): Promise<NatsConnection>;
  cleanup(): Promise<void>;
}

export async function isolatedEnv(opts: { migrate?: boolean } = {}): Promise<IsolatedEnv> {
  const base = baseConfig();
  const suffix = randomBytes(5).toString('hex');
  const namespace = `t${suffix}`;
  const dbName = `kaching_test_${suffix}`;
  const adminUrl = withDatabase(base.databaseUrl, 'postgres');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(dbName)}`);
  await admin.end();
  const databaseUrl = withDatabase(base.databaseUrl, dbName);
  if (opts.migrate !== false) await migrate({ databaseUrl, namespace });
  const pool = createPool({ databaseUrl, namespace, max: 5 });
  const connections: NatsConnection[] = [];
  return {
    namespace,
    names: names(namespace),
    databaseUrl,
    natsUrl: base.natsUrl,
    pool,
    env: { ...process.env, DATABASE_URL: databaseUrl, NATS_URL: base.natsUrl, KACHING_NAMESPACE: namespace },
    async nats() {
      const nc = await connect({ servers: base.natsUrl });
      connections.push(nc);
      return nc;
    },
    async cleanup() {
      await pool.end().catch(() => undefined);
      await removeNamespaceFromNats(base.natsUrl, namespace).catch(() => undefined);
      await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists ${pg.escapeIdentifier(dbName)} with (force)`);
      await a.end();
    },
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Deletes every stream (KV buckets are streams named KV_<bucket>) belonging to the namespace. */
async function removeNamespaceFromNats(natsUrl: string, namespace: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const prefixes = [`${namespace.toUpperCase()}_`, `KV_${namespace}_`, `OBJ_${namespace}_`];
    for await (const si of jsm.streams.list()) {
      if (prefixes.some((p) => si.config.name.startsWith(p))) await jsm.streams.delete(si.config.name);
    }
  } finally {
    await nc.close();
  }
}
