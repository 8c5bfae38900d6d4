import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import { measureArchiveLag, type Names } from '@kaching/contracts';
import { archivedLanes, readManifest } from './manifest.js';
import type { ArchiveStore } from './store.js';
import { summarize, type LaneSummary } from './verify.js';

export interface ArchiveStatus {
  location: string;
  segments: number;
  events: number;
  bytes: number;
  first_seq: number | null;
  last_seq: number | null;
  /** Oldest received_at in the archive. */
  oldest_event_at: string | null;
  /** Messages of the stream not yet archived (null without NATS). */
  lag_events: number | null;
  archived_through: number | null;
  stream_first_seq: number | null;
  stream_last_seq: number | null;
  alert_since: string | null;
  lanes: LaneSummary[];
}

export async function archiveStatus(o: { store: ArchiveStore; nc: NatsConnection | null; pool: pg.Pool | null; names: Names }): Promise<ArchiveStatus> {
  const lanes: LaneSummary[] = [];
  for (const lane of await archivedLanes(o.store)) lanes.push(summarize(lane, (await readManifest(o.store, lane)).entries));
  const nums = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
  let lag: number | null = null;
  let through: number | null = null;
  let streamFirst: number | null = null;
  let streamLast: number | null = null;
  if (o.nc && o.pool) {
    const m = await measureArchiveLag(o.nc, o.pool, o.names).catch(() => null);
    if (m) ({ lag, archivedThrough: through, streamLastSeq: streamLast } = m);
    const info = await (await jetstreamManager(o.nc)).streams.info(o.names.eventsStream).catch(() => null);
    if (info) streamFirst = Number(info.state.first_seq);
  }
  const alert = o.pool ? await o.pool.query<{ alert_since: Date | null }>('select alert_since from archive_state where id').catch(() => null) : null;
  return {
    location: o.store.location,
    segments: lanes.reduce((a, l) => a + l.segments, 0),
    events: lanes.reduce((a, l) => a + l.events, 0),
    bytes: lanes.reduce((a, l) => a + l.bytes, 0),
    first_seq: nums(lanes.map((l) => l.first_seq)).sort((a, b) => a - b)[0] ?? null,
    last_seq: nums(lanes.map((l) => l.last_seq)).sort((a, b) => b - a)[0] ?? null,
    oldest_event_at: lanes.map((l) => l.oldest_received_at).filter((x): x is string => !!x).sort()[0] ?? null,
    lag_events: lag,
    archived_through: through,
    stream_first_seq: streamFirst,
    stream_last_seq: streamLast,
    alert_since: alert?.rows[0]?.alert_since?.toISOString() ?? null,
    lanes,
  };
}
