import { createHash, randomBytes, randomUUID } from 'node:crypto';

/** Ingest tokens: issued by the API and the CLI, checked by ingest. Only hashIngestSecret(secret) is stored. */

/** `kt_<token_id uuid without dashes>_<secret base64url 32 bytes>` (DESIGN: ingest tokens). */
const TOKEN_RE = /^kt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

export interface ParsedToken {
  tokenId: string;
  secret: string;
}

export function parseIngestToken(token: string): ParsedToken | null {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const h = m[1]!;
  const tokenId = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  return { tokenId, secret: m[2]! };
}

export function hashIngestSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function newIngestToken(): { tokenId: string; token: string; hash: Buffer } {
  const tokenId = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  return { tokenId, token: `kt_${tokenId.replace(/-/g, '')}_${secret}`, hash: hashIngestSecret(secret) };
}

export const INGEST_SCOPES = ['ingest:usage', 'ingest:jobs', 'ingest:otlp'] as const;
export type IngestScope = (typeof INGEST_SCOPES)[number];
