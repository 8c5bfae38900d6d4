import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/**
 * A real HTTP billing receiver: records every request, answers with `respond` (default 200), and keeps the
 * accepted ones (2xx) by idempotency key — what a billing service that dedupes by key would count.
 * `stop()` closes the socket (connection refused) and `listen()` binds the same port again.
 */
export class BillingReceiver {
  readonly requests: Received[] = [];
  readonly accepted = new Map<string, Received[]>();
  respond: (r: { headers: IncomingHttpHeaders; body: string; attempt: number }) => number = () => 200;
  private server: Server | null = null;
  private attempts = new Map<string, number>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/usage`;
  }

  async listen(port = this.port): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const key = String(req.headers['idempotency-key'] ?? '');
        const attempt = (this.attempts.get(key) ?? 0) + 1;
        this.attempts.set(key, attempt);
        const status = this.respond({ headers: req.headers, body, attempt });
        const r = { headers: req.headers, body, status };
        this.requests.push(r);
        if (status >= 200 && status < 300) this.accepted.set(key, [...(this.accepted.get(key) ?? []), r]);
        res.writeHead(status, { 'content-type': 'application/json' }).end(status < 300 ? '{"ok":true}' : '{"error":"unavailable"}');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
