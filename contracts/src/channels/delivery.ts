import type pg from 'pg';
import { openSecret } from './secrets.js';
import { webhookHeaders } from './signer.js';
import { slackBody, webhookBody, type DeliveryPayload } from './message.js';

export interface DeliveryOptions {
  /** One HTTP attempt's timeout. */
  timeoutMs: number;
  /** Backoff after the n-th failed attempt: base·2^(n-1), at most maxMs. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A delivery still failing this long after it was queued is given up (failed_at); until then it is retried. */
  giveUpAfterMs: number;
}
export const DELIVERY_DEFAULTS: DeliveryOptions = { timeoutMs: 5000, backoffBaseMs: 1000, backoffMaxMs: 300_000, giveUpAfterMs: 3 * 86_400_000 };

export function backoffMs(attempts: number, o: Pick<DeliveryOptions, 'backoffBaseMs' | 'backoffMaxMs'> = DELIVERY_DEFAULTS): number {
  return Math.min(o.backoffMaxMs, o.backoffBaseMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
}

/** One row of the delivery log, as the API and CLI show it. */
export interface Delivery {
  delivery_id: string;
  channel_id: string;
  decision_id: string;
  /** delivered; retrying (queued, next_attempt_at set); failed (given up). */
  status: 'delivered' | 'retrying' | 'failed';
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  last_attempt_at: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
  created_at: string;
}

export const DELIVERY_COLUMNS = `n.notification_id::text as delivery_id, n.webhook_id as channel_id, n.decision_id,
  case when n.delivered_at is not null then 'delivered' when n.failed_at is not null then 'failed' else 'retrying' end as status,
  n.attempts, n.last_status, n.last_error, n.last_attempt_at, case when n.delivered_at is null and n.failed_at is null then n.next_attempt_at end as next_attempt_at,
  n.delivered_at, n.created_at`;

export interface ClaimedDelivery {
  notification_id: string;
  webhook_id: string;
  attempts: number;
  created_at: Date;
  payload: DeliveryPayload;
  kind: string;
  url: string;
  secret: string | null;
  secret_enc: Buffer | null;
}

const LEASE_S = 60;

/** Claims due deliveries for one pass; the claim is a lease (next_attempt_at moves on) so instances share the queue. */
export async function claimDue(pool: pg.Pool, limit = 20): Promise<ClaimedDelivery[]> {
  const r = await pool.query<ClaimedDelivery>(
    `update enforcer_notification n set next_attempt_at = now() + make_interval(secs => ${LEASE_S})
       from enforcer_webhook w
      where n.webhook_id = w.webhook_id and n.notification_id in (
        select notification_id from enforcer_notification where delivered_at is null and failed_at is null and next_attempt_at <= now()
         order by next_attempt_at limit $1 for update skip locked)
     returning n.notification_id::text, n.webhook_id, n.attempts, n.created_at, n.payload, w.kind, w.url, w.secret, w.secret_enc`,
    [limit],
  );
  return r.rows;
}

/** One HTTP attempt: Standard Webhooks signed JSON, or Slack's incoming-webhook JSON. Never throws. */
export async function attempt(key: Buffer, d: ClaimedDelivery, timeoutMs: number): Promise<{ status: number | null; error: string | null }> {
  try {
    const body = d.kind === 'slack' ? slackBody(d.payload) : webhookBody(d.payload);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'kaching-notifier' };
    if (d.kind === 'webhook') {
      const secret = d.secret_enc ? openSecret(key, d.webhook_id, d.secret_enc) : d.secret!;
      Object.assign(headers, webhookHeaders(secret, `msg_${d.notification_id}`, body));
    }
    const res = await fetch(d.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel().catch(() => undefined);
    return { status: res.status, error: res.ok ? null : `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { status: null, error: String(e.cause?.code ?? (e.name === 'TimeoutError' ? 'timeout' : e.message)).slice(0, 200) };
  }
}

/** Writes an attempt's outcome: delivered, or the next retry after the backoff, or given up past the give-up age. */
export async function record(pool: pg.Pool, d: ClaimedDelivery, r: { status: number | null; error: string | null }, o: DeliveryOptions): Promise<void> {
  if (!r.error) {
    await pool.query(
      `update enforcer_notification set delivered_at = now(), attempts = attempts + 1, last_status = $2, last_error = null, last_attempt_at = now() where notification_id = $1`,
      [d.notification_id, r.status],
    );
    return;
  }
  const wait = backoffMs(d.attempts + 1, o);
  const giveUp = Date.now() + wait - d.created_at.getTime() > o.giveUpAfterMs;
  await pool.query(
    `update enforcer_notification set attempts = attempts + 1, last_status = $2, last_error = $3, last_attempt_at = now(),
       next_attempt_at = now() + make_interval(secs => $4::double precision), failed_at = case when $5::boolean then now() end
     where notification_id = $1`,
    [d.notification_id, r.status, r.error, wait / 1000, giveUp],
  );
}

/** Claims, attempts and records every due delivery once; returns how many were attempted. */
export async function deliverDue(pool: pg.Pool, key: Buffer, o: DeliveryOptions = DELIVERY_DEFAULTS): Promise<{ attempted: number; failed: { id: string; error: string }[] }> {
  const rows = await claimDue(pool);
  const failed: { id: string; error: string }[] = [];
  await Promise.all(
    rows.map(async (d) => {
      const r = await attempt(key, d, o.timeoutMs);
      await record(pool, d, r, o);
      if (r.error) failed.push({ id: d.notification_id, error: r.error });
    }),
  );
  return { attempted: rows.length, failed };
}
