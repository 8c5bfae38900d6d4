import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface OpsServer {
  /** http://host:port (127.0.0.1 when bound to every interface). */
  url: string;
  close(): Promise<void>;
}

/**
 * /metrics, /healthz and /readyz of a service without an HTTP API of its own (enforcer, archiver). `readiness`
 * says whether the service is ready and what /readyz reports besides (503 while not ready).
 */
export async function startOpsServer(o: {
  port: number;
  host: string;
  registry: Registry;
  readiness(): { ready: boolean; body: Record<string, unknown> };
}): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.setHeader('content-type', o.registry.contentType);
        res.end(await o.registry.metrics());
      } else if (req.url === '/healthz') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      } else if (req.url === '/readyz') {
        const r = o.readiness();
        res.statusCode = r.ready ? 200 : 503;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ready: r.ready, ...r.body }));
      } else {
        res.statusCode = 404;
        res.end();
      }
    })().catch(() => {
      res.statusCode = 500;
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${o.host === '0.0.0.0' ? '127.0.0.1' : o.host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
