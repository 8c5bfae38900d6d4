import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import {
  contiguousLimit,
  decodeStreamRecord,
  digestFromMessageId,
  streamSeqExists,
  type SeqExists,
  revisionKey,
  untilAvailable,
  SCHEMA_FINGERPRINT_HEADER,
  type Logger,
  type Names,
  type ProjectionName,
} from '@kaching/contracts';
import { stagedRows, type Decoded } from './records.js';
import { applyBatch, applyStaged, copyToStaging, lockCheckpoint, writeCheckpoint } from './db/batch.js';
import { PartitionCache, utcDay } from './db/partitions.js';
import { LIVE, type Tables } from './db/tables.js';
import type { ProjectorMetrics } from './metrics.js';

/** Decodes one stream message; null when it cannot be decoded (it is skipped, counted and logged). */
export function decodeMessage(
  data: Uint8Array,
  fingerprint: string | undefined,
  seq: number,
  log?: Logger,
  msgId?: string,
): Decoded | null {
  try {
    // keepNulls: every read below and in records.ts goes through `??` / `?.`.
    let record = decodeStreamRecord(data, fingerprint, { keepNulls: true });
    if (record.kind !== 'usage') return { seq, record, revision: null };
    const digest = digestFromMessageId(record.usage, msgId);
    // No usable digest in the message id: it must be computed over the event exactly as signed (no nulls).
    if (digest === undefined) record = decodeStreamRecord(data, fingerprint);
    return { seq, record, revision: revisionKey((record as Extract<typeof record, { kind: 'usage' }>).usage, digest) };
  } catch (err) {
    log?.error({ seq, err: (err as Error).message }, 'undecodable stream message skipped');
    return null;
  }
}

export function decodeJsMsg(m: JsMsg, log?: Logger): Decoded | null {
  const h = m.headers;
  return decodeMessage(m.data, h?.get(SCHEMA_FINGERPRINT_HEADER) || undefined, m.info.streamSequence, log, h?.get('Nats-Msg-Id'));
}

/**
 * A connection reset (Postgres restart) makes a checked-out client emit 'error'; without a listener that
 * kills the process. Errors still reach the running query, which rolls the batch back for a retry.
 */
export function hardenPool(pool: pg.Pool, onError: (err: Error) => void = () => undefined): pg.Pool {
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

/** Answers whether a stream sequence still exists (deleted or expired ones may be skipped). */

export interface BatchOutcome {
  applied: number;
  skipped: number;
  lastSeq: number;
}

/**
 * Lets a batch COPY into its own session's staging table while the previous batch still merges
 * (replay runs two at a time): it takes the checkpoint lock only once `after` resolves with the previous
 * batch's last sequence, i.e. once that batch holds the lock, and calls `locked` once it holds it itself.
 */
export interface Pipelined {
  after: Promise<number>;
  locked(lastSeq: number): void;
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
  opts: { tables?: Tables; checkpointKey?: string; partitions?: PartitionCache; seqExists?: SeqExists; pipelined?: Pipelined } = {},
): Promise<BatchOutcome & { fresh: Decoded[]; deferred: number[] }> {
  const tables = opts.tables ?? LIVE;
  const key = opts.checkpointKey ?? projection;
  const maxSeq = Math.max(...seqs);
  const present = decoded.filter((d): d is Decoded => d !== null);
  if (projection === 'raw' && opts.partitions) {
    // Partitions are created outside the batch transaction so the DDL lock is held only briefly.
    const days = present.flatMap((d) => (d.record.kind === 'usage' ? [utcDay(d.record.usage.job.started_at)] : []));
    await opts.partitions.ensure(pool, days);
  }
  const client = await pool.connect();
  try {
    await client.query('begin');
    // A shadow table is thrown away when its replay fails, so its commits need not wait for the WAL flush.
    if (tables.shadow) await client.query('set local synchronous_commit = off');
    if (opts.pipelined) {
      await copyToStaging(client, stagedRows(present));
      const previous = await opts.pipelined.after;
      const cp = await lockCheckpoint(client, key);
      // The previous batch rolled back: applying this one would advance the checkpoint over its messages.
      if (cp < previous) throw new Error(`${key}: the previous batch (up to seq ${previous}) did not commit`);
      opts.pipelined.locked(maxSeq);
      const fresh = present.filter((d) => d.seq > cp);
      // Staged rows the checkpoint covers are dropped; a winner dropped that way was applied, so the
      // revisions it beat change nothing either.
      if (fresh.length < present.length) await client.query('delete from stg_events where seq <= $1', [cp]);
      if (fresh.length) await applyStaged(client, projection, tables, fresh);
      if (maxSeq > cp) await writeCheckpoint(client, key, maxSeq);
      await client.query('commit');
      return { applied: fresh.length, skipped: present.length - fresh.length, lastSeq: Math.max(cp, maxSeq), fresh, deferred: [] };
    }
    const cp = await lockCheckpoint(client, key);
    // The checkpoint says "everything up to here is applied", so only the part of the batch that covers
    // cp+1.. without holes is applied: after a crash, redeliveries arrive after later messages. A hole of
    // deleted/expired messages is no hole. The rest is deferred (nak'ed) until the earlier ones are in.
    const limit = opts.seqExists ? await contiguousLimit(cp, seqs, opts.seqExists) : Math.max(cp, maxSeq);
    const fresh = present.filter((d) => d.seq > cp && d.seq <= limit);
    await applyBatch(client, projection, fresh, tables);
    if (limit > cp) await writeCheckpoint(client, key, limit);
    await client.query('commit');
    return {
      applied: fresh.length,
      skipped: present.filter((d) => d.seq <= cp).length,
      lastSeq: Math.max(cp, limit),
      fresh,
      deferred: seqs.filter((x) => x > Math.max(cp, limit)),
    };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Creates the projection's durable consumer unless it exists; a (re-)created one starts after `checkpoint`.
 * Ack policy "all": a batch is applied in sequence order and committed with its checkpoint, so one ack
 * of its last message covers the batch — one ack per batch instead of per message, on the server
 * and in this process. A durable made by an older version (explicit acks) is replaced from the checkpoint.
 */
export async function ensureDurable(jsm: JetStreamManager, n: Names, projection: ProjectionName, batchSize: number, ackWaitMs = 30_000, checkpoint = 0): Promise<void> {
  const durable = n.consumer(projection);
  const existing = await jsm.consumers.info(n.eventsStream, durable).catch(() => null);
  if (existing?.config.ack_policy === AckPolicy.All) return;
  if (existing) await jsm.consumers.delete(n.eventsStream, durable).catch(() => undefined);
  await jsm.consumers
    .add(n.eventsStream, {
      durable_name: durable,
      ack_policy: AckPolicy.All,
      ...(checkpoint > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 } : { deliver_policy: DeliverPolicy.All }),
      ack_wait: ackWaitMs * 1_000_000,
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
    private readonly ackWaitMs = 30_000,
  ) {
    this.js = jetstream(nc);
  }

  private seqExists: SeqExists = async () => true;

  /**
   * Reads the checkpoint, makes sure the durable exists, and starts the loop. Postgres or NATS restarting at
   * this moment (a supervisor restarts the projector into an outage) delays the start instead of failing it.
   */
  async start(): Promise<void> {
    const started = await untilAvailable(async () => {
      const jsm = await jetstreamManager(this.nc);
      const r = await this.pool.query<{ last_seq: string }>('select last_seq from projection_checkpoint where projection = $1', [this.projection]);
      this.lastSeq = Number(r.rows[0]?.last_seq ?? 0);
      await ensureDurable(jsm, this.n, this.projection, this.batchSize, this.ackWaitMs, this.lastSeq);
      this.seqExists = streamSeqExists(jsm, this.n.eventsStream);
      return true;
    }, { log: this.log, what: 'start the projection', stopped: () => this.stopped });
    if (!started) return;
    this.metrics.lastSeq.set({ projection: this.projection }, this.lastSeq);
    this.loop = this.run();
  }

  private iter: ConsumerMessages | null = null;

  /**
   * consume() keeps a window of messages flowing while a batch commits. A pump moves delivered
   * messages into a queue; the loop applies everything queued (up to batchSize) as soon as the
   * previous batch committed. So a trickle is applied at once, and the messages that arrive while a
   * batch commits form the next batch instead of one batch each (a commit costs tens of ms).
   * A backlog still gives full batches: while the server reports more pending, the loop waits for them.
   */
  private async run(): Promise<void> {
    let consumer = await this.js.consumers.get(this.n.eventsStream, this.n.consumer(this.projection));
    this.ready = true;
    while (!this.stopped) {
      try {
        // short expiry: after a NATS restart the pull is re-issued within seconds (missed heartbeats).
        // abort_on_missing_resource: a consumer that is gone (deleted, lost with a server's state) ends the
        // subscription instead of being retried for ever; it is re-created below from the checkpoint.
        const iter = await consumer.consume({ max_messages: this.batchSize * 2, expires: 5000, abort_on_missing_resource: true });
        this.iter = iter;
        if (this.stopped) iter.stop();
        const queue: JsMsg[] = [];
        let ended = false;
        let failure: unknown = null;
        let wake: (() => void) | null = null;
        const signal = () => {
          const w = wake;
          wake = null;
          w?.();
        };
        const pump = (async () => {
          try {
            for await (const m of iter) {
              queue.push(m);
              if (queue.length >= this.batchSize || m.info.pending === 0) signal();
            }
          } catch (err) {
            failure = err;
          } finally {
            ended = true;
            signal();
          }
        })();
        while (!this.stopped) {
          const last = queue[queue.length - 1];
          const due = queue.length >= this.batchSize || (last !== undefined && (last.info.pending === 0 || ended));
          if (!due) {
            if (ended) break;
            // A partial batch waits for the pending rest at most BATCH_LINGER_MS (never for ever:
            // the server stops delivering at max_ack_pending).
            let lingered = false;
            const timer = queue.length ? setTimeout(() => ((lingered = true), signal()), BATCH_LINGER_MS) : undefined;
            await new Promise<void>((r) => (wake = r));
            clearTimeout(timer);
            if (lingered && !this.stopped) await this.handle(queue.splice(0, this.batchSize));
            continue;
          }
          await this.handle(queue.splice(0, this.batchSize));
        }
        // unprocessed queued messages are simply redelivered later
        iter.stop();
        await pump;
        await iter.close().catch(() => undefined);
        if (failure && !this.stopped) throw failure;
      } catch (err) {
        if (this.stopped) break;
        this.log.warn({ err: (err as Error).message }, 'consume failed; retrying');
        await sleep(1000);
        try {
          await ensureDurable(await jetstreamManager(this.nc), this.n, this.projection, this.batchSize, this.ackWaitMs, this.lastSeq);
          consumer = await this.js.consumers.get(this.n.eventsStream, this.n.consumer(this.projection));
        } catch (e) {
          this.log.warn({ err: (e as Error).message }, 'could not re-create the consumer; retrying');
        }
      }
    }
  }

  private backoff = 200;

  /** Messages delivered ahead of an unapplied earlier one (after a crash): held unacked, in order, until it arrives. */
  private readonly held = new Map<number, JsMsg>();

  private async handle(incoming: JsMsg[]): Promise<void> {
    const label = { projection: this.projection };
    const t0 = process.hrtime.bigint();
    for (const m of incoming) this.held.set(m.info.streamSequence, m);
    const msgs = [...this.held.values()].sort((a, b) => a.info.streamSequence - b.info.streamSequence);
    this.held.clear();
    try {
      const decoded = msgs.map((m) => decodeJsMsg(m, this.log));
      const poison = decoded.filter((d) => d === null).length;
      if (poison) this.metrics.poison.inc(label, poison);
      const out = await processBatch(this.pool, this.projection, decoded, msgs.map((m) => m.info.streamSequence), {
        partitions: this.partitions,
        seqExists: this.seqExists,
      });
      // the deferred are the tail after a gap; everything before it is committed, and one ack
      // (policy "all") of its last message acknowledges it all
      const deferred = new Set(out.deferred);
      const applied = msgs.filter((m) => !deferred.has(m.info.streamSequence));
      applied[applied.length - 1]?.ack();
      for (const m of msgs) {
        if (!deferred.has(m.info.streamSequence)) continue;
        if (this.held.size < this.batchSize * 4) this.held.set(m.info.streamSequence, m);
        else m.nak(1000); // bounded memory: the server redelivers it later
      }
      if (deferred.size) {
        this.log.info({ deferred: deferred.size, checkpoint: out.lastSeq }, 'waiting for redelivery of earlier messages; holding later ones');
        if (out.applied === 0) await sleep(200);
      }
      const now = Date.now();
      for (const d of out.fresh) this.metrics.latency.observe(label, Math.max(0, now - Date.parse(d.record.ingest.received_at)) / 1000);
      this.metrics.applied.inc(label, out.applied);
      if (out.skipped) this.metrics.skipped.inc(label, out.skipped);
      this.lastSeq = out.lastSeq;
      this.metrics.lastSeq.set(label, out.lastSeq);
      this.metrics.pending.set(label, msgs[msgs.length - 1]!.info.pending);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      this.metrics.batchSeconds.observe(label, secs);
      this.log.debug({ n: msgs.length, applied: out.applied, ms: Math.round(secs * 1000) }, 'batch');
      this.backoff = 200;
    } catch (err) {
      this.metrics.failures.inc(label);
      this.log.error({ err: (err as Error).message, projection: this.projection }, 'batch failed; will be redelivered');
      for (const m of msgs) m.nak(this.backoff);
      this.partitions.forget();
      await sleep(this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.iter?.stop();
    await this.loop?.catch(() => undefined);
  }
}

const BATCH_LINGER_MS = 50;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
