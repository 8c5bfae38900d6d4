import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison of a presented secret against a stored SHA-256 hash. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = sha256(secret);
  return storedHash.length === h.length && timingSafeEqual(h, storedHash);
}

export const API_KEY_PREFIX = 'ka_';
const API_KEY_RULE = /^ka_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

/** Splits `ka_<key_id>_<secret>`; undefined when it is not shaped like an API key. */
export function parseApiKey(raw: string): { keyId: string; secret: string } | undefined {
  const m = API_KEY_RULE.exec(raw);
  if (!m) return undefined;
  return { keyId: m[1]!, secret: m[2]! };
}

export function newApiKeyId(): string {
  return randomBytes(12).toString('hex');
}
