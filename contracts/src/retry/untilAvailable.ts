import type { Logger } from '../logging/logger.js';

export interface UntilAvailableOptions {
  log: Logger;
  /** What is being attempted, for the log line ("start the projection"). */
  what: string;
  /** Checked after each failure: true ends the retries (the service is closing). */
  stopped?: () => boolean;
  firstWaitMs?: number;
  maxWaitMs?: number;
}

/**
 * Runs `attempt` until it succeeds, backing off from 0.2 s to 5 s and logging each failure; undefined once
 * `stopped()` says so. For a service's start-up reads: a supervisor restarting it while Postgres or NATS
 * restarts too should see it wait for them, not exit again.
 */
export async function untilAvailable<T>(attempt: () => Promise<T>, o: UntilAvailableOptions): Promise<T | undefined> {
  const max = o.maxWaitMs ?? 5000;
  for (let wait = o.firstWaitMs ?? 200; ; wait = Math.min(wait * 2, max)) {
    try {
      return await attempt();
    } catch (err) {
      if (o.stopped?.()) return undefined;
      o.log.warn({ err: (err as Error).message, retryInMs: wait }, `could not ${o.what} yet; retrying`);
      await new Promise((r) => setTimeout(r, wait));
      if (o.stopped?.()) return undefined;
    }
  }
}
