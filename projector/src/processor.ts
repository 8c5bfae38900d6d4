import type { JsMsg } from '@nats-io/jetstream';
import type pg from 'pg';
import {
  contiguousLimit,
  decodeStreamRecord,
  digestFromMessageId,
  type SeqExists,
  revisionKey,
  SCHEMA_FINGERPRINT_HEADER,
  type Logger,
  type PriceBook,
  type ProjectionName,
} from '@kaching/contracts';
import { priceDecoded, stagedRows, type Decoded } from './records.js';
import { applyBatch, applyStaged, copyToStaging, lockCheckpoint, writeCheckpoint } from './db/batch.js';
import { attributionMonths, HourlyPartitionCache, PartitionCache, utcDay } from './db/partitions.js';
import { LIVE, type Tables } from './db/tables.js';

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
 * One batch of a replay, emmett-style: lock + read the (shadow) checkpoint, drop what it already covers,
 * apply the rest and advance the checkpoint in ONE transaction. The live projections go through
 * runner.ts (per-lane checkpoints with a fence).
 */
export async function processBatch(
  pool: pg.Pool,
  projection: ProjectionName,
  decoded: (Decoded | null)[],
  seqs: number[],
  opts: { tables?: Tables; checkpointKey?: string; partitions?: PartitionCache; hourlyPartitions?: HourlyPartitionCache; seqExists?: SeqExists; pipelined?: Pipelined; book?: PriceBook } = {},
): Promise<BatchOutcome & { fresh: Decoded[]; deferred: number[] }> {
  const tables = opts.tables ?? LIVE;
  const key = opts.checkpointKey ?? projection;
  const maxSeq = Math.max(...seqs);
  const present = decoded.filter((d): d is Decoded => d !== null);
  // a replay prices every event with the one book it loaded at its start (see replay.ts)
  if (opts.book && projection !== 'concurrency') priceDecoded(present, opts.book);
  if (projection === 'raw' && opts.partitions) {
    // Partitions are created outside the batch transaction so the DDL lock is held only briefly.
    const days = present.flatMap((d) => (d.record.kind === 'usage' ? [utcDay(d.record.usage.job.started_at)] : []));
    await opts.partitions.ensure(pool, days);
  }
  if (projection === 'rollups') {
    const hourly = opts.hourlyPartitions ?? new HourlyPartitionCache(tables.hourly);
    await hourly.ensure(pool, attributionMonths(present)).catch((err) => {
      hourly.forget();
      throw err;
    });
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

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
