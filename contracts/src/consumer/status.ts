import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import type { Names } from '../names/names.js';
import { compareLanes, parseLane } from './partition.js';

export interface LaneStatus {
  consumer: string;
  lane: string;
  /** Instance holding a live lease, or null. */
  owner: string | null;
  fence: number;
  lease_expires_at: string | null;
  checkpoint: number;
  handler_version: number;
  retired: boolean;
  /** Messages of the lane after its checkpoint (asked from the server), null when NATS is unreachable. */
  lag: number | null;
  updated_at: string;
}

/** Every (consumer, lane): owner, checkpoint and lag. The lag is exact: a short-lived consumer per lane counts what lies after the checkpoint. */
export async function collectLaneStatus(nc: NatsConnection | null, pool: pg.Pool, n: Names): Promise<LaneStatus[]> {
  const r = await pool.query<{
    consumer: string; lane: string; last_seq: string; handler_version: number; retired_at: Date | null; updated_at: Date;
    owner: string | null; fence: string | null; expires_at: Date | null; live: boolean | null;
  }>(
    `select c.consumer, c.lane, c.last_seq, c.handler_version, c.retired_at, c.updated_at, l.owner, l.fence, l.expires_at, l.expires_at > now() as live
       from consumer_checkpoint c left join consumer_lease l on l.consumer = c.consumer and l.lane = c.lane
      order by c.consumer`,
  );
  const js = nc ? jetstream(nc) : null;
  const lagCache = new Map<string, number | null>();
  const lag = async (lane: string, from: number): Promise<number | null> => {
    const key = `${lane}@${from}`;
    if (lagCache.has(key)) return lagCache.get(key)!;
    let v: number | null = null;
    if (js) {
      try {
        const c = await js.consumers.get(n.eventsStream, { filter_subjects: n.laneFilter(parseLane(lane)), deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from + 1 });
        v = (await c.info(true)).num_pending;
        await c.delete().catch(() => undefined);
      } catch {
        v = null;
      }
    }
    lagCache.set(key, v);
    return v;
  };
  const out: LaneStatus[] = [];
  for (const x of r.rows) {
    out.push({
      consumer: x.consumer,
      lane: x.lane,
      owner: x.live ? x.owner : null,
      fence: Number(x.fence ?? 0),
      lease_expires_at: x.expires_at && x.live ? x.expires_at.toISOString() : null,
      checkpoint: Number(x.last_seq),
      handler_version: x.handler_version,
      retired: x.retired_at !== null,
      lag: await lag(x.lane, Number(x.last_seq)),
      updated_at: x.updated_at.toISOString(),
    });
  }
  return out.sort((a, b) => (a.consumer < b.consumer ? -1 : a.consumer > b.consumer ? 1 : compareLanes(parseLane(a.lane), parseLane(b.lane))));
}

export function formatLaneStatus(lanes: LaneStatus[]): string[] {
  return lanes.map((l) => `  ${l.consumer.padEnd(12)} lane ${l.lane.padEnd(7)} checkpoint ${String(l.checkpoint).padStart(9)}  lag ${String(l.lag ?? '?').padStart(7)}  ${l.retired ? 'retired' : l.owner ? `owner ${l.owner} (fence ${l.fence})` : 'no owner'}`);
}
