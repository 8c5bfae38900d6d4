import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  decodeStreamRecord,
  revisionKey,
  SCHEMA_FINGERPRINT_HEADER,
  type Logger,
  type Names,
  type ProjectionName,
} from '@kaching/contracts';
import type { Decoded } from './records.js';
import { applyBatch, lockCheckpoint, writeCheckpoint } from './db/batch.js';
import { PartitionCache, utcDay } from './db/partitions.js';
import { LIVE, type Tables } from './db/tables.js';
import type { ProjectorMetrics } from './metrics.js';

/** Decodes one stream message; null when it cannot be decoded (it is skipped, counted and logged). */
export function decodeMessage(data: Uint8Array, fingerprint: string | undefined, seq: number, log?: Logger): Decoded | null {
  try {
    const record = decodeStreamRecord(data, fingerprint);
    return { seq, record, revision: record.kind === 'usage' ? revisionKey(record.usage) : null };
  } catch (err) {
    log?.error({ seq, err: (err as Error).message }, 'undecodable stream message skipped');
    return null;
  }
}

export function decodeJsMsg(m: JsMsg, log?: Logger): Decoded | null {
  return decodeMessage(m.data, m.headers?.get(SCHEMA_FINGERPRINT_HEADER) || undefined, m.info.streamSequence, log);
}

export interface BatchOutcome {
  applied: number;
  skipped: number;
  lastSeq: number;
}

/**
 * One batch, emmett-style: lock + read the checkpoint, drop what it already covers, apply the rest and
 * advance the checkpoint in ONE transaction. The caller acks only after this resolves.
 */
export async function processBatch(
  pool: pg.Pool,
  projection: ProjectionName,
  decoded: (Decoded | null)[],
  seqs: number[],
  opts: { tables?: Tables; checkpointKey?: string; partitions?: PartitionCache } = {},
): Promise<BatchOutcome & { fresh: Decoded[] }> {
  const tables = opts.tables ?? LIVE;
  const key = opts.checkpointKey ?? projection;
  const maxSeq = Math.max(...seqs);
  if (projection === 'raw' && opts.partitions) {
    // Partitions are created outside the batch transaction so the DDL lock is held only briefly.
    const days = decoded.flatMap((d) => (d && d.record.kind === 'usage' ? [utcDay(d.record.usage.job.started_at)] : []));
    await opts.partitions.ensure(pool, days);
  }
  const client = await pool.connect();
  try {
    await client.query('begin');
    const cp = await lockCheckpoint(client, key);
    const fresh = decoded.filter((d): d is Decoded => d !== null && d.seq > cp);
    await applyBatch(client, projection, fresh, tables);
    if (maxSeq > cp) await writeCheckpoint(client, key, maxSeq);
    await client.query('commit');
    return { applied: fresh.length, skipped: decoded.filter((d) => d && d.seq <= cp).length, lastSeq: Math.max(cp, maxSeq), fresh };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function ensureDurable(jsm: JetStreamManager, n: Names, projection: ProjectionName, batchSize: number): Promise<void> {
  const durable = n.consumer(projection);
  try {
    await jsm.consumers.info(n.eventsStream, durable);
    return;
  } catch {
    // not there yet
  }
  await jsm.consumers
    .add(n.eventsStream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000,
      max_ack_pending: Math.max(10_000, batchSize * 4),
    })
    .catch(async (e) => {
      await jsm.consumers.info(n.eventsStream, durable).catch(() => {
        throw e;
      });
    });
}

/** The live loop of one projection: fetch a batch, process, ack; on failure nak and back off. */
export class ProjectionRunner {
  private stopped = false;
  private loop: Promise<void> | null = null;
  private js: JetStreamClient;
  ready = false;
  lastSeq = 0;
  private readonly partitions = new PartitionCache('usage_sample');

  constructor(
    private readonly nc: NatsConnection,
    private readonly pool: pg.Pool,
    private readonly n: Names,
    readonly projection: ProjectionName,
    private readonly batchSize: number,
    private readonly metrics: ProjectorMetrics,
    private readonly log: Logger,
  ) {
    this.js = jetstream(nc);
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await ensureDurable(jsm, this.n, this.projection, this.batchSize);
    const r = await this.pool.query<{ last_seq: string }>('select last_seq from projection_checkpoint where projection = $1', [this.projection]);
    this.lastSeq = Number(r.rows[0]?.last_seq ?? 0);
    this.metrics.lastSeq.set({ projection: this.projection }, this.lastSeq);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const consumer = await this.js.consumers.get(this.n.eventsStream, this.n.consumer(this.projection));
    this.ready = true;
    let backoff = 200;
    const label = { projection: this.projection };
    while (!this.stopped) {
      let msgs: JsMsg[] = [];
      try {
        const iter = await consumer.fetch({ max_messages: this.batchSize, expires: 1000 });
        for await (const m of iter) msgs.push(m);
      } catch (err) {
        if (this.stopped) break;
        this.log.warn({ err: (err as Error).message }, 'fetch failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      if (msgs.length === 0) continue;
      const t0 = process.hrtime.bigint();
      try {
        const decoded = msgs.map((m) => decodeJsMsg(m, this.log));
        const poison = decoded.filter((d) => d === null).length;
        if (poison) this.metrics.poison.inc(label, poison);
        const out = await processBatch(this.pool, this.projection, decoded, msgs.map((m) => m.info.streamSequence), {
          partitions: this.partitions,
        });
        for (const m of msgs) m.ack();
        const now = Date.now();
        for (const d of out.fresh) this.metrics.latency.observe(label, Math.max(0, now - Date.parse(d.record.ingest.received_at)) / 1000);
        this.metrics.applied.inc(label, out.applied);
        if (out.skipped) this.metrics.skipped.inc(label, out.skipped);
        this.lastSeq = out.lastSeq;
        this.metrics.lastSeq.set(label, out.lastSeq);
        this.metrics.pending.set(label, msgs[msgs.length - 1]!.info.pending);
        this.metrics.batchSeconds.observe(label, Number(process.hrtime.bigint() - t0) / 1e9);
        backoff = 200;
      } catch (err) {
        this.metrics.failures.inc(label);
        this.log.error({ err: (err as Error).message, projection: this.projection }, 'batch failed; will be redelivered');
        for (const m of msgs) m.nak(backoff);
        this.partitions.forget();
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop?.catch(() => undefined);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
