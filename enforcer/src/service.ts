import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  contiguousLimit, digestFromMessageId, streamSeqExists, createLogger, createPool, decisionsBucket, decodeStreamRecord, ensureDecisionsStream, ensureEventsStream, isKachingError, names as mkNames,
  SCHEMA_FINGERPRINT_HEADER, type AdmissionRequest, type ConfigChange, type Names, type PolicyDecision,
  untilAvailable,
} from '@kaching/contracts';
import { checkAdmission } from './admission.js';
import type { EnforcerConfig } from './config.js';
import { CHECKPOINT_KEY, LimitsCache, processBatch, reevaluate, type Decoded, type EngineCtx } from './engine.js';
import { createMetrics, type EnforcerMetrics } from './metrics.js';
import { Notifier } from './notifier.js';
import { OutboxPublisher } from './outbox.js';
import { PriceBook } from './pricing.js';

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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Recreated at start from checkpoint+1: no unacked leftovers arrive out of order after a crash. */
async function resetDurable(nc: NatsConnection, n: Names, fromSeq: number, batch: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const durable = n.consumer('enforcer');
  await jsm.consumers.delete(n.eventsStream, durable).catch(() => undefined);
  await jsm.consumers.add(n.eventsStream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
    ack_wait: 120_000 * 1_000_000,
    max_ack_pending: Math.max(10_000, batch * 4),
  });
}

export async function start(config: EnforcerConfig): Promise<EnforcerHandle> {
  const log = createLogger('enforcer', config.logLevel);
  const n = mkNames(config.namespace);
  const metrics = createMetrics();
  const pool: pg.Pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, applicationName: 'kaching-enforcer' });
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle pg client error'));
  const nc = await connect({ servers: config.natsUrl, name: 'kaching-enforcer' });
  const listeners: ((d: PolicyDecision) => void)[] = [];
  let stopped = false;
  let ready = false;
  try {
    await ensureEventsStream(nc, n);
    await ensureDecisionsStream(nc, n);
  } catch (err) {
    await nc.close();
    await pool.end();
    throw err;
  }
  const kv = await decisionsBucket(nc, n);
  const prices = new PriceBook();
  const limits = new LimitsCache();
  const ctx: EngineCtx = { pool, names: n, limits, prices, known: new Set() };
  const outbox = new OutboxPublisher(nc, pool, n, kv, (d) => {
    metrics.decisions.inc({ code: d.code, action: d.action, state: d.state });
    for (const l of listeners) l(d);
  });
  const notifier = new Notifier(pool, log);

  // Batches and config re-evaluations run one at a time in this process (the checkpoint row lock does it across processes).
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  // Started into a Postgres (or NATS) restart, e.g. by a supervisor: wait for it rather than exit again.
  let lastSeq = 0;
  await untilAvailable(async () => {
    await prices.load(pool);
    const cp = await pool.query('select last_seq from projection_checkpoint where projection = $1', [CHECKPOINT_KEY]);
    lastSeq = Number(cp.rows[0]?.last_seq ?? 0);
    await resetDurable(nc, n, lastSeq + 1, config.batchSize);
    // decisions committed before a crash but maybe not published
    await outbox.flush();
  }, { log, what: 'load the enforcer state' });
  const js = jetstream(nc);
  const seqExists = streamSeqExists(await jetstreamManager(nc), n.eventsStream);
  let batches = 0;

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

  // consume() keeps a buffer filled; batches are whatever is buffered (up to batchSize), so a quiet
  // stream is processed at once instead of waiting for a full pull batch
  const subscribe = async () => {
    const consumer = await js.consumers.get(n.eventsStream, n.consumer('enforcer'));
    // Without abort_on_missing_resource, consume() retries for ever once its consumer is gone (deleted by
    // an operator, lost with a server's state) and the enforcer would silently stop reading.
    const m = await consumer.consume({ max_messages: config.batchSize * 2, abort_on_missing_resource: true });
    return { messages: m, it: m[Symbol.asyncIterator]() };
  };
  let { messages, it } = await subscribe();
  let pendingNext: Promise<IteratorResult<JsMsg>> | null = null;
  // The subscription ended without close() asking for it (nats.js ends it when, e.g., the consumer is gone).
  let ended = false;
  // A message the server handed out but this process never received (NATS killed mid-delivery) comes
  // back only after ack_wait, behind later ones. The checkpoint must not pass it: apply the gap-free
  // part, then read again from checkpoint+1 on a recreated consumer (as at start).
  const rewind = async () => {
    messages.stop();
    pendingNext = null;
    await resetDurable(nc, n, lastSeq + 1, config.batchSize);
    ({ messages, it } = await subscribe());
    metrics.rewinds.inc();
  };
  const nextBatch = async (): Promise<JsMsg[]> => {
    const out: JsMsg[] = [];
    while (out.length < config.batchSize && !stopped) {
      pendingNext ??= it.next();
      let r: IteratorResult<JsMsg> | null;
      try {
        r = await Promise.race([pendingNext, sleep(out.length ? 2 : 250).then(() => null)]);
      } catch (err) {
        // the subscription gave up (its consumer is gone): read on from the checkpoint
        if (!stopped) log.warn({ err: (err as Error).message }, 'the subscription failed');
        pendingNext = null;
        ended = !stopped;
        break;
      }
      if (r === null) {
        if (out.length) break;
        continue;
      }
      pendingNext = null;
      if (r.done) {
        ended = !stopped;
        break;
      }
      out.push(r.value);
    }
    return out;
  };

  // After a gap or an ended subscription: retry until a new subscription reads from the checkpoint.
  const rereadFromCheckpoint = async () => {
    while (!stopped) {
      try {
        await rewind();
        ended = false;
        return;
      } catch (err) {
        log.error({ err: (err as Error).message }, 'could not recreate the consumer; retrying');
        await sleep(1000);
      }
    }
  };

  const loop = (async () => {
    ready = true;
    let backoff = 100;
    while (!stopped) {
      const delivered = await nextBatch();
      if (ended && !delivered.length) {
        log.warn({ checkpoint: lastSeq }, 'the subscription ended; re-reading from the checkpoint');
        await rereadFromCheckpoint();
        continue;
      }
      if (!delivered.length) continue;
      let limit: number;
      try {
        limit = await contiguousLimit(lastSeq, delivered.map((m) => m.info.streamSequence), seqExists);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not check the batch for gaps; retrying');
        for (const m of delivered) m.nak(backoff);
        await sleep(backoff);
        continue;
      }
      const msgs = delivered.filter((m) => m.info.streamSequence <= limit);
      const gap = msgs.length < delivered.length;
      if (gap) log.warn({ checkpoint: lastSeq, applied_up_to: limit, first_missing: limit + 1 }, 'an earlier message is missing from the delivery; re-reading from the checkpoint');
      const decoded: Decoded[] = [];
      for (const m of msgs) {
        try {
          const record = decodeStreamRecord(m.data, m.headers?.get(SCHEMA_FINGERPRINT_HEADER) || undefined);
          const dg = record.kind === 'usage' ? digestFromMessageId(record.usage, m.headers?.get('Nats-Msg-Id')) : undefined;
          decoded.push({ seq: m.info.streamSequence, record, ...(dg ? { digest: dg } : {}) });
        } catch (err) {
          log.error({ seq: m.info.streamSequence, err: (err as Error).message }, 'undecodable stream message skipped');
          decoded.push({ seq: m.info.streamSequence, record: { kind: 'job_status' } as never });
        }
      }
      // retry the same batch until it commits: fetching past it would let the checkpoint skip it
      while (decoded.length) {
        if (stopped) return;
        const t0 = process.hrtime.bigint();
        try {
          const out = await serial(() => processBatch(ctx, decoded));
          metrics.evaluation.observe(Number(process.hrtime.bigint() - t0) / 1e9);
          metrics.applied.inc(out.applied);
          lastSeq = out.lastSeq;
          metrics.lastSeq.set(lastSeq);
          backoff = 100;
          break;
        } catch (err) {
          metrics.failures.inc();
          log.error({ err: (err as Error).message }, 'batch failed; retrying');
          for (const m of msgs) m.working();
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
        }
      }
      batches++;
      if (config.crashAfterBatches !== undefined && batches >= config.crashAfterBatches) {
        // simulated crash: committed, never acked, never published
        stopped = true;
        messages.stop();
        return;
      }
      // committed: publish the decisions first (latency), then ack (a crash in between only re-skips by checkpoint)
      if (msgs.length) flushSoon();
      for (const m of msgs) m.ack();
      metrics.lag.set(delivered[delivered.length - 1]!.info.pending);
      // the old subscription is stopped (or ended) by then: a new one reads from the checkpoint
      if (ended) log.warn({ checkpoint: lastSeq }, 'the subscription ended; re-reading from the checkpoint');
      if (gap || ended) await rereadFromCheckpoint();
    }
  })();

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
          if (change.kind === 'price') await prices.load(pool);
          limits.drop(change.deployment_id);
          await reevaluate(ctx, change.deployment_id);
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
  // prices change rarely and announce themselves; the periodic reload covers a missed announcement
  const priceTimer = setInterval(() => void prices.load(pool).catch(() => undefined), 60_000);
  priceTimer.unref();

  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.setHeader('content-type', metrics.registry.contentType);
        res.end(await metrics.registry.metrics());
      } else if (req.url === '/healthz') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      } else if (req.url === '/readyz') {
        const ok = ready && !stopped && !nc.isClosed();
        res.statusCode = ok ? 200 : 503;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ready: ok, last_seq: lastSeq }));
      } else {
        res.statusCode = 404;
        res.end();
      }
    })().catch(() => {
      res.statusCode = 500;
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${addr.port}`;
  log.info({ url, namespace: n.namespace, from_seq: lastSeq + 1 }, 'enforcer started');

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
        messages.stop();
        await loop.catch(() => undefined);
        await chain;
        clearInterval(priceTimer);
        clearTimeout(flushRetry);
        for (const s of subs) s.unsubscribe();
        await notifier.stop();
        if (!crashed) await outbox.flush().catch(() => undefined);
        await new Promise<void>((r) => server.close(() => r()));
        await nc.close().catch(() => undefined);
        await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
