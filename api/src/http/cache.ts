import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';

export const READ_CACHE_CONTROL = 'private, max-age=60';

function matches(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag;
  });
}

/** Reads carry Cache-Control and a strong ETag of the exact body; If-None-Match on it answers 304. */
export function installCaching(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return payload;
    if (!reply.request.routeOptions.config?.cache || reply.statusCode !== 200) return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    const etag = `"${createHash('sha256').update(payload).digest('base64url')}"`;
    reply.header('etag', etag).header('cache-control', READ_CACHE_CONTROL).header('vary', 'Authorization, Cookie');
    const inm = req.headers['if-none-match'];
    if (inm && matches(inm, etag)) {
      reply.code(304);
      reply.removeHeader('content-length');
      reply.removeHeader('content-type');
      return '';
    }
    return payload;
  });
}
