import { jetstreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import {
  checkArchive, connectNats, ConsumerRunner, CONSUMER_DEFAULTS, createLogger, createPool, ensureEventsStream, InstanceRegistration, NatsLink,
  names as mkNames, startOpsServer, untilAvailable, warnOnReplicas, ARCHIVER_CONSUMER, type ArchiveCheck, type Names,
} from '@kaching/contracts';
import type { ArchiverConfig } from './config.js';
import type { ManifestEntry } from './manifest.js';
import { createMetrics, type ArchiverMetrics } from './metrics.js';
import { ParquetCodec } from './segment.js';
import { openStore } from './stores.js';
import { ArchiveWriter } from './writer.js';

export interface ArchiverHandle {
  url: string;
  metrics: ArchiverMetrics;
  /** Publishes the open segments now. */
  flush(): Promise<void>;
  /** One maintenance round now: lag, alert, purge. */
  maintain(): Promise<ArchiveCheck | null>;
  close(): Promise<void>;
}

/**
 * Purges from the stream the archived messages of the given lanes whose segment was published more than
 * hotRetentionMs ago: per lane (subject filter), up to the last such segment. Never beyond the manifest.
 */
export async function purgeArchived(o: { nc: Parameters<typeof jetstreamManager>[0]; names: Names; lanes: { lane: Parameters<Names['laneFilter']>[0]; entries: ManifestEntry[] }[]; hotRetentionMs: number; purgedTo: Map<string, number>; now?: number }): Promise<number> {
  const cutoff = (o.now ?? Date.now()) - o.hotRetentionMs;
  let purged = 0;
  const jsm = await jetstreamManager(o.nc);
  for (const { lane, entries } of o.lanes) {
    const old = entries.filter((e) => Date.parse(e.archived_at) <= cutoff).at(-1);
    if (!old || (o.purgedTo.get(lane.id) ?? 0) >= old.last_seq) continue;
    const r = await jsm.streams.purge(o.names.eventsStream, { filter: o.names.laneFilter(lane), seq: old.last_seq + 1 });
    o.purgedTo.set(lane.id, old.last_seq);
    purged += r.purged;
  }
  return purged;
}

export async function start(config: ArchiverConfig): Promise<ArchiverHandle> {
  const log = createLogger('archiver', config.logLevel);
  const n = mkNames(config.namespace);
  const metrics = createMetrics();
  const pool: pg.Pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, applicationName: 'kaching-archiver' });
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle pg client error'));
  const nc = await connectNats(config.natsUrl, { name: 'kaching-archiver' });
  const link = new NatsLink(nc, log);
  const replicas = config.streamReplicas ?? CONSUMER_DEFAULTS.streamReplicas;
  await untilAvailable(() => ensureEventsStream(nc, n, { replicas }), { log, what: 'reach the events stream' });
  warnOnReplicas(nc, replicas, log);
  const store = openStore(config);
  const codec = new ParquetCodec();
  const writer = new ArchiveWriter({
    store, codec, pool, log,
    segmentEvents: config.segmentEvents,
    segmentSeconds: config.segmentSeconds,
    onSegment(e, seconds) {
      metrics.segments.inc();
      metrics.events.inc(e.count);
      metrics.bytes.inc(e.bytes);
      metrics.publish.observe(seconds);
      log.info({ lane: e.lane, file: e.file, first: e.first_seq, last: e.last_seq, bytes: e.bytes }, 'segment published');
    },
    onError: () => metrics.failures.inc(),
  });
  const leaseMs = config.leaseMs ?? CONSUMER_DEFAULTS.leaseMs;
  const registration = new InstanceRegistration(pool, { role: 'archiver', consumers: [ARCHIVER_CONSUMER], ttlMs: leaseMs });
  const runner = new ConsumerRunner({
    nc, pool, names: n, handler: writer.handler, registration, log,
    initialPartitions: config.partitions ?? CONSUMER_DEFAULTS.partitions,
    batchSize: config.batchSize,
    leaseMs,
    onBatch: (b) => metrics.lag.set(b.pending),
    onError: () => metrics.failures.inc(),
  });
  await runner.start();

  let last: ArchiveCheck | null = null;
  const purgedTo = new Map<string, number>();
  let maintaining: Promise<ArchiveCheck | null> | null = null;
  const maintain = () =>
    (maintaining ??= (async () => {
      try {
        last = await checkArchive(nc, pool, n, config.lagAlertEvents, config.lagAlertAfterMs);
        metrics.lag.set(last.lag);
        metrics.archivedThrough.set(last.archivedThrough);
        metrics.alerting.set(last.alerting ? 1 : 0);
        if (last.raised) log.error({ lag: last.lag, threshold: last.threshold }, 'archive lag alert: the archive is falling behind the stream');
        const purged = await purgeArchived({ nc, names: n, lanes: writer.heldLanes(), hotRetentionMs: config.hotRetentionMs, purgedTo });
        if (purged) {
          metrics.purged.inc(purged);
          log.info({ purged }, 'archived events past the hot window purged from the stream');
        }
        return last;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'archive maintenance failed; retried at the next tick');
        return null;
      } finally {
        maintaining = null;
      }
    })());
  const timer = setInterval(() => void maintain(), config.checkIntervalMs);
  timer.unref();
  void maintain();

  const ops = await startOpsServer({
    port: config.port, host: config.host, registry: metrics.registry,
    readiness: () => {
      const ok = runner.ready && link.connected;
      const degraded = last?.alerting ?? false;
      return { ready: ok, body: { status: !ok ? 'unavailable' : degraded ? 'degraded' : 'ok', archive_lag_events: last?.lag ?? null, archive: store.location, instance: registration.id, lanes: runner.lanes() } };
    },
  });
  const url = ops.url;
  log.info({ url, archive: store.location, instance: registration.id }, 'archiver started');

  let closing: Promise<void> | null = null;
  return {
    url,
    metrics,
    flush: () => writer.flush(),
    maintain,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await maintaining;
        await writer.flush().catch((err: Error) => log.warn({ err: err.message }, 'open segments not published at stop; they are read again at the next start'));
        await runner.stop();
        writer.stop();
        await registration.remove().catch(() => undefined);
        await ops.close();
        await codec.close();
        await nc.close().catch(() => undefined);
        await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
