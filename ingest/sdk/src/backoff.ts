export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 200, maxMs: 30_000 };

/**
 * Exponential backoff with "equal jitter": half the capped exponential delay is fixed, the other half
 * random, so a fleet that lost ingest at the same moment does not come back in lockstep.
 * `attempt` counts from 0; `rand` returns [0, 1).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, rand: () => number = Math.random): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  const half = exp / 2;
  return Math.round(half + rand() * half);
}
