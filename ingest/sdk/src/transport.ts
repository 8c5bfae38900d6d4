import http from 'node:http';
import https from 'node:https';
import type { BatchSignature, SignedEvent, Unsigned } from './protocol/mod.js';

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

/** Events of one batch: each signed (`sig`), or none signed and the batch signed once (`batchSig`). */
export type BatchEvents = (SignedEvent | Unsigned<SignedEvent>)[];

export interface Transport {
  sendBatch(events: BatchEvents, batchSig?: BatchSignature): Promise<BatchOutcome>;
  close(): Promise<void>;
}

/** The body of POST /v1/ingest/batch (and of a NATS batch request). */
export function batchBody(events: BatchEvents, batchSig?: BatchSignature): string {
  return JSON.stringify(batchSig ? { events, batch_sig: batchSig } : { events });
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

/**
 * HTTP(S) with Node's own client and a keep-alive pool whose idle sockets close after `idleMs`:
 * batches reuse connections, yet an idle agent never holds ingest's graceful shutdown hostage.
 */
export class HttpTransport implements Transport {
  private readonly url: URL;
  private readonly agent: http.Agent;
  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs: number,
    idleMs = 1000,
    /** PEM contents: the CA to trust for ingest, and a client certificate + key for mTLS. */
    tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } = {},
  ) {
    this.url = new URL(`${baseUrl.replace(/\/+$/, '')}/v1/ingest/batch`);
    const pool = { keepAlive: true, maxSockets: 4, timeout: idleMs };
    this.agent = this.url.protocol === 'https:' ? new https.Agent({ ...pool, ...tls }) : new http.Agent(pool);
  }

  sendBatch(events: BatchEvents, batchSig?: BatchSignature): Promise<BatchOutcome> {
    const body = Buffer.from(batchBody(events, batchSig), 'utf8');
    const request = this.url.protocol === 'https:' ? https.request : http.request;
    return new Promise<BatchOutcome>((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(new TransportError(`ingest unreachable: ${e.message}`));
      };
      const req = request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${this.token}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', fail);
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            const ra = res.headers['retry-after'];
            resolve(interpret(res.statusCode ?? 0, parsed, Array.isArray(ra) ? ra[0] : ra, events.length));
          });
        },
      );
      // Our own deadline: the agent's socket timeout only governs idle keep-alive sockets.
      const timer = setTimeout(() => fail(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on('error', fail);
      req.end(body);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** The NATS path: a request to `<ns>.ingest.<deployment>`; the client library is loaded only when used. */
export class NatsTransport implements Transport {
  private nc: Promise<import('@nats-io/transport-node').NatsConnection> | undefined;
  constructor(
    private readonly servers: string,
    private readonly subject: string,
    private readonly token: string,
    private readonly timeoutMs: number,
    /** NATS user/password and TLS (PEM contents), for a server run like deploy/nats/secure.conf. */
    private readonly auth: { user?: string; pass?: string; tls?: { ca?: string; cert?: string; key?: string } } = {},
  ) {}

  private conn() {
    const { user, pass, tls } = this.auth;
    this.nc ??= import('@nats-io/transport-node').then((m) =>
      m.connect({
        servers: this.servers.split(',').map((s) => s.trim()).filter(Boolean),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        waitOnFirstConnect: true,
        name: 'kaching-agent',
        ...(user ? { user, ...(pass ? { pass } : {}) } : {}),
        ...(tls && (tls.ca || tls.cert) ? { tls } : {}),
      }),
    );
    return this.nc;
  }

  async sendBatch(events: BatchEvents, batchSig?: BatchSignature): Promise<BatchOutcome> {
    const { headers } = await import('@nats-io/transport-node');
    let reply: { status: number; body: unknown; headers?: Record<string, string> };
    try {
      const nc = await this.conn();
      const h = headers();
      h.set('Authorization', `Bearer ${this.token}`);
      h.set('Kaching-Endpoint', 'batch');
      const msg = await nc.request(this.subject, batchBody(events, batchSig), { timeout: this.timeoutMs, headers: h });
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
