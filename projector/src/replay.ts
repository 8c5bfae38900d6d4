import { DeliverPolicy, jetstream, jetstreamManager, type Consumer, type JetStreamClient } from '@nats-io/jetstream';
import { type NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { connectNats, createPool, inTransaction, KachingError, names as namesOf, PriceBook, type BaseConfig, type ProjectionName } from '@kaching/contracts';
import { lockCheckpoint, writeCheckpoint } from './db/batch.js';
import { HourlyPartitionCache, PartitionCache, ensureHourlyPartitions, ensurePartitions, hourlyMonths, nextMonth, utcDay, utcMonth } from './db/partitions.js';
import { StageWriter, buildFromStage, copyIndexes, type StageFacts } from './db/bulk.js';
import { LIVE, ORG_READABLE, OWNED, SHADOW_SUFFIX, shadowTables, type Tables } from './db/tables.js';
import { decodeJsMsg, hardenPool, processBatch, type BatchOutcome } from './processor.js';
import { createShadow, deploymentZones, shadowForeignKeys, trySwap } from './db/shadow.js';
import type { Decoded } from './records.js';
import { q } from './projections/common.js';
import { HistoryFeed, refuseHistoryGap } from './history.js';
import { ArchiveHistory } from '@kaching/archiver';

export interface ReplayOptions {
  fromSeq?: number;
  /** RFC 3339: start at the first message stored at or after this instant. */
  since?: string;
  batchSize?: number;
  onProgress?(p: ReplayProgress): void;
  signal?: AbortSignal;
  /**
   * Rebuild even though the stream no longer holds its first messages (max_age, purge) that the live tables
   * count: the rebuilt tables then lack that history. Without it such a replay is refused (REPLAY_HISTORY_GAP).
   */
  acceptHistoryLoss?: boolean;
  /**
   * The archive read before (and around) the stream: default the archiver's (KACHING_ARCHIVE_DIR /
   * KACHING_ARCHIVE_URL); null reads the stream only.
   */
  history?: ArchiveHistory | null;
  /** Reuse a connection / pool (tests, bench). */
  nc?: NatsConnection;
  pool?: pg.Pool;
}

export interface ReplayProgress {
  projection: ProjectionName;
  /** load: staging the stream; build: building the shadow tables from it; catch-up: applying what came since. */
  phase: 'load' | 'build' | 'catch-up';
  seq: number;
  applied: number;
  pending: number;
  eventsPerSecond: number;
}

export interface ReplayResult {
  projection: ProjectionName;
  events: number;
  lastSeq: number;
  seconds: number;
  eventsPerSecond: number;
  swap: 'rename' | 'copy';
  /** Events read from the archive (part of events). */
  archived: number;
  /** Where the time went, seconds: staging the stream, building the shadow tables, catching up, swapping. */
  phases: { load: number; build: number; catchUp: number; swap: number };
}

/** "load 29.3 s, build 15.3 s, catch-up 0.0 s, swap 0.6 s" */
export function replayPhaseText(ph: ReplayResult['phases']): string {
  return `load ${ph.load.toFixed(1)} s, build ${ph.build.toFixed(1)} s, catch-up ${ph.catchUp.toFixed(1)} s, swap ${ph.swap.toFixed(1)} s`;
}

/**
 * Rebuilds one projection into `<table>__shadow` copies from a fresh ordered consumer while the live
 * tables keep serving reads, then swaps them in with one transaction that also moves every lane's
 * checkpoint to the replayed sequence. The swap holds the projection's lane checkpoint rows, so live
 * instances wait, then continue from the replayed sequence on the new tables.
 * With --from-seq/--since the rebuilt tables contain only events from that point on.
 */
export async function replay(config: BaseConfig, projection: ProjectionName, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const n = namesOf(config.namespace);
  const pool = opts.pool ?? hardenPool(createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: 4, applicationName: 'kaching-replay' }));
  // One replay per projection at a time: a second would drop the first one's shadow and staging tables.
  // A session lock, so a replay that dies (even kill -9) releases it with its connection.
  const lockKey = replayLockKey(config.namespace, projection);
  const lock = await pool.connect();
  const got = await lock.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [lockKey]).catch((err) => {
    lock.release(true);
    throw err;
  });
  if (!got.rows[0]?.ok) {
    lock.release();
    if (!opts.pool) await pool.end().catch(() => undefined);
    throw new KachingError('CONFLICT', { message: `a replay of ${projection} is already running in namespace ${config.namespace}` });
  }
  const unlock = async () => {
    await lock.query('select pg_advisory_unlock(hashtext($1))', [lockKey]).then(() => lock.release(), () => lock.release(true));
  };
  const nc = await (opts.nc ? Promise.resolve(opts.nc) : connectNats(config.natsUrl, { name: 'kaching-replay' })).catch(async (err) => {
    await unlock();
    if (!opts.pool) await pool.end().catch(() => undefined);
    throw err;
  });
  const shadow = shadowTables();
  const shadowKey = `${projection}${SHADOW_SUFFIX}`;
  const batchSize = opts.batchSize ?? 10_000;
  const t0 = Date.now();
  let applied = 0;
  const phases = { load: 0, build: 0, catchUp: 0, swap: 0 };
  let phaseStart = t0;
  const phaseEnd = (k: keyof typeof phases) => {
    const now = Date.now();
    phases[k] += (now - phaseStart) / 1000;
    phaseStart = now;
  };
  // `done` counts this phase's events; the catch-up's add to the bulk load's.
  const progress = (phase: ReplayProgress['phase'], seq: number, pending: number, done: number) => {
    if (phase === 'build' && phases.load === 0) phaseEnd('load');
    const total = phase === 'catch-up' ? applied + done : done;
    opts.onProgress?.({ projection, phase, seq, applied: total, pending, eventsPerSecond: total / Math.max(0.001, (Date.now() - t0) / 1000) });
  };
  const history = opts.history === undefined ? ArchiveHistory.open(config.namespace) : opts.history;
  let feed: HistoryFeed | null = null;
  try {
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info(n.eventsStream);
    const full = opts.fromSeq === undefined && opts.since === undefined;
    const dense = full && !opts.acceptHistoryLoss ? await refuseHistoryGap(pool, projection, si.state.first_seq, history) : false;
    // Where the archive's part starts: the same point the stream's would (first message at/after --since, --from-seq, 1).
    const archiveFrom = !history ? null : opts.since !== undefined ? await history.firstSeqAtOrAfter(Date.parse(opts.since)) : (opts.fromSeq ?? 1);
    if (history && archiveFrom !== null && archiveFrom <= (await history.lastSeq())) {
      feed = new HistoryFeed(history, archiveFrom, dense ? { streamFirstSeq: si.state.first_seq } : null);
    }
    // The shadow's days are local days in the zones of now: a zone changed meanwhile is re-derived at the swap.
    const zones = await deploymentZones(pool);
    // One book for the whole rebuild; what changes in it meanwhile is re-priced after the swap (reprice.ts).
    const book = await new PriceBook().load(pool);
    // Index-less: the bulk load builds the indexes once its rows are in.
    await createShadow(pool, projection, { indexes: false });
    await pool.query('delete from projection_checkpoint where projection = $1', [shadowKey]);
    const js = jetstream(nc);
    const startSeq = opts.fromSeq ?? 1;
    // append times grow with sequences: the archive's part from --since and the stream's meet without a hole
    const consumer = await js.consumers.get(n.eventsStream, opts.since
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(opts.since).toISOString() }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, startSeq) });
    const info = await consumer.info();
    let shadowSeq: number;
    if (info.num_pending === 0 && !feed) {
      // Nothing to read: everything the stream holds lies before the start point.
      shadowSeq = si.state.last_seq;
      await inTransaction(pool, async (client) => {
        for (const k of OWNED[projection]) await copyIndexes(client, LIVE[k] as string, shadow[k] as string);
      });
    } else {
      const bulk = await bulkLoad(pool, info.num_pending > 0 ? consumer : null, feed, projection, shadow, shadowKey, { upTo: si.state.last_seq, batchSize, signal: opts.signal, progress, book });
      applied = bulk.applied;
      shadowSeq = bulk.lastSeq;
    }
    // validated here, outside the swap's lock: Postgres 15 cannot add a NOT VALID foreign key to a partitioned table
    await shadowForeignKeys(pool, projection);
    phaseEnd('build');
    let swap = await trySwap(pool, projection, shadowSeq, zones, book.revision);
    phaseEnd('swap');
    if (!swap) {
      // The live consumer got ahead while the bulk load ran: catch up batch by batch, then swap.
      const r = await catchUp(pool, js, n.eventsStream, projection, shadowSeq, zones, { batchSize, signal: opts.signal, progress, book });
      applied += r.applied;
      shadowSeq = r.lastSeq;
      swap = r.swap;
      phaseEnd('catchUp');
    }
    if (!swap) throw new Error(`replay of ${projection} aborted before the swap (live tables untouched)`);
    const seconds = (Date.now() - t0) / 1000;
    return { projection, events: applied, archived: feed?.fed ?? 0, lastSeq: shadowSeq, seconds, eventsPerSecond: applied / Math.max(seconds, 0.001), swap, phases };
  } finally {
    await feed?.close().catch(() => undefined);
    if (opts.history === undefined) await history?.close().catch(() => undefined);
    await unlock();
    if (!opts.nc) await nc.close().catch(() => undefined);
    if (!opts.pool) await pool.end().catch(() => undefined);
  }
}

/** The advisory lock a replay of `projection` holds for its whole run (text hashed with hashtext()). */
export function replayLockKey(namespace: string, projection: ProjectionName): string {
  return `kaching:replay:${namespace}:${projection}`;
}

interface PhaseOptions {
  batchSize: number;
  book: PriceBook;
  signal?: AbortSignal;
  progress(phase: ReplayProgress['phase'], seq: number, pending: number, done: number): void;
}

/**
 * The rebuild's first pass: every message up to `upTo` (the stream's end when the replay started) goes
 * through one open COPY into an unlogged staging table; then buildFromStage fills the shadow tables from
 * it set-based, and the shadow checkpoint is written last. Decoding (this thread) and COPY parsing
 * (Postgres) overlap; no merge runs per batch. A failure leaves only shadow and staging tables, which the
 * next replay drops.
 */
async function bulkLoad(
  pool: pg.Pool,
  consumer: Consumer | null,
  feed: HistoryFeed | null,
  projection: ProjectionName,
  shadow: Tables,
  shadowKey: string,
  o: PhaseOptions & { upTo: number },
): Promise<{ applied: number; lastSeq: number }> {
  const stage = `replay_stage_${projection}`;
  let applied = 0;
  let lastSeq = 0;
  let reachedEnd = false;
  try {
    const client = await pool.connect();
    let facts: StageFacts;
    let clean = false;
    try {
      const writer = await StageWriter.open(client, stage, projection, o.book);
      let received = 0;
      // archived messages go into the same staging pass, in sequence order around the stream's
      const fromArchive = (d: Decoded | null, seq: number) => {
        if (o.signal?.aborted) throw new Error(`replay of ${projection} aborted during the bulk load (live tables untouched)`);
        lastSeq = Math.max(lastSeq, seq);
        if (++received % 20_000 === 0) o.progress('load', seq, 0, received);
        return writer.addDecoded(d);
      };
      if (consumer) {
        const iter = await consumer.consume({ max_messages: o.batchSize });
        const onAbort = () => void iter.stop();
        o.signal?.addEventListener('abort', onAbort);
        try {
          for await (const m of iter) {
            if (feed) await feed.before(m.info.streamSequence, fromArchive);
            const full = writer.add(m);
            if (full) await full;
            lastSeq = m.info.streamSequence;
            const pending = m.info.pending;
            if (++received % 20_000 === 0) o.progress('load', lastSeq, pending, received);
            if (pending === 0 || lastSeq >= o.upTo) {
              reachedEnd = true;
              break;
            }
          }
        } finally {
          o.signal?.removeEventListener('abort', onAbort);
          await iter.close().catch(() => undefined);
        }
      } else {
        // the stream holds nothing from the start point on: the archive has it all, up to the stream's end
        reachedEnd = true;
        lastSeq = o.upTo;
      }
      if (!reachedEnd) throw new Error(`replay of ${projection} aborted during the bulk load (live tables untouched)`);
      if (feed) await feed.rest(o.upTo, fromArchive);
      facts = await writer.end();
      clean = true;
    } finally {
      // A connection left in the middle of a COPY is closed, not reused.
      client.release(!clean);
    }
    applied = facts.rows;
    o.progress('build', lastSeq, 0, applied);
    await buildFromStage(pool, projection, shadow, stage, facts);
    await inTransaction(pool, async (client) => {
      await lockCheckpoint(client, shadowKey);
      await writeCheckpoint(client, shadowKey, lastSeq);
    });
    return { applied, lastSeq };
  } finally {
    await pool.query(`drop table if exists ${q(stage)}`).catch(() => undefined);
  }
}

/**
 * Applies what arrived after the bulk load with the live merges, two batches in flight, until a swap
 * succeeds (the live consumer may keep getting ahead under load).
 */
async function catchUp(
  pool: pg.Pool,
  js: JetStreamClient,
  stream: string,
  projection: ProjectionName,
  fromSeq: number,
  zones: Map<string, string>,
  o: PhaseOptions,
): Promise<{ applied: number; lastSeq: number; swap: 'rename' | 'copy' | null }> {
  const shadow = shadowTables();
  const shadowKey = `${projection}${SHADOW_SUFFIX}`;
  const partitions = new PartitionCache(shadow.usageSample);
  const hourlyPartitions = new HourlyPartitionCache(shadow.hourly);
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq + 1 });
  let applied = 0;
  let shadowSeq = fromSeq;
  let swap: 'rename' | 'copy' | null = null;
  const iter = await consumer.consume({ max_messages: o.batchSize });
  const onAbort = () => void iter.stop();
  o.signal?.addEventListener('abort', onAbort);
  // Two batches in flight: one COPYs into its session's staging table while the other merges, so
  // decoding (this thread) and merging (Postgres) overlap. Batches still commit in stream order.
  const inflight: Promise<BatchOutcome>[] = [];
  let previousLocked: Promise<number> = Promise.resolve(0);
  const settle = async () => {
    const out = await inflight.shift()!;
    applied += out.applied;
    shadowSeq = Math.max(shadowSeq, out.lastSeq);
  };
  let decoded: (Decoded | null)[] = [];
  let seqs: number[] = [];
  try {
    for await (const m of iter) {
      decoded.push(decodeJsMsg(m));
      seqs.push(m.info.streamSequence);
      // Let I/O in now and then: the merge in flight sends its next statement only when this thread is free.
      if (seqs.length % 500 === 0) await new Promise<void>((r) => setImmediate(r));
      const pending = m.info.pending;
      if (seqs.length < o.batchSize && pending > 0) continue;
      const batchDecoded = decoded;
      const batchSeqs = seqs;
      decoded = [];
      seqs = [];
      let locked!: (seq: number) => void;
      let failed!: (err: unknown) => void;
      const holdsLock = new Promise<number>((res, rej) => ((locked = res), (failed = rej)));
      holdsLock.catch(() => undefined);
      const batch = processBatch(pool, projection, batchDecoded, batchSeqs, {
        tables: shadow, checkpointKey: shadowKey, partitions, hourlyPartitions, pipelined: { after: previousLocked, locked }, book: o.book,
      });
      batch.catch(failed);
      previousLocked = holdsLock;
      inflight.push(batch);
      if (inflight.length >= 2) await settle();
      if (pending > 0) {
        o.progress('catch-up', shadowSeq, pending, applied);
        continue;
      }
      while (inflight.length) await settle();
      o.progress('catch-up', shadowSeq, pending, applied);
      swap = await trySwap(pool, projection, shadowSeq, zones, o.book.revision);
      if (swap) break;
    }
  } finally {
    await Promise.allSettled(inflight);
    o.signal?.removeEventListener('abort', onAbort);
    await iter.close().catch(() => undefined);
  }
  return { applied, lastSeq: shadowSeq, swap };
}
