import { DeliverPolicy, jetstream, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import type { Logger } from '../logging/logger.js';
import type { Names } from '../names/names.js';
import { acquireLease, endStaleSessions, HandlerVersionError, laneCheckpoints, LeaseLostError, releaseLease, renewLeases, reportPending, type LeaseToken } from './lease.js';
import { assignLaneGroups, compareLanes, LEGACY_LANE, lanesOf, type Lane } from './partition.js';
import { currentPartitioning, ingestPartitionCounts, liveMembers, partitionEpochs, type InstanceRegistration, type PartitionEpoch } from './registry.js';

/** One batch of one lane, in stream order. */
export interface LaneBatch {
  lane: Lane;
  lease: LeaseToken;
  messages: JsMsg[];
  /** Messages of the lane still to deliver after this batch (as the server last said). */
  pending: number;
  /** Partition counts with lanes still read (the current one and old ones still draining); see lockPartitions(). */
  counts: number[];
}

/**
 * A consumer of the events stream (a projection, the enforcer, the archiver). The runner gives it lanes
 * in order and without gaps; the handler makes each batch's effect and new position durable together.
 */
export interface ConsumerHandler {
  /** Checkpoint and lease key: 'raw', 'rollups', 'concurrency', 'enforcer', 'archiver'. */
  readonly name: string;
  /** Bump when the handler's logic changes in a way existing state must be rebuilt for. */
  readonly version: number;
  /**
   * Applies one batch and returns the lane's new position (last stream sequence whose effect is durable).
   * Messages at or below the stored position must change nothing (redelivery after a crash or takeover).
   * A Postgres handler uses inLaneTransaction() so the fence is checked where the effect commits; it
   * throws LeaseLostError when the lease moved on.
   */
  apply(batch: LaneBatch): Promise<number>;
  /** Where the lane resumes (last applied sequence). Default: the Postgres checkpoint. */
  position?(lane: Lane, lease: LeaseToken): Promise<number>;
  /**
   * Clears the consumer's derived state, inside the transaction that also puts every lane's checkpoint
   * back to 0 at the new version (see "handler version" in contracts/README.md). Without it, a version
   * change only moves the checkpoints.
   */
  rebuild?(client: pg.PoolClient): Promise<void>;
}

export interface RunnerOptions {
  nc: NatsConnection;
  pool: pg.Pool;
  names: Names;
  handler: ConsumerHandler;
  registration: InstanceRegistration;
  log: Logger;
  /** KACHING_PARTITIONS: the count written when none is recorded yet. */
  initialPartitions: number;
  batchSize: number;
  leaseMs: number;
  /** How long a partial batch waits for more messages the server says are pending. */
  lingerMs?: number;
  /**
   * How long a batch smaller than batchSize may wait, counted from its first message, for more to arrive
   * while the lane is caught up (0, the default: apply at once). Part of a batch's cost is per batch (a
   * transaction, staging, merges, a checkpoint), so fuller batches can cost less CPU per event at a trickle;
   * the price is up to this much added latency, and at 2k events/s the bench measured the latency and not
   * the saving (README, Performance).
   */
  fillMs?: number;
  /** Called after each committed batch (metrics). */
  onBatch?(e: { lane: string; messages: JsMsg[]; lastSeq: number; seconds: number; pending: number }): void;
  onError?(e: { lane: string; err: Error }): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs one consumer in this process: takes part in the (consumer, lane) lease table with every other live
 * instance of the same consumer, reads each lane it owns with an ordered consumer from its checkpoint, and
 * gives the lanes back when the assignment says another instance should have them.
 */
export class ConsumerRunner {
  private readonly js: JetStreamClient;
  private readonly workers = new Map<string, LaneWorker>();
  private stopped = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  /** Lanes this instance should own after the last tick. */
  assigned: string[] = [];
  /** Partition counts with active lanes after the last tick. */
  counts: number[] = [];
  ready = false;

  constructor(readonly o: RunnerOptions) {
    this.js = jetstream(o.nc);
  }

  get name(): string {
    return this.o.handler.name;
  }

  /** Lanes currently read by this instance, with their positions. */
  lanes(): { lane: string; position: number; fence: number }[] {
    return [...this.workers.values()].map((w) => ({ lane: w.lane.id, position: w.position, fence: w.lease.fence }));
  }

  /** The highest position over this instance's lanes (for single-lane setups and readiness). */
  get lastSeq(): number {
    return Math.max(0, ...[...this.workers.values()].map((w) => w.position));
  }

  /** Returns once the first coordination round went through (it waits out a Postgres or NATS outage). */
  async start(): Promise<void> {
    let backoff = 250;
    while (!this.stopped && !(await this.tick())) {
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
    }
    this.ready = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick().then(() => undefined).finally(() => this.schedule());
    }, Math.max(100, Math.floor(this.o.leaseMs / 4)));
  }

  /** One coordination round: renew, work out the lanes and who owns them, take and give back. */
  async tick(): Promise<boolean> {
    const { pool, handler, registration, log } = this.o;
    try {
      await registration.beat();
      const ended = await endStaleSessions(pool, handler.name);
      if (ended) log.warn({ consumer: handler.name, sessions: ended }, 'ended the batch sessions of an instance gone past its lease');
      const lost = await renewLeases(pool, registration.id, [...this.workers.values()].map((w) => w.lease), this.o.leaseMs);
      for (const l of lost) {
        log.warn({ consumer: handler.name, lane: l.lane, fence: l.fence }, 'lease lost; stopping the lane');
        this.workers.get(l.lane)?.abort();
      }
      let epochs = await partitionEpochs(pool);
      if (!epochs.length) {
        await currentPartitioning(pool, this.o.initialPartitions);
        epochs = await partitionEpochs(pool);
      }
      await this.ensureVersion();
      const lanes = await this.activeLanes(epochs);
      this.counts = [...new Set(lanes.flatMap((l) => (l.count === null ? [] : [l.count])))].sort((a, b) => a - b);
      const members = await liveMembers(pool, handler.name);
      if (!members.includes(registration.id)) members.push(registration.id);
      const current = epochs[epochs.length - 1]!;
      const live = lanes.filter((l) => l.count === current.partitions).map((l) => l.id);
      const assignment = assignLaneGroups(live, lanes.filter((l) => l.count !== current.partitions).map((l) => l.id), members);
      this.assigned = lanes.filter((l) => assignment.get(l.id) === registration.id).map((l) => l.id);
      for (const lane of lanes) {
        const mine = assignment.get(lane.id) === registration.id;
        const w = this.workers.get(lane.id);
        if (!mine && w) w.handOver();
        if (mine && !w && !this.stopped) await this.take(lane, epochs, current);
      }
      for (const [id, w] of this.workers) if (!lanes.some((l) => l.id === id)) w.handOver();
      return true;
    } catch (err) {
      log.warn({ consumer: handler.name, err: (err as Error).message }, 'coordination round failed; retrying');
      return false;
    }
  }

  /** legacy + the current count's lanes + older counts' lanes not yet drained by this consumer. */
  private async activeLanes(epochs: PartitionEpoch[]): Promise<Lane[]> {
    const current = epochs[epochs.length - 1]!;
    const cps = await laneCheckpoints(this.o.pool, this.o.handler.name);
    const out = new Map<string, Lane>([[LEGACY_LANE.id, LEGACY_LANE]]);
    for (const l of lanesOf(current.partitions)) out.set(l.id, l);
    for (const e of epochs) {
      if (e.partitions === current.partitions) continue;
      for (const l of lanesOf(e.partitions)) if (!cps.get(l.id)?.retired) out.set(l.id, l);
    }
    return [...out.values()].sort(compareLanes);
  }

  private async take(lane: Lane, epochs: PartitionEpoch[], current: PartitionEpoch): Promise<void> {
    const { pool, handler, registration, log } = this.o;
    // A lane of a count first used in epoch e holds nothing at or below e's start_seq (see registry.ts).
    const first = epochs.find((e) => e.partitions === lane.count);
    const lease = await acquireLease(pool, handler.name, lane.id, registration.id, this.o.leaseMs, handler.version, first?.startSeq ?? 0);
    if (!lease) return; // the previous owner gives it back after its batch, or its lease expires
    // a lane of the current count that was retired under an earlier count is read again
    if (lane.count === current.partitions) {
      await pool.query('update consumer_checkpoint set retired_at = null where consumer = $1 and lane = $2 and retired_at is not null', [handler.name, lane.id]);
    }
    log.info({ consumer: handler.name, lane: lane.id, fence: lease.fence }, 'lane acquired');
    const worker = new LaneWorker(this.js, this.o, lane, lease, () => this.counts);
    this.workers.set(lane.id, worker);
    void worker.run().finally(() => {
      if (this.workers.get(lane.id) === worker) this.workers.delete(lane.id);
    });
  }

  /**
   * A consumer whose stored handler version is older than the running one rebuilds: one instance, under an
   * advisory lock, calls handler.rebuild() and puts every lane's checkpoint back to 0 at the new version, in
   * one transaction. Instances still on the old version then fail their fence check (HandlerVersionError).
   */
  private async ensureVersion(): Promise<void> {
    const { pool, handler, log } = this.o;
    const r = await pool.query<{ v: number | null }>('select min(handler_version) as v from consumer_checkpoint where consumer = $1', [handler.name]);
    const stored = r.rows[0]?.v;
    if (stored === null || stored === undefined || stored >= handler.version) return;
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [`kaching.rebuild.${handler.name}`]);
      const again = await client.query<{ v: number }>('select min(handler_version) as v from consumer_checkpoint where consumer = $1', [handler.name]);
      if ((again.rows[0]?.v ?? handler.version) < handler.version) {
        log.warn({ consumer: handler.name, from: again.rows[0]?.v, to: handler.version }, 'handler version changed: rebuilding from the stream');
        // every lane row locked first: in-flight batches of old instances finish or wait, then fail their check
        await client.query('select 1 from consumer_checkpoint where consumer = $1 order by lane for update', [handler.name]);
        await handler.rebuild?.(client);
        await client.query('update consumer_checkpoint set last_seq = 0, retired_at = null, handler_version = $2, updated_at = now() where consumer = $1', [handler.name, handler.version]);
      }
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.tickTimer);
    await this.ticking.catch(() => undefined);
    await Promise.all([...this.workers.values()].map((w) => w.handOver()));
  }
}

/** Reads one lane with an ordered consumer and applies it batch by batch while this instance holds its lease. */
class LaneWorker {
  position = 0;
  private stopping = false;
  private aborted = false;
  private iter: ConsumerMessages | null = null;
  private done: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private lastPendingReport = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly o: RunnerOptions,
    readonly lane: Lane,
    readonly lease: LeaseToken,
    private readonly counts: () => number[],
  ) {}

  private get log() {
    return this.o.log;
  }

  run(): Promise<void> {
    this.done ??= this.loop().catch((err) => this.log.error({ consumer: this.o.handler.name, lane: this.lane.id, err: (err as Error).message }, 'lane stopped on an error'));
    return this.done;
  }

  /** Finish the batch in hand, then give the lease back. */
  handOver(): Promise<void> {
    this.stopping = true;
    this.iter?.stop();
    this.signal();
    return this.run();
  }

  /** The lease is gone: stop without committing anything more (a commit would fail its fence check anyway). */
  abort(): void {
    this.aborted = true;
    void this.handOver();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async loop(): Promise<void> {
    const { handler, pool } = this.o;
    let backoff = 200;
    let lastPending = 0;
    try {
      while (!this.stopping) {
        try {
          this.position = handler.position ? await handler.position(this.lane, this.lease) : await this.checkpoint();
          lastPending = await this.read();
          backoff = 200;
        } catch (err) {
          if (err instanceof LeaseLostError || err instanceof HandlerVersionError) {
            this.log.warn({ consumer: handler.name, lane: this.lane.id, err: err.message }, 'lane given up');
            this.aborted = true;
            return;
          }
          if (this.stopping) break;
          this.o.onError?.({ lane: this.lane.id, err: err as Error });
          this.log.warn({ consumer: handler.name, lane: this.lane.id, err: (err as Error).message }, 'reading the lane failed; re-reading from the checkpoint');
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    } finally {
      if (!this.aborted) await releaseLease(pool, this.lease, lastPending).catch(() => undefined);
    }
  }

  private async checkpoint(): Promise<number> {
    const r = await this.o.pool.query<{ last_seq: string }>('select last_seq from consumer_checkpoint where consumer = $1 and lane = $2', [this.o.handler.name, this.lane.id]);
    return Number(r.rows[0]?.last_seq ?? 0);
  }

  /**
   * One ordered consumer from position+1: nats.js recreates it by itself after a missed heartbeat or a
   * delivery-sequence gap, from the last stream sequence it handed out, so no message of the lane is ever
   * skipped. Any end or failure returns to the caller, which starts again from the checkpoint.
   * Returns the pending count last seen.
   */
  private async read(): Promise<number> {
    const { names, batchSize } = this.o;
    const consumer = await this.js.consumers.get(names.eventsStream, {
      filter_subjects: names.laneFilter(this.lane),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.position + 1,
    });
    const iter = await consumer.consume({ max_messages: Math.max(batchSize * 2, 256), expires: 5000 });
    this.iter = iter;
    if (this.stopping) iter.stop();
    const queue: JsMsg[] = [];
    let ended = false;
    let failure: unknown = null;
    // when the oldest message in the queue arrived
    let firstAt = 0;
    const pump = (async () => {
      try {
        for await (const m of iter) {
          if (!queue.length) firstAt = performance.now();
          queue.push(m);
          if (queue.length >= batchSize || m.info.pending === 0) this.signal();
        }
      } catch (err) {
        failure = err;
      } finally {
        ended = true;
        this.signal();
      }
    })();
    let pending = 0;
    let idleSince = performance.now();
    try {
      const fillMs = this.o.fillMs ?? 0;
      while (!this.stopping) {
        const last = queue[queue.length - 1];
        const waited = queue.length ? performance.now() - firstAt : 0;
        const caughtUp = last !== undefined && last.info.pending === 0 && waited >= fillMs;
        const due = queue.length >= batchSize || (last !== undefined && (caughtUp || ended));
        if (!due) {
          if (ended) break;
          let lingered = false;
          const waitMs = !queue.length ? 1000 : last!.info.pending === 0 ? Math.max(1, fillMs - waited) : (this.o.lingerMs ?? 50);
          const timer = setTimeout(() => ((lingered = true), this.signal()), waitMs);
          await new Promise<void>((r) => (this.wake = r));
          clearTimeout(timer);
          if (this.stopping) break;
          if (lingered && queue.length) await this.apply(queue.splice(0, batchSize));
          else if (lingered && !queue.length && performance.now() - idleSince > 2000) {
            idleSince = performance.now();
            if (await this.drained(consumer)) return 0;
          }
          continue;
        }
        const batch = queue.splice(0, batchSize);
        pending = batch[batch.length - 1]!.info.pending;
        await this.apply(batch);
        idleSince = performance.now();
      }
    } finally {
      iter.stop();
      await pump;
      await iter.close().catch(() => undefined);
      this.iter = null;
    }
    if (failure && !this.stopping) throw failure;
    if (ended && !this.stopping) throw new Error('the lane subscription ended');
    return pending;
  }

  /** Applies one batch; retries it (never reading past it) until it commits or the lease is gone. */
  private async apply(batch: JsMsg[]): Promise<void> {
    const { handler } = this.o;
    let backoff = 100;
    for (;;) {
      const t0 = performance.now();
      try {
        const pending = batch[batch.length - 1]!.info.pending;
        const lastSeq = await handler.apply({ lane: this.lane, lease: this.lease, messages: batch, pending, counts: this.counts() });
        this.position = Math.max(this.position, lastSeq);
        this.o.onBatch?.({ lane: this.lane.id, messages: batch, lastSeq: this.position, seconds: (performance.now() - t0) / 1000, pending });
        if (performance.now() - this.lastPendingReport > 1000 || pending === 0) {
          this.lastPendingReport = performance.now();
          void reportPending(this.o.pool, this.lease, pending).catch(() => undefined);
        }
        return;
      } catch (err) {
        if (err instanceof LeaseLostError || err instanceof HandlerVersionError || this.aborted) throw err instanceof Error ? err : new LeaseLostError(this.lease);
        this.o.onError?.({ lane: this.lane.id, err: err as Error });
        this.log.error({ consumer: handler.name, lane: this.lane.id, err: (err as Error).message }, 'batch failed; retrying it');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /**
   * An old-count lane is retired (given back for good) once no live ingest instance publishes with its
   * count any more and the server has nothing left to deliver in it; checked in that order, so a message
   * appended by the last old-count publish is already counted as pending.
   */
  private async drained(consumer: { info(cached?: boolean): Promise<{ num_pending: number }> }): Promise<boolean> {
    if (this.lane.count === null) return false;
    const { pool, handler } = this.o;
    const current = (await partitionEpochs(pool)).at(-1);
    if (!current || current.partitions === this.lane.count) return false;
    const ingest = await ingestPartitionCounts(pool);
    if (ingest.unknown || ingest.counts.has(this.lane.count)) return false;
    const info = await consumer.info();
    if (info.num_pending > 0) return false;
    const r = await pool.query(
      `update consumer_checkpoint c set retired_at = now() from consumer_lease l
        where c.consumer = $1 and c.lane = $2 and l.consumer = c.consumer and l.lane = c.lane and l.owner = $3 and l.fence = $4 and c.last_seq >= $5`,
      [handler.name, this.lane.id, this.lease.owner, this.lease.fence, this.position],
    );
    if (!r.rowCount) return false;
    this.log.info({ consumer: handler.name, lane: this.lane.id, checkpoint: this.position }, 'old-count lane drained and retired');
    this.stopping = true;
    return true;
  }
}
