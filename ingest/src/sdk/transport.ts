import type { SignedEvent } from '@kaching/contracts';

/** One event's answer from ingest. */
export interface ItemOutcome {
  status: number;
  duplicate?: boolean;
  error?: { code: string; message: string; field?: string; rule?: string };
}

/** A batch's answer: per-item outcomes, or one status for the whole request. */
export type BatchOutcome =
  | { kind: 'items'; items: ItemOutcome[]; retryAfterMs?: number }
  | { kind: 'whole'; status: number; error?: ItemOutcome['error']; retryAfterMs?: number };

export interface Transport {
  sendBatch(events: SignedEvent[]): Promise<BatchOutcome>;
  close(): Promise<void>;
}

/** Thrown when the request never got an answer (connection refused, timeout, no responders). */
export class TransportError extends Error {
  override name = 'TransportError';
}

interface BatchBody {
  results?: { index: number; status: number; duplicate?: boolean; error?: ItemOutcome['error'] }[];
  error?: ItemOutcome['error'];
}

export function interpret(status: number, body: unknown, retryAfter: string | null | undefined, n: number): BatchOutcome {
  const retryAfterMs = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
  const b = (body ?? {}) as BatchBody;
  if (Array.isArray(b.results) && b.results.length === n) {
    const items: ItemOutcome[] = new Array(n);
    for (const r of b.results) items[r.index] = { status: r.status, duplicate: r.duplicate, error: r.error };
    if (items.every(Boolean)) return { kind: 'items', items, retryAfterMs };
  }
  return { kind: 'whole', status, error: b.error, retryAfterMs };
}

export class HttpTransport implements Transport {
  private readonly url: string;
  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {
    this.url = `${baseUrl.replace(/\/+$/, '')}/v1/ingest/batch`;
  }

  async sendBatch(events: SignedEvent[]): Promise<BatchOutcome> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new TransportError(`ingest unreachable: ${(e as Error).message}`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    return interpret(res.status, body, res.headers.get('retry-after'), events.length);
  }

  async close(): Promise<void> {}
}

/** The NATS path: a request to `<ns>.ingest.<deployment>`; the client library is loaded only when used. */
export class NatsTransport implements Transport {
  private nc: Promise<import('@nats-io/transport-node').NatsConnection> | undefined;
  constructor(
    private readonly servers: string,
    private readonly subject: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {}

  private conn() {
    this.nc ??= import('@nats-io/transport-node').then((m) =>
      m.connect({ servers: this.servers, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true, name: 'kaching-agent' }),
    );
    return this.nc;
  }

  async sendBatch(events: SignedEvent[]): Promise<BatchOutcome> {
    const { headers } = await import('@nats-io/transport-node');
    let reply: { status: number; body: unknown; headers?: Record<string, string> };
    try {
      const nc = await this.conn();
      const h = headers();
      h.set('Authorization', `Bearer ${this.token}`);
      h.set('Kaching-Endpoint', 'batch');
      const msg = await nc.request(this.subject, JSON.stringify({ events }), { timeout: this.timeoutMs, headers: h });
      reply = msg.json();
    } catch (e) {
      throw new TransportError(`ingest unreachable over NATS: ${(e as Error).message}`);
    }
    return interpret(reply.status, reply.body, reply.headers?.['retry-after'], events.length);
  }

  async close(): Promise<void> {
    const nc = await this.nc?.catch(() => undefined);
    await nc?.close().catch(() => undefined);
  }
}
