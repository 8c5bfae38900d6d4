import { createHash } from 'node:crypto';
import type pg from 'pg';
import { partitionOf } from './partition.js';

type Db = Pick<pg.Pool, 'query'> | pg.ClientBase;

/** What an instance holds while it owns a lane; every batch it commits carries it. */
export interface LeaseToken {
  consumer: string;
  lane: string;
  owner: string;
  fence: number;
  /** The handler version the owner runs. */
  version: number;
  /** Lease length: bounds how long a batch statement may run (a paused owner mid-COPY holds its locks until then). */
  ttlMs: number;
}

/** The lane's lease was taken by another instance (or released): this instance must stop the lane. */
export class LeaseLostError extends Error {
  constructor(readonly lease: LeaseToken) {
    super(`lease of ${lease.consumer}/${lease.lane} (fence ${lease.fence}) is no longer held by ${lease.owner}`);
    this.name = 'LeaseLostError';
  }
}

/** The lane's checkpoint was written by another handler version: this instance must not apply. */
export class HandlerVersionError extends Error {
  constructor(readonly lease: LeaseToken, readonly stored: number) {
    super(`${lease.consumer}/${lease.lane} is at handler version ${stored}; this instance runs ${lease.version}`);
    this.name = 'HandlerVersionError';
  }
}

/**
 * Takes the lease when it is free, expired or already ours, with a new fence. Null when another instance
 * holds it. The checkpoint row is created here too (at `initialSeq`), outside any batch.
 */
export async function acquireLease(pool: pg.Pool, consumer: string, lane: string, owner: string, ttlMs: number, version: number, initialSeq: number): Promise<LeaseToken | null> {
  // First, before anything that could wait on its locks: a previous owner whose lease ran out may be paused
  // inside a batch (see endStaleSessions).
  const prev = await pool.query<{ owner: string | null }>('select owner from consumer_lease where consumer = $1 and lane = $2 and owner is not null and owner <> $3 and expires_at <= now()', [consumer, lane, owner]);
  if (prev.rows[0]?.owner) await terminateBatchSessions(pool, prev.rows[0].owner, consumer);
  await pool.query(
    `insert into consumer_checkpoint (consumer, lane, last_seq, handler_version) values ($1, $2, $3, $4) on conflict do nothing`,
    [consumer, lane, initialSeq, version],
  );
  await pool.query('insert into consumer_lease (consumer, lane) values ($1, $2) on conflict do nothing', [consumer, lane]);
  const client = await pool.connect();
  try {
    // A batch of the previous owner in flight holds the lease row (for share): the takeover waits for it,
    // but not for ever: a paused owner's batch ends by statement timeout; meanwhile this round moves on.
    // An instance paused between this update and its commit holds the lease row: Postgres ends that
    // session after the idle timeout, or every other instance's takeover of the lane fails for ever.
    await client.query(`begin; set local lock_timeout = ${ACQUIRE_LOCK_TIMEOUT_MS}; set local idle_in_transaction_session_timeout = ${BATCH_IDLE_TIMEOUT_MS}`);
    const r = await client.query<{ fence: string }>(
      `update consumer_lease set owner = $3, fence = fence + 1, expires_at = now() + $4 * interval '1 millisecond', acquired_at = now()
        where consumer = $1 and lane = $2 and (owner is null or owner = $3 or expires_at <= now())
        returning fence`,
      [consumer, lane, owner, ttlMs],
    );
    await client.query('commit');
    const row = r.rows[0];
    return row ? { consumer, lane, owner, fence: Number(row.fence), version, ttlMs } : null;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    if ((err as { code?: string }).code === '55P03') return null; // lock_not_available: next round
    throw err;
  } finally {
    client.release();
  }
}

const ACQUIRE_LOCK_TIMEOUT_MS = 1000;

async function terminateBatchSessions(pool: pg.Pool, owner: string, consumer: string): Promise<number> {
  const r = await pool.query(
    `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = $1 and pid <> pg_backend_pid()`,
    [sessionTag(owner, consumer)],
  );
  return r.rowCount ?? 0;
}

/**
 * Ends the batch sessions of every owner of this consumer whose lease ran out and who is no longer a live
 * instance. Postgres ends a transaction left idle by itself, but not one paused in the middle of a COPY (the
 * server waits for data and no statement timeout applies): its row and advisory locks would stall the live
 * instances' batches and, behind those, the renewal of their own leases — every round, for ever. Each round of
 * every instance runs this first. Its batches could not commit anyway: their fence no longer matches.
 */
export async function endStaleSessions(pool: pg.Pool, consumer: string): Promise<number> {
  const r = await pool.query<{ owner: string }>(
    `select distinct l.owner from consumer_lease l
      where l.consumer = $1 and l.owner is not null and l.expires_at <= now()
        and not exists (select 1 from kaching_instance i where i.instance_id = l.owner and i.expires_at > now())`,
    [consumer],
  );
  let ended = 0;
  for (const { owner } of r.rows) ended += await terminateBatchSessions(pool, owner, consumer);
  return ended;
}

/** Renews the given leases; returns the ones that are no longer held (their fence moved on). */
export async function renewLeases(db: Db, owner: string, leases: readonly LeaseToken[], ttlMs: number): Promise<LeaseToken[]> {
  if (!leases.length) return [];
  const r = await db.query<{ consumer: string; lane: string }>(
    `update consumer_lease l set expires_at = now() + $5 * interval '1 millisecond'
       from unnest($2::text[], $3::text[], $4::bigint[]) as x(consumer, lane, fence)
      where l.consumer = x.consumer and l.lane = x.lane and l.fence = x.fence and l.owner = $1
      returning l.consumer, l.lane`,
    [owner, leases.map((l) => l.consumer), leases.map((l) => l.lane), leases.map((l) => l.fence), ttlMs],
  );
  const kept = new Set(r.rows.map((x) => `${x.consumer}\u0000${x.lane}`));
  return leases.filter((l) => !kept.has(`${l.consumer}\u0000${l.lane}`));
}

export async function releaseLease(db: Db, lease: LeaseToken, pending?: number): Promise<void> {
  await db.query(
    `update consumer_lease set owner = null, expires_at = now(), pending = coalesce($5, pending), pending_at = case when $5::bigint is null then pending_at else now() end
      where consumer = $1 and lane = $2 and owner = $3 and fence = $4`,
    [lease.consumer, lease.lane, lease.owner, lease.fence, pending ?? null],
  );
}

/** Records what the owner still sees to read (status shows it as the lane's lag). */
export async function reportPending(db: Db, lease: LeaseToken, pending: number): Promise<void> {
  await db.query(
    'update consumer_lease set pending = $5, pending_at = now() where consumer = $1 and lane = $2 and owner = $3 and fence = $4',
    [lease.consumer, lease.lane, lease.owner, lease.fence, pending],
  );
}

/**
 * Inside a batch transaction: locks the lane's checkpoint row, then checks (holding a share lock on the
 * lease row, so a takeover waits for this transaction) that the fence is still ours. Returns the checkpoint.
 * Throws LeaseLostError / HandlerVersionError; the caller rolls back.
 */
export async function lockLane(client: pg.ClientBase, lease: LeaseToken): Promise<number> {
  const cp = await client.query<{ last_seq: string; handler_version: number }>(
    'select last_seq, handler_version from consumer_checkpoint where consumer = $1 and lane = $2 for update',
    [lease.consumer, lease.lane],
  );
  const held = await client.query(
    'select 1 from consumer_lease where consumer = $1 and lane = $2 and owner = $3 and fence = $4 for share',
    [lease.consumer, lease.lane, lease.owner, lease.fence],
  );
  if (!cp.rows[0] || !held.rowCount) throw new LeaseLostError(lease);
  if (cp.rows[0].handler_version !== lease.version) throw new HandlerVersionError(lease, cp.rows[0].handler_version);
  return Number(cp.rows[0].last_seq);
}

export async function advanceLane(client: pg.ClientBase, lease: LeaseToken, seq: number): Promise<void> {
  await client.query(
    'update consumer_checkpoint set last_seq = $3, committed_fence = $4, updated_at = now() where consumer = $1 and lane = $2 and last_seq < $3',
    [lease.consumer, lease.lane, seq, lease.fence],
  );
}

/** How long a paused owner may sit idle inside a batch transaction before Postgres ends it (frees its locks). */
export const BATCH_IDLE_TIMEOUT_MS = 5_000;

/**
 * How long one batch statement may run: an owner paused in the middle of a COPY leaves its session
 * "active", which no idle timeout ends. Twice the lease, at least 5 s.
 */
export function batchStatementTimeoutMs(lease: LeaseToken): number {
  return Math.max(5_000, 2 * lease.ttlMs);
}

/** The application_name a batch transaction of (owner, consumer) runs under, so the next owner can end it. */
export function sessionTag(owner: string, consumer: string): string {
  return `kaching-batch-${createHash('sha256').update(owner).update('\u0000').update(consumer).digest('hex').slice(0, 24)}`;
}

/**
 * BEGIN with the limits a batch transaction runs under, so a paused owner cannot hold its locks for long:
 * idle inside the transaction, Postgres ends it; paused mid-COPY, the next owner ends it (acquireLease).
 */
export async function beginLaneTransaction(client: pg.ClientBase, lease: LeaseToken): Promise<void> {
  await client.query(
    `begin; set local idle_in_transaction_session_timeout = ${BATCH_IDLE_TIMEOUT_MS}; set local statement_timeout = ${batchStatementTimeoutMs(lease)}; set local application_name = '${sessionTag(lease.owner, lease.consumer)}'`,
  );
}

/**
 * The batch transaction every Postgres-backed consumer uses: lock + fence check, `apply` (given the
 * checkpoint; returns the new position), checkpoint advanced, commit: effect, checkpoint and fence in ONE
 * transaction. A session paused inside it (SIGSTOP) is ended by Postgres after BATCH_IDLE_TIMEOUT_MS.
 */
export async function inLaneTransaction<T>(
  pool: pg.Pool,
  lease: LeaseToken,
  apply: (client: pg.PoolClient, checkpoint: number) => Promise<{ lastSeq: number; result: T }>,
): Promise<{ checkpoint: number; lastSeq: number; result: T }> {
  const client = await pool.connect();
  // a session ended by the server (idle timeout, restart) reports here as well as to the running query
  const onError = () => undefined;
  client.on('error', onError);
  let failed = false;
  try {
    await beginLaneTransaction(client, lease);
    const checkpoint = await lockLane(client, lease);
    const out = await apply(client, checkpoint);
    if (out.lastSeq > checkpoint) await advanceLane(client, lease, out.lastSeq);
    await client.query('commit');
    return { checkpoint, lastSeq: Math.max(checkpoint, out.lastSeq), result: out.result };
  } catch (err) {
    failed = true;
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.off('error', onError);
    // a failed session may be a dead one: do not hand it to the next batch
    client.release(failed);
  }
}

/**
 * Inside a batch transaction: serialises batches of one consumer that may touch the same deployment.
 * Lanes of one partition count never share a deployment, but an old count's lane still draining, or the
 * legacy lane, shares deployments with the current lanes, and two transactions each applying part of one
 * deployment's events in parallel would each merge against a state missing the other's part. Locks
 * (count, partition of the deployment) for every count still read, in one order: in steady state a lane's
 * batch takes only its own partition's lock, so lanes of the current count never wait for each other.
 */
export async function lockPartitions(client: pg.ClientBase, consumer: string, deploymentIds: Iterable<string>, counts: readonly number[]): Promise<void> {
  const keys = new Set<string>();
  for (const d of new Set(deploymentIds)) for (const c of counts) keys.add(`${consumer}:${c}.${partitionOf(d, c)}`);
  if (!keys.size) return;
  await client.query(`select pg_advisory_xact_lock(hashtextextended(k, 0)) from (select k from unnest($1::text[]) as k order by k) s`, [[...keys]]);
}

/** The consumer's checkpoints (all lanes). */
export async function laneCheckpoints(db: Db, consumer: string): Promise<Map<string, { lastSeq: number; version: number; retired: boolean }>> {
  const r = await db.query<{ lane: string; last_seq: string; handler_version: number; retired_at: Date | null }>(
    'select lane, last_seq, handler_version, retired_at from consumer_checkpoint where consumer = $1',
    [consumer],
  );
  return new Map(r.rows.map((x) => [x.lane, { lastSeq: Number(x.last_seq), version: x.handler_version, retired: x.retired_at !== null }]));
}
