import type pg from 'pg';
import { AuthError } from '@kaching/contracts';
import { dummyHash, hashPassword, verifyPassword } from './passwords.js';
import { attemptSucceeded, countAttempt, throttleKeys, type ThrottlePolicy } from './throttle.js';
import type { UserRole } from './users.js';

export interface SignedInUser {
  user_id: string;
  org_id: string;
  login: string;
  role: UserRole;
}

/**
 * Checks a login and password. The attempt is counted (per account and per source) before anything
 * else; an unknown login costs the same scrypt run as a wrong password and gets the same answer,
 * so neither the timing nor the response tells which logins exist.
 */
export async function checkCredentials(
  pool: pg.Pool,
  opts: { login: string; password: string; source: string; now: Date; throttle: ThrottlePolicy },
): Promise<SignedInUser> {
  const keys = throttleKeys(opts.login, opts.source);
  await countAttempt(pool, keys, opts.now, opts.throttle);
  const r = await pool.query<SignedInUser & { password_hash: string }>(
    'select user_id, org_id, login, role, password_hash from org_user where login = $1',
    [opts.login.trim().toLowerCase()],
  );
  const row = r.rows[0];
  const check = await verifyPassword(opts.password, row?.password_hash ?? (await dummyHash()));
  if (!row || !check.ok) throw new AuthError('SIGNIN_FAILED');
  await attemptSucceeded(pool, keys);
  if (check.outdated) {
    await pool.query('update org_user set password_hash = $2 where user_id = $1', [row.user_id, await hashPassword(opts.password)]);
  }
  return { user_id: row.user_id, org_id: row.org_id, login: row.login, role: row.role };
}
