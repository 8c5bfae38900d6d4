import Fastify from 'fastify';

/**
 * The HTTP ceiling: a Fastify route that parses the same JSON body and answers 202 without doing anything.
 * Client and server share this process (as in the ingest path measurement), so the two are comparable.
 */
export async function noopFastifyPost(body: string, requests: number, concurrency: number): Promise<{ perSecond: number; p50Ms: number; p99Ms: number }> {
  const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024, forceCloseConnections: true });
  app.post('/noop', async (_req, reply) => reply.code(202).send({ ok: true }));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        const s = performance.now();
        const r = await fetch(`${url}/noop`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        await r.arrayBuffer();
        lat.push(performance.now() - s);
      }
    }),
  );
  const ms = performance.now() - t0;
  await app.close();
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round((lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0) * 100) / 100;
  return { perSecond: Math.round((requests / ms) * 1000), p50Ms: q(0.5), p99Ms: q(0.99) };
}
