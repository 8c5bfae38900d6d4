import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashing with scrypt (memory-hard) from node:crypto: no native add-on to build or approve,
 * and the same code on every platform Node runs on. Parameters are OWASP's first scrypt choice:
 * N = 2^17, r = 8, p = 1, i.e. 128 MiB and ~0.5 s per hash on the 2-core development machine.
 * They travel with every hash ($scrypt$ln=17,r=8,p=1$salt$key), so they can be raised later and
 * older hashes still verify (and are re-hashed at the next sign-in).
 */
export const SCRYPT_PARAMS = { logN: 17, r: 8, p: 1 } as const;
const KEY_LEN = 32;
const SALT_LEN = 16;
// At most two hashes at once: 256 MiB at the default parameters, and libuv threads left for the rest.
const MAX_CONCURRENT = 2;

export interface ScryptParams {
  logN: number;
  r: number;
  p: number;
}

let running = 0;
const waiting: (() => void)[] = [];
async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * params.p + 16 * 1024 * 1024 };
  return withSlot(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        scrypt(password.normalize('NFC'), salt, KEY_LEN, opts, (err, key) => (err ? reject(err) : resolve(key)));
      }),
  );
}

export async function hashPassword(password: string, params: ScryptParams = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await derive(password, salt, params);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH_RULE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

function parse(stored: string): { params: ScryptParams; salt: Buffer; key: Buffer } | undefined {
  const m = HASH_RULE.exec(stored);
  if (!m) return undefined;
  return { params: { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }, salt: Buffer.from(m[4]!, 'base64'), key: Buffer.from(m[5]!, 'base64') };
}

/** A well-formed hash of a random password: unknown logins are checked against it, so they cost the same. */
let dummy: Promise<string> | undefined;
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  return dummy;
}

export interface PasswordCheck {
  ok: boolean;
  /** The stored hash uses weaker parameters than SCRYPT_PARAMS: store a new one after a successful check. */
  outdated: boolean;
}

/** Constant-time comparison of the derived key; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<PasswordCheck> {
  const parsed = parse(stored) ?? parse(await dummyHash())!;
  const key = await derive(password, parsed.salt, parsed.params);
  const ok = key.length === parsed.key.length && timingSafeEqual(key, parsed.key) && parse(stored) !== undefined;
  const p = parsed.params;
  return { ok, outdated: p.logN < SCRYPT_PARAMS.logN || p.r < SCRYPT_PARAMS.r || p.p < SCRYPT_PARAMS.p };
}

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 1024;

/** A random password for `user add` / `up --demo`: 20 characters from an unambiguous alphabet (~115 bits). */
export function generatePassword(): string {
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const out: string[] = [];
  while (out.length < 20) {
    for (const b of randomBytes(32)) {
      // rejection sampling keeps the distribution uniform
      if (b < 256 - (256 % alphabet.length) && out.length < 20) out.push(alphabet[b % alphabet.length]!);
    }
  }
  return out.join('');
}
