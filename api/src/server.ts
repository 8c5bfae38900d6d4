import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { type NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { Counter, Histogram, Registry } from 'prom-client';
import type pg from 'pg';
import { connectNats, createLogger, createPool, decisionsBucket, featuresBucket, names, sweepFeatures } from '@kaching/contracts';
import { NatsLink } from '@kaching/contracts';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './http/context.js';
import { installErrorHandling } from './http/errors.js';
import { installCaching } from './http/cache.js';
import { buildOpenApi, collectRoutes, docsPage, type CollectedRoute } from './http/openapi.js';
import { readRoutes } from './http/routes/read.js';
import { adminRoutes } from './http/routes/admin.js';
import { priceRoutes } from './http/routes/prices.js';
import { costRoutes } from './http/routes/costs.js';
import { billingRoutes } from './http/routes/billing.js';
import { reportRoutes } from './http/routes/reports.js';
import { exportRoutes } from './http/routes/export.js';
import { authRoutes } from './http/routes/auth.js';
import { hqRoutes } from './http/routes/hq.js';
import { channelRoutes } from './http/routes/channels.js';
import { featureRoutes } from './http/routes/features.js';
import { installAuth, SessionCheckCache } from './http/auth.js';
import { JwtAuthority } from './auth/jwt.js';
import { dummyHash } from './auth/passwords.js';
import { sweepThrottle } from './auth/throttle.js';
import { registerDashboard } from './http/routes/dashboard.js';

export interface ApiHandle {
  url: string;
  app: FastifyInstance;
  /** Every documented route (method + url) as registered. */
  routes: CollectedRoute[];
  close(): Promise<void>;
}

export const API_VERSION = '0.1.0';

export async function start(config: ApiConfig, deps: { pool?: pg.Pool; nc?: NatsConnection; clock?: () => number } = {}): Promise<ApiHandle> {
  const log = createLogger('kaching-api', config.logLevel);
  const n = names(config.namespace);
  const pool = deps.pool ?? createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, applicationName: 'kaching-api' });
  const nc = deps.nc ?? (await connectNats(config.natsUrl, { name: 'kaching-api' }, config.natsSecurity));
  const link = new NatsLink(nc, log);
  let kv: Promise<KV> | undefined;
  let fkv: Promise<KV> | undefined;
  const now = () => new Date((deps.clock ?? Date.now)());
  const ctx: ApiContext = {
    config,
    pool,
    nc,
    names: n,
    decisions: () => {
      kv ??= decisionsBucket(nc, n).catch((e: unknown) => {
        kv = undefined;
        throw e;
      });
      return kv;
    },
    featuresKv: () => {
      fkv ??= featuresBucket(nc, n).catch((e: unknown) => {
        fkv = undefined;
        throw e;
      });
      return fkv;
    },
    now,
    auth: {
      jwt: new JwtAuthority(pool, { ttlS: config.jwtTtlS }),
      sessions: new SessionCheckCache(pool, config.sessionCacheTtlMs),
      policy: config.session,
    },
  };
  // the first unknown-login check must not be slower than the rest (it would tell that the login is unknown)
  void dummyHash();

  const registry = new Registry();
  const requests = new Counter({ name: 'kaching_api_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'kaching_api_request_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry],
  });

  const app: FastifyInstance = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    forceCloseConnections: true,
    trustProxy: config.trustProxy,
    ...(config.tls ? { https: { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } } : {}),
    // allowUnionTypes: prices take an integer or its decimal string (type: ['integer', 'string'])
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false, allowUnionTypes: true } },
  }) as unknown as FastifyInstance;
  // Response schemas document the API; bodies are plain JSON (no field stripping by a compiled serializer).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  const routes = collectRoutes(app);
  installErrorHandling(app);
  installCaching(app);

  installAuth(app, ctx);
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  readRoutes(app, ctx);
  exportRoutes(app, ctx);
  adminRoutes(app, ctx);
  priceRoutes(app, ctx);
  costRoutes(app, ctx);
  billingRoutes(app, ctx);
  reportRoutes(app, ctx);
  authRoutes(app, ctx);
  hqRoutes(app, ctx);
  channelRoutes(app, ctx);
  featureRoutes(app, ctx);

  let openapi: Record<string, unknown> | undefined;
  const doc = () => (openapi ??= buildOpenApi(routes, { title: 'KACHING API', version: API_VERSION }));
  const textOk = (produces: string) => ({ produces, response: { 200: { description: 'OK', type: 'string' } } });

  app.get('/openapi.json', { schema: { summary: 'This OpenAPI document', tags: ['meta'], response: { 200: { description: 'OpenAPI 3.1 document', type: 'object' } } } }, async () => doc());
  app.get('/docs', { schema: { summary: 'Human-readable list of operations', tags: ['meta'], ...textOk('text/html') } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(docsPage(doc())),
  );
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['meta'], response: { 200: { description: 'OK', type: 'object' } } } }, async () => ({ ok: true }));
  app.get('/readyz', { schema: { summary: 'Readiness: Postgres and NATS reachable', tags: ['meta'], response: { 200: { description: 'Ready', type: 'object' }, 503: { description: 'Not ready', type: 'object' } } } }, async (_req, reply) => {
    const pgOk = await pool.query('select 1').then(() => true, () => false);
    const natsOk = link.connected;
    return reply.code(pgOk && natsOk ? 200 : 503).send({ ok: pgOk && natsOk, postgres: pgOk, nats: natsOk });
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['meta'], ...textOk('text/plain') } }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
  registerDashboard(app);

  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ url: address }, 'api listening');
  // housekeeping: ended sign-in windows
  const sweeper = setInterval(() => void sweepThrottle(pool, now(), config.signin).catch(() => undefined), 10 * 60_000);
  sweeper.unref();
  // the features bucket follows the database even without writes: first fill, license expiry, lost publishes
  let sweeping: Promise<void> | undefined;
  const sweepOnce = () => {
    sweeping ??= ctx.featuresKv()
      .then((kv) => sweepFeatures(pool, kv, n, now()))
      .then(() => undefined, (e: unknown) => log.warn({ err: (e as Error).message }, 'features sweep failed'))
      .finally(() => (sweeping = undefined));
  };
  const featureSweeper = config.featuresSweepMs > 0 ? setInterval(sweepOnce, config.featuresSweepMs) : undefined;
  featureSweeper?.unref();
  if (featureSweeper) sweepOnce();
  let closing: Promise<void> | undefined;
  return {
    url: address,
    app,
    routes,
    close() {
      closing ??= (async () => {
        clearInterval(sweeper);
        if (featureSweeper) clearInterval(featureSweeper);
        await sweeping;
        await app.close().catch(() => undefined);
        if (!deps.nc) await nc.drain().catch(() => undefined);
        if (!deps.pool) await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
