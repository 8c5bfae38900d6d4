import { jetstreamManager } from '@nats-io/jetstream';
import { type Subscription } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  connectNats,
  CONSUMER_DEFAULTS, ConsumerRunner, NatsLink, InstanceRegistration, digestFromMessageId, createLogger, createPool, decisionsBucket, decodeStreamRecord, ensureDecisionsStream, ensureEventsStream, isKachingError, names as mkNames,
  SCHEMA_FINGERPRINT_HEADER, type AdmissionRequest, type ConfigChange, type ConsumerHandler, type PolicyDecision,
  PriceBook, startOpsServer, untilAvailable, warnOnReplicas,
} from '@kaching/contracts';
import { checkAdmission } from './admission.js';
import { ENFORCER_FILL_MS_DEFAULT, type EnforcerConfig } from './config.js';
import { CHECKPOINT_KEY, LimitsCache, processBatch, reevaluate, type Decoded, type EngineCtx } from './engine.js';

/** Version of the enforcer's usage logic; raising it rebuilds the usage ledger from the stream (decisions keep their ids). */
export const ENFORCER_HANDLER_VERSION = 1;
import { catchUpFromArchive, openHistory } from './history.js';
import { createMetrics, type EnforcerMetrics } from './metrics.js';
import { Notifier } from './notifier.js';
import { OutboxPublisher } from './outbox.js';
import { repriceLedger } from './reprice.js';

export interface EnforcerHandle {
  url: string;
  metrics: EnforcerMetrics;
  /** Resolves when every committed decision so far has been published. */
  flush(): Promise<void>;
  /** Last stream sequence committed. */
  lastSeq(): number;
  /** Called with each decision once published (tests, bench). */
  onPublished(fn: (d: PolicyDecision) => void): void;
  close(): Promise<void>;
}

export async function start(config: EnforcerConfig): Promise<EnforcerHandle> {
  const log = createLogger('enforcer', config.logLevel);
  const n = mkNames(config.namespace);
  const metrics = createMetrics();
  const pool: pg.Pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, applicationName: 'kaching-enforcer' });
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle pg client error'));
  const nc = await connectNats(config.natsUrl, { name: 'kaching-enforcer' }, config.natsSecurity);
  const link = new NatsLink(nc, log);
  const listeners: ((d: PolicyDecision) => void)[] = [];
  let stopped = false;
  let ready = false;
  const replicas = config.streamReplicas ?? CONSUMER_DEFAULTS.streamReplicas;
  // Started while a NATS node restarts or a stream elects its leader (a cluster's normal hiccups): wait, not exit.
  const kv = (await untilAvailable(async () => {
    await ensureEventsStream(nc, n, { replicas });
    await ensureDecisionsStream(nc, n, replicas);
    return decisionsBucket(nc, n, replicas);
  }, { log, what: 'reach the events and decisions streams' }))!;
  warnOnReplicas(nc, replicas, log);
  const prices = new PriceBook();
  const limits = new LimitsCache();
  const ctx: EngineCtx = { pool, names: n, limits, prices, known: new Set() };
  const outbox = new OutboxPublisher(nc, pool, n, kv, (d) => {
    metrics.decisions.inc({ code: d.code, action: d.action, state: d.state });
    for (const l of listeners) l(d);
  });
  const notifier = new Notifier(pool, log, config.notify ?? {});

  // Batches and config re-evaluations run one at a time in this process (the checkpoint row lock does it across processes).
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  // Started into a Postgres (or NATS) restart, e.g. by a supervisor: wait for it rather than exit again.
  await untilAvailable(async () => {
    await prices.load(pool);
    // the durable of versions before the runner reads nothing any more
    await (await jetstreamManager(nc)).consumers.delete(n.eventsStream, n.consumer('enforcer')).catch(() => undefined);
    // decisions committed before a crash but maybe not published
    await outbox.flush();
  }, { log, what: 'load the enforcer state' });
  let batches = 0;
  let lastSeq = 0;

  // A failed flush (NATS or Postgres away) is retried on a timer: waiting for the next batch would leave
  // committed decisions unpublished for as long as the stream stays quiet.
  let flushRetry: NodeJS.Timeout | undefined;
  const flushSoon = () => {
    outbox.flush().catch((err) => {
      log.warn({ err: (err as Error).message }, 'outbox flush failed; retrying');
      if (!stopped && !flushRetry) {
        flushRetry = setTimeout(() => {
          flushRetry = undefined;
          if (!stopped) flushSoon();
        }, 1000);
      }
    });
    notifier.nudge();
  };

  const decode = (seq: number, data: Uint8Array, fingerprint: string | undefined, msgId: string | undefined): Decoded => {
    try {
      const record = decodeStreamRecord(data, fingerprint);
      const dg = record.kind === 'usage' ? digestFromMessageId(record.usage, msgId) : undefined;
      return { seq, record, ...(dg ? { digest: dg } : {}) };
    } catch (err) {
      log.error({ seq, err: (err as Error).message }, 'undecodable stream message skipped');
      return { seq, record: { kind: 'job_status' } as never };
    }
  };
  /** Thrown after the simulated crash: the runner stops the lane without anything more. */
  class SimulatedCrash extends Error {}
  const handler: ConsumerHandler = {
    name: CHECKPOINT_KEY,
    version: ENFORCER_HANDLER_VERSION,
    async apply(batch) {
      if (stopped) throw new SimulatedCrash('stopped');
      const decoded = batch.messages.map((m) => decode(m.info.streamSequence, m.data, m.headers?.get(SCHEMA_FINGERPRINT_HEADER) || undefined, m.headers?.get('Nats-Msg-Id')));
      const t0 = process.hrtime.bigint();
      const out = await serial(() => processBatch(ctx, decoded, batch.lease));
      metrics.evaluation.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      metrics.applied.inc(out.applied);
      lastSeq = Math.max(lastSeq, out.lastSeq);
      metrics.lastSeq.set(lastSeq);
      metrics.lag.set(batch.pending);
      batches++;
      if (config.crashAfterBatches !== undefined && batches >= config.crashAfterBatches) {
        // simulated crash: committed, never published
        stopped = true;
        void runner.stop();
        return out.lastSeq;
      }
      // committed: publish the decisions at once (latency)
      flushSoon();
      return out.lastSeq;
    },
    // a lane whose checkpoint is older than the stream (after `kaching replay enforcer`) first applies its archived history
    async position(lane, lease) {
      const r = await pool.query<{ last_seq: string }>('select last_seq from consumer_checkpoint where consumer = $1 and lane = $2', [CHECKPOINT_KEY, lane.id]);
      const checkpoint = Number(r.rows[0]?.last_seq ?? 0);
      const first = Number((await (await jetstreamManager(nc)).streams.info(n.eventsStream)).state.first_seq);
      if (checkpoint >= first - 1) return checkpoint;
      // a fresh manifest snapshot each time: the archive grows while the enforcer runs
      const history = openHistory(config.namespace, config.archiveDir);
      try {
        return await catchUpFromArchive({
          names: n, history, lane, checkpoint, streamFirstSeq: first, batchSize: config.batchSize, log,
          apply: async (msgs) => {
            const out = await serial(() => processBatch(ctx, msgs.map((m) => decode(m.seq, m.data, m.fingerprint, m.msgId)), lease));
            metrics.applied.inc(out.applied);
            flushSoon();
            return out.lastSeq;
          },
        });
      } finally {
        await history.close().catch(() => undefined);
      }
    },
    async rebuild(client) {
      await client.query('truncate enforcer_usage_daily, enforcer_contribution, enforcer_deployment_state');
    },
  };
  const leaseMs = config.leaseMs ?? CONSUMER_DEFAULTS.leaseMs;
  const registration = new InstanceRegistration(pool, { role: 'enforcer', consumers: [CHECKPOINT_KEY], ttlMs: leaseMs });
  const runner = new ConsumerRunner({
    nc, pool, names: n, handler, registration, log,
    initialPartitions: config.partitions ?? CONSUMER_DEFAULTS.partitions,
    batchSize: config.batchSize,
    leaseMs,
    lingerMs: 2,
    fillMs: config.fillMs ?? ENFORCER_FILL_MS_DEFAULT,
    onError: () => metrics.failures.inc(),
  });
  await runner.start();
  ready = true;

  const subs: Subscription[] = [];
  subs.push(
    nc.subscribe(n.configWildcard, {
      callback: (err, msg) => {
        if (err) return;
        let change: ConfigChange;
        try {
          change = msg.json<ConfigChange>();
        } catch {
          return;
        }
        void serial(async () => {
          if (change.kind === 'price') {
            await prices.load(pool);
            await repriceLedger(ctx, log);
          }
          limits.drop(change.deployment_id);
          await reevaluate(ctx, change.deployment_id);
          metrics.configChanges.inc({ kind: change.kind });
        })
          .then(flushSoon)
          .catch((e) => log.error({ err: (e as Error).message, deployment: change.deployment_id }, 'config re-evaluation failed'));
      },
    }),
  );
  subs.push(
    nc.subscribe(n.checkWildcard, {
      queue: `${n.namespace}_enforcer_check`,
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          try {
            const req = msg.json<AdmissionRequest>();
            const deployment = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
            const res = await checkAdmission(pool, { ...req, deployment_id: req.deployment_id ?? deployment });
            metrics.admissions.inc({ outcome: res.allow ? 'allow' : 'deny' });
            msg.respond(JSON.stringify(res));
          } catch (e) {
            metrics.admissions.inc({ outcome: 'error' });
            const body = isKachingError(e) ? e.toBody() : { error: { code: 'INTERNAL', message: 'admission check failed' } };
            if (!isKachingError(e)) log.error({ err: (e as Error).message }, 'admission check failed');
            msg.respond(JSON.stringify(body));
          }
        })();
      },
    }),
  );
  notifier.start();
  // A price book change (a sync, a price, an alias) re-prices the ledger; batches load the new book on their
  // own (PriceBook.lockForBatch). A no-op while the book is unchanged.
  const priceTimer = setInterval(() => {
    void serial(() => repriceLedger(ctx, log))
      .then((r) => r?.decisions.length && flushSoon())
      .catch((err) => log.warn({ err: (err as Error).message }, 're-pricing the ledger failed; retried at the next tick'));
  }, config.repriceIntervalMs ?? 2000);
  priceTimer.unref();

  const ops = await startOpsServer({
    port: config.port, host: config.host, registry: metrics.registry,
    readiness: () => ({
      ready: ready && !stopped && link.connected,
      body: { nats: link.connected, last_seq: lastSeq, instance: registration.id, lanes: runner.lanes() },
    }),
  });
  const url = ops.url;
  log.info({ url, namespace: n.namespace, instance: registration.id, lanes: runner.assigned }, 'enforcer started');

  let closing: Promise<void> | null = null;
  return {
    url,
    metrics,
    async flush() {
      await chain;
      await outbox.flush();
    },
    lastSeq: () => lastSeq,
    onPublished(fn) {
      listeners.push(fn);
    },
    close() {
      closing ??= (async () => {
        const crashed = stopped;
        stopped = true;
        await runner.stop();
        await chain;
        if (!crashed) await registration.remove().catch(() => undefined);
        clearInterval(priceTimer);
        clearTimeout(flushRetry);
        for (const s of subs) s.unsubscribe();
        await notifier.stop();
        if (!crashed) await outbox.flush().catch(() => undefined);
        await ops.close();
        await nc.close().catch(() => undefined);
        await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
