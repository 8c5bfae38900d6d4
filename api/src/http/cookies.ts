import type { FastifyReply, FastifyRequest } from 'fastify';

/** The value of one cookie of the request, or undefined. Our values are base64url, so no decoding. */
export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Over TLS (directly, or per X-Forwarded-Proto from a trusted proxy) cookies are Secure and __Host- prefixed. */
export function isSecure(req: FastifyRequest): boolean {
  return req.protocol === 'https';
}

export function cookieName(req: FastifyRequest, base: string): string {
  return isSecure(req) ? `__Host-${base}` : base;
}

export function setCookie(
  reply: FastifyReply,
  req: FastifyRequest,
  base: string,
  value: string,
  opts: { maxAgeS: number; sameSite: 'Lax' | 'Strict' },
): void {
  const parts = [`${cookieName(req, base)}=${value}`, 'Path=/', 'HttpOnly', `SameSite=${opts.sameSite}`, `Max-Age=${Math.max(0, Math.floor(opts.maxAgeS))}`];
  if (isSecure(req)) parts.push('Secure');
  const prev = reply.getHeader('set-cookie');
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
  void reply.header('set-cookie', [...list, parts.join('; ')]);
}

export function clearCookie(reply: FastifyReply, req: FastifyRequest, base: string): void {
  setCookie(reply, req, base, '', { maxAgeS: 0, sameSite: 'Lax' });
}

export const SESSION_COOKIE = 'kaching_session';
export const SIGNIN_COOKIE = 'kaching_signin';
