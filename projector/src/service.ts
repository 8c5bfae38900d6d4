import Fastify from 'fastify';
import { Gauge } from 'prom-client';
import { jetstreamManager } from '@nats-io/jetstream';
import { checkArchive, connectNats, untilAvailable, type ArchiveCheck, CONSUMER_DEFAULTS, createLogger, createPool, ensureEventsStream, InstanceRegistration, names, NatsLink, PriceBook, warnOnReplicas, ARCHIVE_LAG_ALERT_DEFAULT } from '@kaching/contracts';
import type { ProjectorConfig } from './config.js';
import { maintainPartitions } from './maintenance.js';
import { createMetrics, type ProjectorMetrics } from './metrics.js';
import { hardenPool } from './processor.js';
import { repriceProjections } from './reprice.js';
import { ProjectionRunner } from './runner.js';
import { BillingForwarder } from './billing/forwarder.js';

export interface ProjectorHandle {
  url: string;
  metrics: ProjectorMetrics;
  runners: ProjectionRunner[];
  /** Present when BILLING_SERVICE_URL is configured. */
  billing: BillingForwarder | null;
  close(): Promise<void>;
}

/**
 * Runs the configured projections plus /metrics, /healthz, /readyz. Each projection shares its lanes with
 * every other live instance running it (leases in Postgres); start as many processes as wanted.
 */
export async function start(config: ProjectorConfig): Promise<ProjectorHandle> {
  const log = createLogger('projector', config.logLevel);
  const n = names(config.namespace);
  const metrics = createMetrics();
  // lanes of several projections commit at once: one connection per projection and lane in flight, bounded
  const pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: config.projections.length * 2 + 4, applicationName: 'kaching-projector' });
  hardenPool(pool, (err) => log.warn({ err: err.message }, 'pg connection error'));
  const nc = await connectNats(config.natsUrl, { name: 'kaching-projector', maxReconnectAttempts: -1 }, config.natsSecurity);
  const link = new NatsLink(nc, log);
  const timers: NodeJS.Timeout[] = [];
  const leaseMs = config.leaseMs ?? CONSUMER_DEFAULTS.leaseMs;
  const registration = new InstanceRegistration(pool, { role: 'projector', consumers: [...config.projections], ttlMs: leaseMs });
  // one book for the projections of this process, reloaded in a batch's transaction when it changed
  const book = new PriceBook();
  const billingOn = !!config.billing;
  const runners = config.projections.map(
    (p) => new ProjectionRunner(nc, pool, n, p, {
      batchSize: config.batchSize, fillMs: config.fillMs, leaseMs, partitions: config.partitions ?? CONSUMER_DEFAULTS.partitions, registration, metrics, log: log.child({ projection: p }), book, billing: billingOn,
    }),
  );
  const forwarder = config.billing ? new BillingForwarder(pool, config.billing, metrics, log.child({ component: 'billing' })) : null;
  if (forwarder) {
    new Gauge({
      name: 'kaching_billing_outbox_records', help: 'Billing records not yet sent, by status (pending, dead)', labelNames: ['status'], registers: [metrics.registry],
      async collect() {
        const b = await forwarder.backlog().catch(() => null);
        if (b) for (const [status, n] of Object.entries(b)) this.set({ status }, n);
      },
    });
  }
  const app = Fastify({ logger: false, forceCloseConnections: true });
  let archive: ArchiveCheck | null = null;
  let closed: Promise<void> | null = null;
  const close = () =>
    (closed ??= (async () => {
      for (const t of timers) clearInterval(t);
      await Promise.all(runners.map((r) => r.stop()));
      await forwarder?.stop();
      await registration.remove().catch(() => undefined);
      await app.close().catch(() => undefined);
      await nc.drain().catch(() => nc.close().catch(() => undefined));
      await pool.end().catch(() => undefined);
    })());
  try {
    // Started while a NATS node restarts or the stream elects its leader (a cluster's normal hiccups): wait, not exit.
    await untilAvailable(async () => {
      await ensureEventsStream(nc, n, { replicas: config.streamReplicas });
      const jsm = await jetstreamManager(nc);
      // durables of versions before the runner read nothing any more
      for (const p of config.projections) await jsm.consumers.delete(n.eventsStream, n.consumer(p)).catch(() => undefined);
    }, { log, what: 'reach the events stream' });
    warnOnReplicas(nc, config.streamReplicas, log);
    {
      const maintain = () =>
        maintainPartitions(pool, config)
          .then((r) => (r.dropped.length || r.droppedHourly.length || Object.values(r.pruned).some(Boolean)) && log.info({ dropped: r.dropped, droppedHourly: r.droppedHourly, pruned: r.pruned }, 'dropped and pruned rows past retention'))
          .catch((err) => log.warn({ err: (err as Error).message }, 'partition maintenance failed'));
      await maintain();
      timers.push(setInterval(maintain, config.maintenanceIntervalMs).unref());
      if (config.archiveCheckMs) {
        // the archiver cannot report its own absence: the raw projector watches the archive's lag
        let checking = false;
        const checkTick = () => {
          if (checking) return;
          checking = true;
          checkArchive(nc, pool, n, config.archiveLagAlertEvents ?? ARCHIVE_LAG_ALERT_DEFAULT, config.archiveLagAlertAfterMs)
            .then((c) => {
              archive = c;
              metrics.archiveLag.set(c.lag);
              metrics.archiveAlert.set(c.alerting ? 1 : 0);
              if (c.raised) log.error({ lag: c.lag, threshold: c.threshold }, 'archive lag alert: the archive is falling behind the stream (is the archiver running?)');
            })
            .catch((err) => log.warn({ err: (err as Error).message }, 'archive lag check failed'))
            .finally(() => (checking = false));
        };
        checkTick();
        timers.push(setInterval(checkTick, config.archiveCheckMs).unref());
      }
    }
    await Promise.all(runners.map((r) => r.start()));
    if (config.projections.includes('raw') || config.projections.includes('rollups')) {
      // a price change re-prices what is stored (one instance at a time; a no-op while the book is unchanged)
      let repricing = false;
      const repriceTick = () => {
        if (repricing) return;
        repricing = true;
        repriceProjections(pool, log, { billing: billingOn })
          .catch((err) => log.warn({ err: (err as Error).message }, 're-pricing failed; retried at the next tick'))
          .finally(() => (repricing = false));
      };
      timers.push(setInterval(repriceTick, config.repriceIntervalMs ?? 2000).unref());
    }

    // a separate loop: a billing service that is down never slows the projections
    forwarder?.start();

    app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
    app.get('/healthz', async () => ({ ok: true }));
    app.get('/readyz', async (_req, reply) => {
      const dbOk = await pool.query('select 1').then(() => true, () => false);
      const ok = dbOk && link.connected && runners.every((r) => r.ready);
      return reply.code(ok ? 200 : 503).send({
        ok,
        // degraded, still serving: the archive lags (see archiver/README.md)
        status: !ok ? 'unavailable' : archive?.alerting ? 'degraded' : 'ok',
        archive: archive ? { lag_events: archive.lag, alerting: archive.alerting, archived_through: archive.archivedThrough } : null,
        database: dbOk,
        nats: link.connected,
        instance: registration.id,
        projections: Object.fromEntries(runners.map((r) => [r.projection, { ready: r.ready, last_seq: r.lastSeq, lanes: r.runner.lanes() }])),
      });
    });
    const address = await app.listen({ port: config.port, host: config.host });
    log.info({ address, projections: config.projections, billing: config.billing ? { format: config.billing.format } : null }, 'projector started');
    return { url: address.replace('0.0.0.0', '127.0.0.1'), metrics, runners, billing: forwarder, close };
  } catch (err) {
    await close();
    throw err;
  }
}
