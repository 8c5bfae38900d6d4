import { jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../names/names.js';

const NS_PER_MS = 1_000_000;

export interface EventsStreamOptions {
  /** Exact resends inside this window are dropped by JetStream itself (kept in server memory: minutes). */
  duplicateWindowMs: number;
  /**
   * Stream max_age; 0 (the default) = no age limit: the archiver purges events only once they are archived
   * and past KACHING_HOT_RETENTION (archiver/README.md), so age alone never deletes usage.
   */
  maxAgeMs: number;
  /** Hard cap on stream size; when full, new appends are refused (never silently dropping acked events). */
  maxBytes: number;
  replicas: number;
}

export const EVENTS_STREAM_DEFAULTS: EventsStreamOptions = {
  duplicateWindowMs: 2 * 60_000,
  maxAgeMs: 0,
  maxBytes: -1,
  replicas: 1,
};

/** How old a report ingest still accepts by default (INGEST_MAX_AGE_MS): 30 days, the default hot window. */
export const DEFAULT_REPORT_MAX_AGE_MS = 30 * 24 * 3_600_000;

export function eventsStreamConfig(n: Names, opts: Partial<EventsStreamOptions> = {}): Partial<StreamConfig> & { name: string } {
  const o = withDefaults(opts);
  return {
    name: n.eventsStream,
    subjects: [n.eventsWildcard],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // Discard new: a full stream refuses appends (ingest answers 503) instead of deleting acked usage.
    discard: DiscardPolicy.New,
    duplicate_window: o.duplicateWindowMs * NS_PER_MS,
    max_age: o.maxAgeMs * NS_PER_MS,
    max_bytes: o.maxBytes,
    num_replicas: o.replicas,
  };
}

const withDefaults = (o: Partial<EventsStreamOptions>): EventsStreamOptions => {
  const out = { ...EVENTS_STREAM_DEFAULTS };
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
};

/**
 * Creates the events stream, or updates its limits when they changed. Only ingest passes its limits;
 * other services pass at most `replicas`, and a stream that exists keeps the limits ingest gave it.
 */
export async function ensureEventsStream(nc: NatsConnection, n: Names, opts: Partial<EventsStreamOptions> = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const cfg = eventsStreamConfig(n, opts);
  const limits = opts.duplicateWindowMs !== undefined || opts.maxAgeMs !== undefined || opts.maxBytes !== undefined;
  try {
    const info = await jsm.streams.info(n.eventsStream);
    const c = info.config;
    const replicas = opts.replicas ?? c.num_replicas;
    if (limits && (c.duplicate_window !== cfg.duplicate_window || c.max_age !== cfg.max_age || c.max_bytes !== cfg.max_bytes)) {
      await jsm.streams.update(n.eventsStream, { ...c, duplicate_window: cfg.duplicate_window, max_age: cfg.max_age, max_bytes: cfg.max_bytes, num_replicas: replicas });
    } else if (replicas !== c.num_replicas) {
      await jsm.streams.update(n.eventsStream, { ...c, num_replicas: replicas });
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(cfg).catch(async (e) => {
      // another process created it between our info() and add(): fine if it exists now
      if (!(await streamExists(nc, n.eventsStream))) throw e;
    });
  }
}

/** Decisions keep their history on the control subjects; deduplicated by decision id (Nats-Msg-Id). */
export async function ensureDecisionsStream(nc: NatsConnection, n: Names, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  if (await streamExists(nc, n.decisionsStream)) return;
  await jsm.streams
    .add({
      name: n.decisionsStream,
      subjects: [n.controlWildcard],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: 60 * 60_000 * NS_PER_MS,
      max_age: 90 * 24 * 3_600_000 * NS_PER_MS,
      num_replicas: replicas,
    })
    .catch(async (e) => {
      if (!(await streamExists(nc, n.decisionsStream))) throw e;
    });
}

/** The KV bucket holding the current decision per (deployment, scope). */
export async function decisionsBucket(nc: NatsConnection, n: Names, replicas = 1): Promise<KV> {
  return new Kvm(nc).create(n.decisionsBucket, { history: 5, replicas });
}

/**
 * KACHING_STREAM_REPLICAS=1 on a cluster keeps every acked event on one node only: say so at start.
 * (The server's INFO carries `cluster` when it is part of one.)
 */
export function warnOnReplicas(nc: NatsConnection, replicas: number | undefined, log: { warn(o: object, msg: string): void }): boolean {
  const cluster = (nc.info as { cluster?: string } | undefined)?.cluster;
  if (!cluster || (replicas ?? 1) > 1) return false;
  log.warn({ cluster, replicas: replicas ?? 1 }, 'NATS is a cluster but streams and KV run at R1 (KACHING_STREAM_REPLICAS=1): an acked event lives on one node only; set KACHING_STREAM_REPLICAS=3');
  return true;
}

export async function streamExists(nc: NatsConnection, name: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; code?: string | number; message?: string };
  return e?.api_error?.err_code === 10059 || e?.code === 404 || e?.code === '404' || /not found/i.test(e?.message ?? '');
}

/** Server version as [major, minor, patch], to gate features newer than 2.9 (DESIGN: "behind a version check"). */
export function serverVersion(nc: NatsConnection): [number, number, number] {
  const v = nc.info?.version ?? '0.0.0';
  const [a, b, c] = v.split('.').map((x) => parseInt(x, 10) || 0);
  return [a ?? 0, b ?? 0, c ?? 0];
}

export function serverAtLeast(nc: NatsConnection, major: number, minor: number): boolean {
  const [a, b] = serverVersion(nc);
  return a > major || (a === major && b >= minor);
}
