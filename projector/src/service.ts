import Fastify from 'fastify';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createLogger, createPool, ensureEventsStream, names } from '@kaching/contracts';
import type { ProjectorConfig } from './config.js';
import { maintainPartitions } from './maintenance.js';
import { createMetrics, type ProjectorMetrics } from './metrics.js';
import { hardenPool, ProjectionRunner } from './processor.js';

export interface ProjectorHandle {
  url: string;
  metrics: ProjectorMetrics;
  runners: ProjectionRunner[];
  close(): Promise<void>;
}

/** Runs the configured projections (each its own durable consumer and checkpoint) plus /metrics, /healthz, /readyz. */
export async function start(config: ProjectorConfig): Promise<ProjectorHandle> {
  const log = createLogger('projector', config.logLevel);
  const n = names(config.namespace);
  const metrics = createMetrics();
  const pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: config.projections.length + 3, applicationName: 'kaching-projector' });
  hardenPool(pool, (err) => log.warn({ err: err.message }, 'pg connection error'));
  const nc = await connect({ servers: config.natsUrl, name: 'kaching-projector', maxReconnectAttempts: -1 });
  const timers: NodeJS.Timeout[] = [];
  const runners = config.projections.map((p) => new ProjectionRunner(nc, pool, n, p, config.batchSize, metrics, log.child({ projection: p }), config.ackWaitMs));
  const app = Fastify({ logger: false, forceCloseConnections: true });
  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
      for (const t of timers) clearInterval(t);
      await Promise.all(runners.map((r) => r.stop()));
      await app.close().catch(() => undefined);
      await nc.drain().catch(() => nc.close().catch(() => undefined));
      await pool.end().catch(() => undefined);
    })());
  try {
    await ensureEventsStream(nc, n);
    const jsm = await jetstreamManager(nc);
    if (config.projections.includes('raw')) {
      const maintain = () =>
        maintainPartitions(pool, config)
          .then((r) => r.dropped.length && log.info({ dropped: r.dropped }, 'dropped usage_sample partitions past retention'))
          .catch((err) => log.warn({ err: (err as Error).message }, 'partition maintenance failed'));
      await maintain();
      timers.push(setInterval(maintain, config.maintenanceIntervalMs).unref());
    }
    for (const r of runners) await r.start();
    const pollPending = async () => {
      for (const r of runners) {
        const info = await jsm.consumers.info(n.eventsStream, n.consumer(r.projection)).catch(() => null);
        if (info) metrics.pending.set({ projection: r.projection }, info.num_pending + info.num_ack_pending);
      }
    };
    await pollPending();
    timers.push(setInterval(() => void pollPending(), 5000).unref());

    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
    app.get('/healthz', async () => ({ ok: true }));
    app.get('/readyz', async (_req, reply) => {
      const dbOk = await pool.query('select 1').then(() => true, () => false);
      const ok = dbOk && !nc.isClosed() && runners.every((r) => r.ready);
      return reply.code(ok ? 200 : 503).send({
        ok,
        database: dbOk,
        nats: !nc.isClosed(),
        projections: Object.fromEntries(runners.map((r) => [r.projection, { ready: r.ready, last_seq: r.lastSeq }])),
      });
    });
    const address = await app.listen({ port: config.port, host: config.host });
    log.info({ address, projections: config.projections }, 'projector started');
    return { url: address.replace('0.0.0.0', '127.0.0.1'), metrics, runners, close };
  } catch (err) {
    await close();
    throw err;
  }
}
