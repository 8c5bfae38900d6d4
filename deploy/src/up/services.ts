import pg from 'pg';
import {
  connectNats,
  createLogger,
  decisionsBucket,
  ensureDecisionsStream,
  ensureEventsStream,
  migrate,
  names,
  type BaseConfig,
} from '@kaching/contracts';

/** What every service package exports for `kaching up`. */
interface ServicePackage {
  loadConfig?(env: NodeJS.ProcessEnv): BaseConfig & Record<string, unknown>;
  /** idle: nothing configured to run (e.g. HQ sync without KACHING_HQ_URL); not listed as a running service. */
  start?(config: unknown): Promise<{ close(): Promise<void>; url?: string; port?: number; idle?: boolean }>;
}

export interface RunningService {
  name: string;
  url?: string;
  close(): Promise<void>;
}

export interface Stack {
  services: RunningService[];
  ingestUrl: string;
  apiUrl?: string;
  missing: string[];
  close(): Promise<void>;
}

/** Creates the database named in DATABASE_URL when it does not exist yet (fresh clone). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const probe = new pg.Client({ connectionString: databaseUrl });
  try {
    await probe.connect();
    await probe.end();
    return;
  } catch (e) {
    await probe.end().catch(() => undefined);
    if ((e as { code?: string }).code !== '3D000') throw e;
  }
  const u = new URL(databaseUrl);
  const db = decodeURIComponent(u.pathname.slice(1));
  u.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: u.toString() });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(db)}`);
  } catch (e) {
    if ((e as { code?: string }).code !== '42P04') throw e; // created concurrently
  } finally {
    await admin.end();
  }
}

/** Schema, stream, decisions stream and KV bucket: everything the services expect to exist. */
export async function prepareInfrastructure(config: BaseConfig): Promise<void> {
  await ensureDatabase(config.databaseUrl);
  await migrate({ databaseUrl: config.databaseUrl, namespace: config.namespace });
  const nc = await connectNats(config.natsUrl, { name: 'kaching-up' });
  try {
    const n = names(config.namespace);
    await ensureEventsStream(nc, n);
    await ensureDecisionsStream(nc, n);
    await decisionsBucket(nc, n);
  } finally {
    await nc.close();
  }
}

const PACKAGES: { name: string; load(): Promise<unknown> }[] = [
  { name: 'ingest', load: () => import('@kaching/ingest') },
  { name: 'projector', load: () => import('@kaching/projector') },
  { name: 'enforcer', load: () => import('@kaching/enforcer') },
  // the archive: every stream message into Parquet segments (KACHING_ARCHIVE_DIR, default $KACHING_HOME/archive)
  { name: 'archiver', load: () => import('@kaching/archiver') },
  { name: 'api', load: () => import('@kaching/api') },
  // HQ sync: the pusher when KACHING_HQ_URL is set, the receiver when KACHING_ROLE=hq; otherwise idle
  { name: 'hq', load: () => import('@kaching/hq') },
];

/**
 * Starts every service package in this process with its own `start(loadConfig(env))`. A package
 * that does not export `start` yet is reported in `missing` instead of failing the whole stack.
 */
export async function startStack(env: NodeJS.ProcessEnv, config: BaseConfig, tweak?: (name: string, cfg: Record<string, unknown>) => void): Promise<Stack> {
  const log = createLogger('up', config.logLevel);
  const services: RunningService[] = [];
  const missing: string[] = [];
  const closeAll = async () => {
    for (const s of [...services].reverse()) {
      await s.close().catch((err: unknown) => log.error({ err, service: s.name }, 'close failed'));
    }
  };
  try {
    for (const p of PACKAGES) {
      const mod = (await p.load()) as ServicePackage;
      if (typeof mod.start !== 'function' || typeof mod.loadConfig !== 'function') {
        missing.push(p.name);
        continue;
      }
      const cfg = mod.loadConfig(env);
      tweak?.(p.name, cfg);
      const h = await mod.start(cfg);
      if (h.idle) {
        await h.close();
        continue;
      }
      services.push({ name: p.name, url: h.url, close: () => h.close() });
      log.info({ service: p.name, url: h.url }, 'started');
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  const ingest = services.find((s) => s.name === 'ingest');
  if (!ingest?.url) {
    await closeAll();
    throw new Error('the ingest service did not start');
  }
  let closing: Promise<void> | undefined;
  return {
    services,
    ingestUrl: ingest.url,
    apiUrl: services.find((s) => s.name === 'api')?.url,
    missing,
    close: () => (closing ??= closeAll()),
  };
}
