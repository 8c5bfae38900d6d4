import { createHmac, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger, PolicyDecision } from '@kaching/contracts';

export const SIGNATURE_HEADER = 'X-Kaching-Signature';
export const MAX_ATTEMPTS = 10;

/** `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` — receivers recompute and compare in constant time. */
export function signPayload(secret: string, body: string, t: number = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** Exponential backoff: 1 s, 2 s, 4 s … capped at one hour. */
export function backoffSeconds(attempts: number): number {
  return Math.min(3600, 2 ** Math.max(0, attempts - 1));
}

export async function addWebhook(
  pool: pg.Pool,
  w: { orgId: string; deploymentId?: string | null; kind: 'webhook' | 'slack'; url: string; secret: string; codes?: string[] | null },
): Promise<string> {
  const id = randomUUID();
  await pool.query(`insert into enforcer_webhook (webhook_id, org_id, deployment_id, kind, url, secret, codes) values ($1, $2, $3, $4, $5, $6, $7)`, [
    id, w.orgId, w.deploymentId ?? null, w.kind, w.url, w.secret, w.codes ?? null,
  ]);
  return id;
}

/** Delivers queued notifications off the consumer's path; each claim is a short lease so instances share the queue. */
export class Notifier {
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly pool: pg.Pool, private readonly log: Logger, private readonly intervalMs = 1000, private readonly timeoutMs = 5000) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.nudge();
      this.timer = setTimeout(tick, this.intervalMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  nudge(): void {
    if (this.busy || this.stopped) return;
    this.busy = this.deliverDue()
      .then(() => undefined)
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'notifier pass failed'))
      .finally(() => (this.busy = null));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.busy;
  }

  async deliverDue(): Promise<number> {
    const r = await this.pool.query<{ notification_id: string; attempts: number; payload: PolicyDecision; kind: string; url: string; secret: string }>(
      `update enforcer_notification n set next_attempt_at = now() + interval '60 seconds'
         from enforcer_webhook w
        where n.webhook_id = w.webhook_id and n.notification_id in (
          select notification_id from enforcer_notification where delivered_at is null and failed_at is null and next_attempt_at <= now()
           order by next_attempt_at limit 20 for update skip locked)
       returning n.notification_id, n.attempts, n.payload, w.kind, w.url, w.secret`,
    );
    await Promise.all(r.rows.map((row) => this.deliver(row)));
    return r.rows.length;
  }

  private async deliver(row: { notification_id: string; attempts: number; payload: PolicyDecision; kind: string; url: string; secret: string }): Promise<void> {
    const d = row.payload;
    const body = JSON.stringify(row.kind === 'slack' ? { text: `[KACHING ${d.code}] ${d.message}`, decision: d } : d);
    let error: string | null = null;
    try {
      const res = await fetch(row.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signPayload(row.secret, body), 'X-Kaching-Decision-Id': d.decision_id },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (!res.ok) error = `HTTP ${res.status}`;
      await res.body?.cancel().catch(() => undefined);
    } catch (err) {
      error = (err as Error).message;
    }
    const attempts = row.attempts + 1;
    if (!error) {
      await this.pool.query('update enforcer_notification set delivered_at = now(), attempts = attempts + 1, last_error = null where notification_id = $1', [row.notification_id]);
      return;
    }
    this.log.warn({ notification: row.notification_id, attempts, err: error }, 'webhook delivery failed');
    await this.pool.query(
      `update enforcer_notification set attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4),
         failed_at = case when attempts + 1 >= $5 then now() end where notification_id = $1 and $2::int > 0`,
      [row.notification_id, attempts, error, backoffSeconds(attempts), MAX_ATTEMPTS],
    );
  }
}
