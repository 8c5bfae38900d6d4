import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { channelKey, DELIVERY_DEFAULTS, deliverDue, sealSecret, type DeliveryOptions, type Logger } from '@kaching/contracts';

/**
 * Adds a channel with a given secret (tests and scripts; people use `kaching channel add` or POST /v1/channels,
 * which generate the secret). The secret is stored encrypted like theirs.
 */
export async function addWebhook(
  pool: pg.Pool,
  w: { orgId: string; deploymentId?: string | null; kind: 'webhook' | 'slack'; url: string; secret: string; codes?: string[] | null; severities?: string[] | null },
): Promise<string> {
  const id = randomUUID();
  const key = await channelKey(pool);
  await pool.query(`insert into enforcer_webhook (webhook_id, org_id, deployment_id, kind, url, secret_enc, codes, severities) values ($1, $2, $3, $4, $5, $6, $7, $8)`, [
    id, w.orgId, w.deploymentId ?? null, w.kind, w.url, sealSecret(key, id, w.secret), w.codes ?? null, w.severities ?? null,
  ]);
  return id;
}

export interface NotifierOptions extends DeliveryOptions {
  /** How often due deliveries are looked for (besides the nudge after each committed batch). */
  intervalMs: number;
}
export const NOTIFIER_DEFAULTS: NotifierOptions = { ...DELIVERY_DEFAULTS, intervalMs: 1000 };

/**
 * Delivers queued notifications off the consumer's path (contracts' channel delivery: Standard Webhooks
 * signatures, Slack JSON, backoff, delivery log). Each claim is a short lease so instances share the queue.
 */
export class Notifier {
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;
  private stopped = false;
  private key: Buffer | null = null;
  private readonly o: NotifierOptions;

  constructor(private readonly pool: pg.Pool, private readonly log: Logger, o: Partial<NotifierOptions> = {}) {
    this.o = { ...NOTIFIER_DEFAULTS, ...o };
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.nudge();
      this.timer = setTimeout(tick, this.o.intervalMs);
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
    this.key ??= await channelKey(this.pool);
    const r = await deliverDue(this.pool, this.key, this.o);
    // the error is the receiver's answer or a connection code: never a URL or a secret
    for (const f of r.failed) this.log.warn({ delivery: f.id, err: f.error }, 'channel delivery failed; retrying with backoff');
    return r.attempted;
  }
}
