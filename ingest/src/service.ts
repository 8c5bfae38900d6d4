import { type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { connectNats, CONSUMER_DEFAULTS, type ConfigChange, createLogger, createPool, ensureEventsStream, names, streamExists, untilAvailable, warnOnReplicas } from '@kaching/contracts';
import type pg from 'pg';
import { KeyStore } from './auth/keys.js';
import { TokenAuthenticator } from './auth/tokens.js';
import { CertBindings } from './auth/certBindings.js';
import type { IngestConfig } from './config.js';
import { buildHttp } from './http/server.js';
import { IngestMetrics } from './metrics.js';
import { serveNats } from './nats/service.js';
import { Appender } from './pipeline/appender.js';
import { IngestCore } from './pipeline/ingestCore.js';
import { IngestPartitioning } from './pipeline/partitioning.js';
import { RateLimiter } from './pipeline/rateLimit.js';
import { Verifier } from './pipeline/verifier.js';

export interface IngestHandle {
  /** The HTTP bridge, e.g. http://127.0.0.1:7070 (https:// with INGEST_TLS_CERT) */
  url: string;
  port: number;
  nc: NatsConnection;
  metrics: IngestMetrics;
  close(): Promise<void>;
}

export async function start(config: IngestConfig): Promise<IngestHandle> {
  const log = createLogger('ingest', config.logLevel);
  const n = names(config.namespace);
  const pool: pg.Pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, applicationName: 'kaching-ingest' });
  const metrics = new IngestMetrics();
  let nc: NatsConnection | undefined;
  let verifier: Verifier | undefined;
  try {
    nc = await connectNats(config.natsUrl, {
      name: 'kaching-ingest',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // The client otherwise builds an Error (stack capture) per request just in case: measurable at 10k+ publishes/s.
      noAsyncTraces: true,
    }, config.natsSecurity);
    const conn0 = nc;
    // Started while a NATS node restarts or the stream elects its leader (a cluster's normal hiccups): wait, not exit.
    await untilAvailable(
      () =>
        ensureEventsStream(conn0, n, {
          duplicateWindowMs: config.duplicateWindowMs,
          maxAgeMs: config.streamMaxAgeMs,
          maxBytes: -1,
          replicas: config.streamReplicas ?? CONSUMER_DEFAULTS.streamReplicas,
        }),
      { log, what: 'reach the events stream' },
    );
    warnOnReplicas(nc, config.streamReplicas, log);
  } catch (err) {
    await nc?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw err;
  }
  const conn = nc;
  const partitioning = new IngestPartitioning(pool, {
    initial: config.partitions ?? CONSUMER_DEFAULTS.partitions,
    leaseMs: config.leaseMs ?? CONSUMER_DEFAULTS.leaseMs,
    retryAfterS: config.retryAfterS,
    log,
  });
  await partitioning.start();
  const appender = new Appender(conn, n, config.publishTimeoutMs, config.retryAfterS, partitioning);
  metrics.natsConnected.set(1);
  void (async () => {
    for await (const s of conn.status()) {
      if (s.type === 'disconnect') {
        appender.connected = false;
        metrics.natsConnected.set(0);
        log.warn({ server: s.server }, 'NATS disconnected: answering 503 until it is back');
      } else if (s.type === 'reconnect') {
        appender.connected = true;
        metrics.natsConnected.set(1);
        log.info({ server: s.server }, 'NATS reconnected');
      }
    }
  })().catch(() => undefined);

  verifier = new Verifier(config.verifyWorkers);
  const keys = new KeyStore(pool, config.authCacheTtlMs);
  const certs = config.tls?.clientCaFile ? new CertBindings(pool, config.authCacheTtlMs, config.tls.requireBinding) : undefined;
  // A key register/revoke announced by the CLI or the API applies at once, not after the cache TTL
  // (a compromise revocation must not wait); the TTL still bounds a missed announcement.
  const configSub = conn.subscribe(n.configWildcard, {
    callback: (err, msg) => {
      if (err) return;
      try {
        const change = msg.json<ConfigChange>();
        if (change.kind === 'key' && change.id) keys.drop(change.deployment_id, change.id);
        if (change.kind === 'cert') certs?.drop(change.deployment_id);
      } catch {
        /* not a config change */
      }
    },
  });
  const core = new IngestCore({
    config,
    tokens: new TokenAuthenticator(pool, config.authCacheTtlMs),
    ...(certs ? { certs } : {}),
    keys,
    verifier,
    appender,
    limiter: new RateLimiter(config.rateLimitPerSec, config.rateLimitBurst),
    metrics,
    log,
  });
  let sub: Subscription | undefined;
  if (config.natsService) sub = serveNats(conn, n, core, config.bodyLimitBytes);

  const ready = async () => {
    const connected = appender.connected && !conn.isClosed();
    let stream = false;
    if (connected) stream = await withTimeout(streamExists(conn, n.eventsStream), 2000).catch(() => false);
    return { ok: connected && stream, checks: { nats_connected: connected, stream_present: stream } };
  };
  const app = buildHttp({ core, metrics, bodyLimitBytes: config.bodyLimitBytes, ready, ...(config.tls ? { tls: config.tls } : {}) });
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    await verifier.close();
    await conn.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  log.info({ port, tls: config.tls ? (config.tls.clientCaFile ? 'mtls' : 'tls') : 'off', namespace: config.namespace, verifyWorkers: config.verifyWorkers, verifyBackend: Verifier.backend }, 'ingest listening');

  let closing: Promise<void> | undefined;
  return {
    url: `${config.tls ? 'https' : 'http'}://${host}:${port}`,
    port,
    nc: conn,
    metrics,
    close() {
      closing ??= (async () => {
        sub?.unsubscribe();
        configSub.unsubscribe();
        await app.close().catch(() => undefined);
        await withTimeout(conn.drain(), 3000).catch(() => conn.close().catch(() => undefined));
        appender.close();
        await partitioning.close();
        await verifier!.close();
        await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
