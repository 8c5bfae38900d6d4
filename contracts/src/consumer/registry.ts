import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';

type Db = Pick<pg.Pool, 'query'> | pg.ClientBase;

/** One row of the partition count history (see 055_consumers.sql). */
export interface PartitionEpoch {
  epoch: number;
  partitions: number;
  /** No message published with a count first used in this epoch lies at or below this stream sequence. */
  startSeq: number;
}

const toEpoch = (r: { epoch: string; partitions: number; start_seq: string }): PartitionEpoch => ({
  epoch: Number(r.epoch),
  partitions: r.partitions,
  startSeq: Number(r.start_seq),
});

export async function partitionEpochs(db: Db): Promise<PartitionEpoch[]> {
  const r = await db.query('select epoch, partitions, start_seq from event_partitioning order by epoch');
  return r.rows.map(toEpoch);
}

/**
 * The partition count in force. The first service to start writes `initial` (KACHING_PARTITIONS); after
 * that the table is the truth and only `kaching partitions set` changes it.
 */
export async function currentPartitioning(db: Db, initial: number): Promise<PartitionEpoch> {
  const r = await db.query('select epoch, partitions, start_seq from event_partitioning order by epoch desc limit 1');
  if (r.rows[0]) return toEpoch(r.rows[0]);
  await db.query(
    `insert into event_partitioning (partitions, start_seq)
     select $1, 0 where not exists (select 1 from event_partitioning)`,
    [initial],
  );
  const again = await db.query('select epoch, partitions, start_seq from event_partitioning order by epoch desc limit 1');
  return toEpoch(again.rows[0]);
}

/**
 * Writes a new partition count. `streamLastSeq` must be read from the events stream before this call:
 * ingest instances learn the new count only from this row, so everything they publish with it lies after.
 * Returns null when the count is already in force.
 */
export async function setPartitioning(pool: pg.Pool, partitions: number, streamLastSeq: number): Promise<PartitionEpoch | null> {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) throw new RangeError('partitions must be an integer in 1..1024');
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(`select pg_advisory_xact_lock(hashtext('kaching.partitioning'))`);
    const cur = await client.query('select partitions from event_partitioning order by epoch desc limit 1');
    if (cur.rows[0]?.partitions === partitions) {
      await client.query('rollback');
      return null;
    }
    const r = await client.query(
      'insert into event_partitioning (partitions, start_seq) values ($1, $2) returning epoch, partitions, start_seq',
      [partitions, streamLastSeq],
    );
    await client.query('commit');
    return toEpoch(r.rows[0]);
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface InstanceOptions {
  role: string;
  consumers?: string[];
  ttlMs: number;
}

/**
 * This process in the instance registry. `beat()` renews it (database time); a process that stops
 * beating is dead to the others once its row expires, and its lanes move to the living.
 */
export class InstanceRegistration {
  readonly id: string;
  private partitionEpoch: number | null = null;
  /** process clock (ms) until which this registration is surely still valid. */
  validUntil = 0;

  constructor(private readonly pool: pg.Pool, readonly opts: InstanceOptions) {
    this.id = `${opts.role}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** ingest: the epoch it publishes with from now on (reported at the next beat). */
  setPartitionEpoch(epoch: number): void {
    this.partitionEpoch = epoch;
  }

  async beat(): Promise<void> {
    const t0 = performance.now();
    await this.pool.query(
      `insert into kaching_instance (instance_id, role, consumers, partition_epoch, host, pid, expires_at)
       values ($1, $2, $3, $4, $5, $6, now() + $7 * interval '1 millisecond')
       on conflict (instance_id) do update set heartbeat_at = now(), expires_at = excluded.expires_at,
         consumers = excluded.consumers, partition_epoch = excluded.partition_epoch`,
      [this.id, this.opts.role, this.opts.consumers ?? [], this.partitionEpoch, hostname(), process.pid, this.opts.ttlMs],
    );
    // counted from before the statement: the row may have been written at any moment after t0
    this.validUntil = t0 + this.opts.ttlMs;
  }

  async remove(): Promise<void> {
    await this.pool.query('delete from kaching_instance where instance_id = $1', [this.id]);
  }
}

/** Live instances running `consumer`, in id order. */
export async function liveMembers(db: Db, consumer: string): Promise<string[]> {
  const r = await db.query<{ instance_id: string }>(
    'select instance_id from kaching_instance where $1 = any(consumers) and expires_at > now() order by instance_id',
    [consumer],
  );
  return r.rows.map((x) => x.instance_id);
}

/** Partition counts live ingest instances publish with (an instance that has not reported yet counts as every count). */
export async function ingestPartitionCounts(db: Db): Promise<{ counts: Set<number>; unknown: boolean }> {
  const r = await db.query<{ partitions: number | null }>(
    `select e.partitions from kaching_instance i left join event_partitioning e on e.epoch = i.partition_epoch
      where i.role = 'ingest' and i.expires_at > now()`,
  );
  const counts = new Set<number>();
  let unknown = false;
  for (const row of r.rows) {
    if (row.partitions === null) unknown = true;
    else counts.add(row.partitions);
  }
  return { counts, unknown };
}

/** Forgets instances dead for an hour (their rows only matter while they might still be alive). */
export async function pruneInstances(db: Db): Promise<void> {
  await db.query(`delete from kaching_instance where expires_at < now() - interval '1 hour'`);
}
