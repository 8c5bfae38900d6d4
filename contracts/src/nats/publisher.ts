import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface PublishAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/** The append was not acknowledged: a JetStream error, no stream, a timeout or a closed publisher. */
export class PublishFailed extends Error {
  constructor(
    message: string,
    readonly reason: 'jetstream' | 'no_responders' | 'timeout' | 'closed',
  ) {
    super(message);
    this.name = 'PublishFailed';
  }
}

interface Pending {
  resolve(ack: PublishAck): void;
  reject(err: PublishFailed): void;
  deadline: number;
}

const decoder = new TextDecoder();

/**
 * JetStream publish with message id, answered only by the server's PubAck. Equivalent to
 * `jetstream(nc).publish(subject, data, { msgID, headers })`, without that call's per-message costs:
 * every append shares one wildcard reply subscription and one timeout sweep, instead of a request
 * object, a timer and an Error with a captured stack per message (nats.js builds one even for a
 * successful request). Measured here: 46–50k appends/s at 18 µs of client CPU each, against
 * 20–21k/s at 57–60 µs for the stock call (`kaching bench` shows both ceilings).
 */
export class JetStreamPublisher {
  private readonly prefix = createInbox();
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private outbox: { subject: string; data: Uint8Array; token: string; headers: ReturnType<typeof natsHeaders> }[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, m) => {
        if (!err) this.onReply(m);
      },
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(25, Math.min(1000, Math.floor(timeoutMs / 4))));
    this.sweeper.unref();
  }

  /** Resolves with the PubAck; rejects with PublishFailed. */
  publish(subject: string, data: Uint8Array, msgId: string, headers?: Record<string, string>): Promise<PublishAck> {
    if (this.closed) return Promise.reject(new PublishFailed('publisher closed', 'closed'));
    const h = natsHeaders();
    if (headers) for (const k in headers) h.set(k, headers[k]!);
    h.set('Nats-Msg-Id', msgId);
    const token = (this.next++).toString(36);
    return new Promise<PublishAck>((resolve, reject) => {
      // Same timeout for every append: the map's insertion order is deadline order, so the sweep stops early.
      this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs });
      this.outbox.push({ subject, data, token, headers: h });
      if (this.outbox.length === 1) setImmediate(this.drain);
    });
  }

  /**
   * Appends asked for during one turn of the event loop go to the connection together, after its I/O: nats.js
   * writes what is buffered in one socket write per microtask checkpoint, and single events arriving in
   * requests of their own would otherwise each pay a write.
   */
  private readonly drain = (): void => {
    const out = this.outbox;
    this.outbox = [];
    if (this.closed) return;
    for (const m of out) {
      try {
        this.nc.publish(m.subject, m.data, { reply: `${this.prefix}.${m.token}`, headers: m.headers });
      } catch (err) {
        const p = this.pending.get(m.token);
        this.pending.delete(m.token);
        p?.reject(new PublishFailed((err as Error).message, 'closed'));
      }
    }
  };

  get inFlight(): number {
    return this.pending.size;
  }

  private onReply(m: Msg): void {
    const token = m.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // answered after its timeout: the caller was told 503 and may retry (same message id)
    this.pending.delete(token);
    if (m.headers?.hasError) {
      const code = m.headers.code;
      p.reject(new PublishFailed(`${code} ${m.headers.description}`, code === 503 ? 'no_responders' : 'jetstream'));
      return;
    }
    let r: { stream?: string; seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } };
    try {
      r = JSON.parse(decoder.decode(m.data));
    } catch {
      p.reject(new PublishFailed('unreadable PubAck', 'jetstream'));
      return;
    }
    if (r.error || typeof r.seq !== 'number' || !r.stream) {
      p.reject(new PublishFailed(r.error?.description ?? 'invalid PubAck', 'jetstream'));
      return;
    }
    p.resolve({ stream: r.stream, seq: r.seq, duplicate: r.duplicate === true });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(token);
      p.reject(new PublishFailed(`no PubAck within ${this.timeoutMs} ms`, 'timeout'));
    }
  }

  /** Stops the reply subscription; appends still waiting fail (they may or may not be stored). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    this.outbox = [];
    for (const p of this.pending.values()) p.reject(new PublishFailed('publisher closed', 'closed'));
    this.pending.clear();
  }
}
