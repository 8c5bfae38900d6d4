import type pg from 'pg';
import { createLogger, createPool } from '@kaching/contracts';
import type { HqConfig } from './config.js';
import { startPusher, type Pusher } from './sync/pusher.js';
import { startReceiver, type Receiver } from './receive/server.js';

export interface HqHandle {
  /** The receiver's URL when this process is HQ (KACHING_ROLE=hq). */
  url?: string;
  /** Nothing is configured to run. */
  idle?: boolean;
  pusher?: Pusher;
  receiver?: Receiver;
  close(): Promise<void>;
}

/**
 * Whatever this installation's HQ settings ask for: the pusher when KACHING_HQ_URL is set, the
 * receiver when KACHING_ROLE=hq, both, or nothing (then it holds no resources at all).
 */
export async function start(config: HqConfig, deps: { pool?: pg.Pool; clock?: () => number } = {}): Promise<HqHandle> {
  if (!config.sync && !config.receiver) return { idle: true, close: async () => undefined };
  const log = createLogger('kaching-hq', config.logLevel);
  const pool = deps.pool ?? createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: 3, applicationName: 'kaching-hq' });
  let receiver: Receiver | undefined;
  let pusher: Pusher | undefined;
  try {
    if (config.receiver) {
      receiver = await startReceiver({ pool, config: config.receiver, log, ...(deps.clock ? { clock: deps.clock } : {}) });
      log.info({ url: receiver.url }, 'hq receiver listening (mTLS)');
    }
    if (config.sync) {
      pusher = startPusher({ pool, config: config.sync, namespace: config.namespace, log, ...(deps.clock ? { clock: deps.clock } : {}) });
      log.info({ url: config.sync.url, intervalMs: config.sync.intervalMs }, 'hq sync: pushing daily rollups');
    }
  } catch (e) {
    await receiver?.close().catch(() => undefined);
    if (!deps.pool) await pool.end().catch(() => undefined);
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    ...(receiver ? { url: receiver.url, receiver } : {}),
    ...(pusher ? { pusher } : {}),
    close() {
      closing ??= (async () => {
        await pusher?.close();
        await receiver?.close().catch(() => undefined);
        if (!deps.pool) await pool.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
