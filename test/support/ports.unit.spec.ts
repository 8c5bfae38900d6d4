import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { candidatePort, onFreePort, spawnReportingPort } from './ports.js';

const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });

describe('test ports', () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it('a port picked and released can be taken before our server binds it (the old freePort race); onFreePort then starts on another one', async () => {
    // the old pattern, with another process binding the port in between
    const picked = await candidatePort();
    servers.push(await listen(picked));
    await expect(listen(picked)).rejects.toMatchObject({ code: 'EADDRINUSE' });

    // the same intrusion under onFreePort: the start is retried on a fresh port
    const tried: number[] = [];
    const ours = await onFreePort(async (port) => {
      tried.push(port);
      if (tried.length === 1) servers.push(await listen(port)); // the intruder wins the first port
      return listen(port);
    });
    servers.push(ours);
    expect(tried).toHaveLength(2);
    expect((ours.address() as { port: number }).port).toBe(tried[1]);
  });

  it('a child that binds port 0 itself reports the port it got (nats-server -p -1)', async () => {
    const { child, port } = await spawnReportingPort('nats-server', ['-a', '127.0.0.1', '-p', '-1'], {}, /Listening for client connections on [^\s]+:(\d+)/);
    try {
      expect(port).toBeGreaterThan(0);
      await expect(listen(port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
