import { createHash } from 'node:crypto';
import { signingBytes } from '../crypto/ed25519.js';
import type { SignedEvent } from '../types/usage.js';
import { epochMicros } from '../time/rfc3339.js';

/** Hex SHA-256 of the signing bytes, first 32 hex chars: identifies one exact revision of an event. */
export function eventDigest(event: SignedEvent): string {
  return digestOfSigningBytes(signingBytes(event));
}

/** eventDigest from already computed signingBytes (ingest has them from the signature check). */
export function digestOfSigningBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/** Nats-Msg-Id: an exact resend gives the same id (JetStream drops it), any change gives a new one. */
export function messageId(event: SignedEvent, digest?: string): string {
  const d = digest ?? eventDigest(event);
  return event.schema === 'kaching.v1.job_status'
    ? `${event.deployment_id}:${event.job.correlation_id}:hb:${d}`
    : `${event.deployment_id}:${event.job.correlation_id}:${d}`;
}

/** The instant a revision speaks for: usage ended_at ?? started_at; job_status observed_at. */
export function revisionTimestamp(event: SignedEvent): string {
  return event.schema === 'kaching.v1.job_status' ? event.observed_at : (event.job.ended_at ?? event.job.started_at);
}

// Epoch µs of year 9999 has 18 digits; pad to that so string order is numeric order.
const MICROS_WIDTH = 18;

/**
 * Orders revisions of one correlation id by plain string comparison: later timestamp first, then
 * running (0) < terminal (1), then the digest as a deterministic tie-break. Equal only for an exact resend.
 * Pass `digest` (eventDigest) when already known to skip re-canonicalising.
 */
export function revisionKey(event: SignedEvent, digest?: string): string {
  let us = epochMicros(revisionTimestamp(event)) ?? 0n;
  if (us < 0n) us = 0n;
  const rank = event.job.status === 'running' ? '0' : '1';
  return `${us.toString().padStart(MICROS_WIDTH, '0')}.${rank}.${digest ?? eventDigest(event)}`;
}

/** Negative when `a` is an older revision than `b`, 0 for the same revision, positive when newer. */
export function compareRevisions(a: SignedEvent | string, b: SignedEvent | string): number {
  const ka = typeof a === 'string' ? a : revisionKey(a);
  const kb = typeof b === 'string' ? b : revisionKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * The digest inside a message's Nats-Msg-Id when that id is exactly `messageId(event, digest)`. Consumers use it
 * instead of re-canonicalising and hashing every event (the costliest step of decoding); any mismatch falls back.
 */
export function digestFromMessageId(event: SignedEvent, msgId: string | undefined | null): string | undefined {
  if (!msgId) return undefined;
  const digest = /:([0-9a-f]{32})$/.exec(msgId)?.[1];
  return digest !== undefined && messageId(event, digest) === msgId ? digest : undefined;
}
