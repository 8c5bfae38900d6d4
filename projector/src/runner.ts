import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  ConsumerRunner,
  inLaneTransaction,
  lockPartitions,
  type ConsumerHandler,
  type InstanceRegistration,
  type LaneBatch,
  type Logger,
  type Names,
  type PriceBook,
  type ProjectionName,
} from '@kaching/contracts';
import { applyBatch } from './db/batch.js';
import { attributionMonths, HourlyPartitionCache, PartitionCache, utcDay } from './db/partitions.js';
import { LIVE, OWNED } from './db/tables.js';
import type { ProjectorMetrics } from './metrics.js';
import { decodeJsMsg } from './processor.js';
import { priceDecoded, type Decoded } from './records.js';
import { q } from './projections/common.js';

/**
 * Version of the projections' logic. Raising it makes the first instance that runs the new code rebuild
 * every projection from the stream (contracts/README.md, "handler version").
 */
export const PROJECTION_HANDLER_VERSION = 1;

/** One projection as a consumer of the runner: each batch applied with its lane checkpoint and fence in one transaction. */
export function projectionHandler(
  pool: pg.Pool,
  projection: ProjectionName,
  metrics: ProjectorMetrics,
  log: Logger,
  book: PriceBook,
  version = PROJECTION_HANDLER_VERSION,
  billing = false,
): ConsumerHandler {
  const partitions = new PartitionCache('usage_sample');
  const hourly = new HourlyPartitionCache(LIVE.hourly);
  const label = { projection };
  return {
    name: projection,
    version,
    async apply(batch: LaneBatch): Promise<number> {
      const decoded = batch.messages.map((m) => decodeJsMsg(m, log));
      const poison = decoded.filter((d) => d === null).length;
      if (poison) metrics.poison.inc(label, poison);
      const present = decoded.filter((d) => d !== null);
      if (projection === 'raw') {
        // Partitions are created outside the batch transaction so the DDL lock is held only briefly.
        const days = present.flatMap((d) => (d.record.kind === 'usage' ? [utcDay(d.record.usage.job.started_at)] : []));
        await partitions.ensure(pool, days).catch((err) => {
          partitions.forget();
          throw err;
        });
      }
      if (projection === 'rollups') {
        // the months of the hourly buckets this batch writes, outside the transaction like the raw days
        await hourly.ensure(pool, attributionMonths(present)).catch((err) => {
          hourly.forget();
          throw err;
        });
      }
      const maxSeq = batch.messages[batch.messages.length - 1]!.info.streamSequence;
      const out = await inLaneTransaction(pool, batch.lease, async (client, checkpoint) => {
        // a lane's messages come in stream order: what the checkpoint covers was applied before (redelivery, takeover)
        const fresh = present.filter((d) => d.seq > checkpoint);
        await lockPartitions(client, projection, fresh.map((d) => deploymentOf(d)), batch.counts);
        if (projection !== 'concurrency') {
          // priced with the book as of this transaction (a price writer waits for it), see PriceBook.lockForBatch
          await book.lockForBatch(client);
          priceDecoded(fresh, book);
        }
        await applyBatch(client, projection, fresh, LIVE, { billing });
        return { lastSeq: maxSeq, result: fresh };
      });
      const now = Date.now();
      for (const d of out.result) metrics.latency.observe(label, Math.max(0, now - Date.parse(d.record.ingest.received_at)) / 1000);
      metrics.applied.inc(label, out.result.length);
      const skipped = present.length - out.result.length;
      if (skipped) metrics.skipped.inc(label, skipped);
      return out.lastSeq;
    },
    async rebuild(client: pg.PoolClient): Promise<void> {
      await client.query(`truncate ${OWNED[projection].map((k) => q(LIVE[k] as string)).join(', ')}`);
    },
  };
}

const deploymentOf = (d: Decoded): string => (d.record.kind === 'usage' ? d.record.usage.deployment_id : d.record.job_status.deployment_id);

/** The live loop of one projection in this process: a ConsumerRunner over the projection's handler. */
export class ProjectionRunner {
  readonly runner: ConsumerRunner;

  constructor(
    nc: NatsConnection,
    pool: pg.Pool,
    n: Names,
    readonly projection: ProjectionName,
    o: { batchSize: number; fillMs?: number; leaseMs: number; partitions: number; registration: InstanceRegistration; metrics: ProjectorMetrics; log: Logger; book: PriceBook; version?: number; billing?: boolean },
  ) {
    const label = { projection };
    this.runner = new ConsumerRunner({
      nc,
      pool,
      names: n,
      handler: projectionHandler(pool, projection, o.metrics, o.log, o.book, o.version, o.billing),
      registration: o.registration,
      log: o.log,
      initialPartitions: o.partitions,
      batchSize: o.batchSize,
      fillMs: o.fillMs ?? 0,
      leaseMs: o.leaseMs,
      onBatch: (e) => {
        o.metrics.lastSeq.set(label, e.lastSeq);
        o.metrics.batchSeconds.observe(label, e.seconds);
        o.metrics.pending.set(label, e.pending);
      },
      onError: () => o.metrics.failures.inc(label),
    });
  }

  get ready(): boolean {
    return this.runner.ready;
  }

  get lastSeq(): number {
    return this.runner.lastSeq;
  }

  start(): Promise<void> {
    return this.runner.start();
  }

  stop(): Promise<void> {
    return this.runner.stop();
  }
}
