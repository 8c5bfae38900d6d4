import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { InputError } from '@kaching/contracts';
import type { ApiScope } from '../routines/apikeys.js';
import { generatePassword, hashPassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords.js';

export const USER_ROLES = ['viewer', 'admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** What a role may do, in API-key scopes: viewers read (and acknowledge), admins also configure. */
export function scopesOfRole(role: UserRole): ApiScope[] {
  return role === 'admin' ? ['read', 'admin'] : ['read'];
}

export interface UserRow {
  user_id: string;
  org_id: string;
  login: string;
  role: UserRole;
  created_at: string;
  password_changed_at: string;
}

export function normaliseLogin(raw: string): string {
  const login = raw.trim().toLowerCase();
  if (login.length < 1 || login.length > 200) throw new InputError('FIELD_LENGTH', { field: 'login', rule: 'length:1..200' });
  if (/[\s\u0000-\u001f]/.test(login)) throw new InputError('FIELD_FORMAT', { field: 'login', rule: 'format:no-whitespace', message: 'A login has no spaces or control characters' });
  return login;
}

export function checkRole(role: string): UserRole {
  if (!(USER_ROLES as readonly string[]).includes(role)) throw new InputError('FIELD_ENUM', { field: 'role', rule: `enum:${USER_ROLES.join('|')}` });
  return role as UserRole;
}

export function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    throw new InputError('FIELD_LENGTH', { field: 'password', rule: `length:${PASSWORD_MIN_LENGTH}..${PASSWORD_MAX_LENGTH}`, message: `A password has ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters` });
  }
}

const COLUMNS = 'user_id, org_id, login, role, created_at, password_changed_at';

/**
 * Adds a user to an org. Without a password one is generated; either way the caller gets it back
 * once (only its scrypt hash is stored).
 */
export async function addUser(
  pool: pg.Pool,
  opts: { orgId: string; login: string; role: string; password?: string },
): Promise<{ user: UserRow; password: string }> {
  const login = normaliseLogin(opts.login);
  const role = checkRole(opts.role);
  const password = opts.password ?? generatePassword();
  checkPassword(password);
  const org = await pool.query('select 1 from org where org_id = $1', [opts.orgId]);
  if (org.rowCount === 0) throw new InputError('NOT_FOUND', { field: 'org', message: `No org ${opts.orgId}` });
  const r = await pool
    .query<UserRow>(`insert into org_user (user_id, org_id, login, role, password_hash) values ($1, $2, $3, $4, $5) returning ${COLUMNS}`, [
      randomUUID(),
      opts.orgId,
      login,
      role,
      await hashPassword(password),
    ])
    .catch((e: { code?: string }) => {
      if (e.code === '23505') throw new InputError('CONFLICT', { field: 'login', message: `A user "${login}" exists already` });
      throw e;
    });
  return { user: r.rows[0]!, password };
}

export async function listUsers(pool: pg.Pool | pg.PoolClient, orgId?: string): Promise<UserRow[]> {
  const r = await pool.query<UserRow>(
    `select ${COLUMNS} from org_user ${orgId ? 'where org_id = $1' : ''} order by org_id, login`,
    orgId ? [orgId] : [],
  );
  return r.rows;
}

async function requireUser(pool: pg.Pool, login: string): Promise<UserRow> {
  const r = await pool.query<UserRow>(`select ${COLUMNS} from org_user where login = $1`, [normaliseLogin(login)]);
  if (!r.rows[0]) throw new InputError('NOT_FOUND', { field: 'login', message: `No user "${login}"` });
  return r.rows[0];
}

/** Removes a user; their sessions go with them (and so do the JWTs issued from those sessions). */
export async function removeUser(pool: pg.Pool, login: string): Promise<UserRow> {
  const u = await requireUser(pool, login);
  await pool.query('delete from org_user where user_id = $1', [u.user_id]);
  return u;
}

/** Sets a new password (generated when none is given) and signs the user out everywhere. */
export async function setPassword(pool: pg.Pool, login: string, password?: string, now = new Date()): Promise<{ user: UserRow; password: string; sessionsRevoked: number }> {
  const u = await requireUser(pool, login);
  const pw = password ?? generatePassword();
  checkPassword(pw);
  const hash = await hashPassword(pw);
  await pool.query('update org_user set password_hash = $2, password_changed_at = $3 where user_id = $1', [u.user_id, hash, now]);
  const r = await pool.query('update user_session set revoked_at = $2 where user_id = $1 and revoked_at is null', [u.user_id, now]);
  return { user: u, password: pw, sessionsRevoked: r.rowCount ?? 0 };
}

/** Changes a user's role; their sessions are revoked so no JWT keeps the old role. */
export async function setRole(pool: pg.Pool, login: string, role: string, now = new Date()): Promise<UserRow> {
  const u = await requireUser(pool, login);
  const r = checkRole(role);
  await pool.query('update org_user set role = $2 where user_id = $1', [u.user_id, r]);
  await pool.query('update user_session set revoked_at = $2 where user_id = $1 and revoked_at is null', [u.user_id, now]);
  return { ...u, role: r };
}
