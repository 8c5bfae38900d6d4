import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { laneCheckpoints } from '../consumer/lease.js';
import { LEGACY_LANE, lanesOf, type Lane } from '../consumer/partition.js';
import { partitionEpochs } from '../consumer/registry.js';
import type { Names } from '../names/names.js';

type Db = Pick<pg.Pool, 'query'>;

/** Checkpoint and lease key of the archiver (see contracts/src/consumer). */
export const ARCHIVER_CONSUMER = 'archiver';

/** KACHING_ARCHIVE_LAG_ALERT_EVENTS default: unarchived events that raise the lag alert. */
export const ARCHIVE_LAG_ALERT_DEFAULT = 10_000;
/** KACHING_ARCHIVE_LAG_ALERT_AFTER default: how long the lag must stay at or above it (a burst is not an alert). */
export const ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS = 5 * 60_000;

export interface ArchiveLag {
  /** Events-stream messages not yet in a published segment. */
  lag: number;
  /** Every stream message at or below this sequence is archived. */
  archivedThrough: number;
  streamLastSeq: number;
  lanes: { lane: string; checkpoint: number; lag: number }[];
}

/**
 * What the archive is missing, from the archiver's checkpoints (which move only after a segment is
 * published) and the stream: works the same whether the archiver runs or not, so another service can
 * see it stopped. A lane with nothing pending covers the stream up to its last sequence read first.
 */
export async function measureArchiveLag(nc: NatsConnection, pool: Db, n: Names): Promise<ArchiveLag> {
  const jsm = await jetstreamManager(nc);
  const streamLastSeq = Number((await jsm.streams.info(n.eventsStream)).state.last_seq);
  const epochs = await partitionEpochs(pool);
  const cps = await laneCheckpoints(pool, ARCHIVER_CONSUMER);
  const lanes = new Map<string, { lane: Lane; start: number }>([[LEGACY_LANE.id, { lane: LEGACY_LANE, start: 0 }]]);
  const current = epochs.at(-1);
  for (const e of epochs) {
    for (const l of lanesOf(e.partitions)) {
      if (lanes.has(l.id)) continue;
      if (e.partitions !== current?.partitions && cps.get(l.id)?.retired) continue;
      lanes.set(l.id, { lane: l, start: e.startSeq });
    }
  }
  const js = jetstream(nc);
  const out: ArchiveLag['lanes'] = [];
  let archivedThrough = streamLastSeq;
  for (const { lane, start } of lanes.values()) {
    const checkpoint = cps.get(lane.id)?.lastSeq ?? start;
    const c = await js.consumers.get(n.eventsStream, { filter_subjects: n.laneFilter(lane), deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 });
    const lag = (await c.info(true)).num_pending;
    await c.delete().catch(() => undefined);
    out.push({ lane: lane.id, checkpoint, lag });
    if (lag > 0) archivedThrough = Math.min(archivedThrough, checkpoint);
  }
  return { lag: out.reduce((s, l) => s + l.lag, 0), archivedThrough, streamLastSeq, lanes: out };
}

/** The stored archive coverage (0 when nothing was ever measured: nothing counts as archived). */
export async function archivedThrough(db: Db): Promise<number> {
  const r = await db.query<{ archived_through: string }>('select archived_through from archive_state where id');
  return Number(r.rows[0]?.archived_through ?? 0);
}

export interface ArchiveCheck extends ArchiveLag {
  threshold: number;
  /** The lag alert is raised (the lag stayed at or above threshold for afterMs; it was just now, or still is). */
  alerting: boolean;
  /** An alert was raised by this check. */
  raised: boolean;
}

/**
 * Measures the lag, stores the coverage, and raises (once per episode) or clears the lag alert. Run by the
 * archiver and by the projector (which keeps running when the archiver stops). Coverage never moves back.
 */
export async function checkArchive(nc: NatsConnection, pool: pg.Pool, n: Names, threshold: number, afterMs = ARCHIVE_LAG_ALERT_AFTER_DEFAULT_MS): Promise<ArchiveCheck> {
  const m = await measureArchiveLag(nc, pool, n);
  const lagging = m.lag >= threshold;
  const client = await pool.connect();
  let raised = false;
  let alerting = false;
  try {
    await client.query('begin');
    await client.query('insert into archive_state (id) values (true) on conflict do nothing');
    const prev = await client.query<{ alert_since: Date | null; lagging_ms: number | null }>(
      `select alert_since, extract(epoch from now() - lagging_since) * 1000 as lagging_ms from archive_state where id for update`,
    );
    const was = prev.rows[0]?.alert_since != null;
    alerting = lagging && (was || (prev.rows[0]?.lagging_ms != null && Number(prev.rows[0].lagging_ms) >= afterMs));
    await client.query(
      `update archive_state set archived_through = greatest(archived_through, $1), lag_events = $2, stream_last_seq = $3, checked_at = now(),
         lagging_since = case when $4 then coalesce(lagging_since, now()) else null end,
         alert_since = case when $5 then coalesce(alert_since, now()) else null end where id`,
      [m.archivedThrough, m.lag, m.streamLastSeq, lagging, alerting],
    );
    if (alerting && !was) {
      raised = true;
      await client.query('insert into archive_alert (lag_events, threshold, message) values ($1, $2, $3)', [
        m.lag, threshold, `the archive is ${m.lag} events behind the stream (alert at ${threshold}): is the archiver running?`,
      ]);
    } else if (!alerting && was) {
      await client.query('update archive_alert set cleared_at = now() where cleared_at is null');
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
  return { ...m, threshold, alerting, raised };
}
