import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Hit {
  headers: Record<string, string>;
  body: string;
  status: number;
}

/**
 * A real local HTTP receiver for channel deliveries. `answer` decides each response status (e.g. 503 while
 * "down"); every request is recorded with the status it got.
 */
export async function startReceiver(answer: (hit: Omit<Hit, 'status'>, n: number) => number = () => 204): Promise<{ url: string; hits: Hit[]; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const h = { headers: req.headers as Record<string, string>, body };
      const status = answer(h, hits.length);
      hits.push({ ...h, status });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    hits,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
