import type pg from 'pg';
import { RateLimitError } from '@kaching/contracts';
import { sha256 } from '../routines/secrets.js';

export interface ThrottlePolicy {
  /** Attempts per account (known or unknown login) per window. */
  accountLimit: number;
  /** Attempts per source address per window. */
  sourceLimit: number;
  windowS: number;
}

export interface ThrottleKeys {
  account: string;
  source: string;
}

/** Keys of an attempt. The login is hashed: the table never holds what people typed. */
export function throttleKeys(login: string, source: string): ThrottleKeys {
  return { account: `account:${sha256(login.trim().toLowerCase()).toString('hex')}`, source: `source:${source}` };
}

/**
 * Counts a sign-in attempt against its account and its source before the password is checked, in
 * Postgres so every API instance shares the count. Throws SIGNIN_THROTTLED (429, Retry-After) when
 * either is over its limit: the password is then not checked at all, right or wrong, and the answer is
 * the same whether the login exists or not.
 */
export async function countAttempt(pool: pg.Pool, keys: ThrottleKeys, now: Date, policy: ThrottlePolicy): Promise<void> {
  const r = await pool.query<{ key: string; attempts: number; window_start: Date }>(
    `insert into signin_throttle as t (key, window_start, attempts)
     select k, $2, 1 from unnest($1::text[]) k
     on conflict (key) do update set
       attempts = case when t.window_start <= $2::timestamptz - make_interval(secs => $3) then 1 else t.attempts + 1 end,
       window_start = case when t.window_start <= $2::timestamptz - make_interval(secs => $3) then $2 else t.window_start end
     returning key, attempts, window_start`,
    [[keys.account, keys.source], now, policy.windowS],
  );
  let retryAt = 0;
  for (const row of r.rows) {
    const limit = row.key === keys.account ? policy.accountLimit : policy.sourceLimit;
    if (row.attempts > limit) retryAt = Math.max(retryAt, row.window_start.getTime() + policy.windowS * 1000);
  }
  if (retryAt > 0) {
    const retryAfterS = Math.max(1, Math.ceil((retryAt - now.getTime()) / 1000));
    throw new RateLimitError('SIGNIN_THROTTLED', { retryAfterS });
  }
}

/** A successful sign-in clears its account's count and takes itself off its source's. */
export async function attemptSucceeded(pool: pg.Pool, keys: ThrottleKeys): Promise<void> {
  await pool.query('delete from signin_throttle where key = $1', [keys.account]);
  await pool.query('update signin_throttle set attempts = greatest(attempts - 1, 0) where key = $1', [keys.source]);
}

/** Drops windows that have ended (housekeeping; an ended window restarts at 1 anyway). */
export async function sweepThrottle(pool: pg.Pool, now: Date, policy: ThrottlePolicy): Promise<number> {
  const r = await pool.query(`delete from signin_throttle where window_start <= $1::timestamptz - make_interval(secs => $2)`, [now, policy.windowS]);
  return r.rowCount ?? 0;
}
