import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type pg from 'pg';
import type { Names, PolicyDecision } from '@kaching/contracts';

/**
 * Publishes committed decisions: control subject (Nats-Msg-Id = decision id, so a republish after a crash
 * is dropped by the decisions stream) then KV, then marks the outbox row. Rows left by a crash go out on start.
 */
export class OutboxPublisher {
  private js: JetStreamClient;
  private running: Promise<number> | null = null;
  private again = false;

  constructor(nc: NatsConnection, private readonly pool: pg.Pool, private readonly n: Names, private readonly kv: KV, private readonly onPublished?: (d: PolicyDecision) => void) {
    this.js = jetstream(nc);
  }

  /** Flushes everything pending; concurrent calls coalesce into one more pass. */
  flush(): Promise<number> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let total = 0;
      try {
        do {
          this.again = false;
          total += await this.pass();
        } while (this.again);
      } finally {
        this.running = null;
      }
      return total;
    })();
    return this.running;
  }

  private async pass(): Promise<number> {
    let total = 0;
    for (;;) {
      const client = await this.pool.connect();
      let n = 0;
      try {
        await client.query('begin');
        const r = await client.query<{ outbox_id: string; msg_id: string; kv_key: string; payload: PolicyDecision; deployment_id: string }>(
          `select outbox_id, msg_id, kv_key, payload, deployment_id from enforcer_outbox where published_at is null
            order by outbox_id limit 200 for update skip locked`,
        );
        for (const row of r.rows) {
          const body = JSON.stringify(row.payload);
          const h = natsHeaders();
          h.set('Kaching-Decision-Code', row.payload.code);
          await this.js.publish(this.n.controlSubject(row.deployment_id), body, { msgID: row.msg_id, headers: h });
          await this.kv.put(row.kv_key, body);
          this.onPublished?.(row.payload);
        }
        if (r.rows.length) await client.query('update enforcer_outbox set published_at = now() where outbox_id = any($1::bigint[])', [r.rows.map((x) => x.outbox_id)]);
        await client.query('commit');
        n = r.rows.length;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
      total += n;
      if (n < 200) return total;
    }
  }
}
