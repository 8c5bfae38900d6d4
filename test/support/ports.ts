import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * Ports for servers that tests start. A "free port" found by binding port 0 and closing it again is free only
 * at that instant: another process (tests run in parallel) may bind it before our child does. So either the
 * child binds port 0 itself and reports what it got (`spawnReportingPort`, services started with port 0), or
 * the start is retried on another port when the port turned out taken (`onFreePort`).
 */

/** Thrown by a start function when its server could not bind the port it was given. */
export class PortTakenError extends Error {
  override name = 'PortTakenError';
}

export function isAddrInUse(err: unknown): boolean {
  if (err instanceof PortTakenError) return true;
  const e = err as { code?: string; message?: string } | undefined;
  return e?.code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(String(e?.message ?? ''));
}

/**
 * A port nothing listened on a moment ago: a candidate only. Use it as "an address where nothing answers";
 * to bind a server, go through onFreePort or port 0.
 */
export function candidatePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs `start(port)` on a port that was free a moment ago, and again on another one while the port turns out taken. */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    const port = await candidatePort();
    try {
      return await start(port);
    } catch (err) {
      if (!isAddrInUse(err) || i >= attempts) throw err;
    }
  }
}

/** `onFreePort` for a start that needs several distinct ports at once. */
export async function onFreePorts<T>(n: number, start: (ports: number[]) => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    const ports: number[] = [];
    while (ports.length < n) {
      const p = await candidatePort();
      if (!ports.includes(p)) ports.push(p);
    }
    try {
      return await start(ports);
    } catch (err) {
      if (!isAddrInUse(err) || i >= attempts) throw err;
    }
  }
}

/**
 * Spawns a child that binds a port of its own choosing (port 0, nats-server's `-p -1`) and resolves once its
 * stdout or stderr names it: `pattern`'s first group is the port.
 */
export function spawnReportingPort(
  cmd: string,
  args: string[],
  opts: SpawnOptions,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${cmd} did not report its port within ${timeoutMs} ms: ${out.slice(-2000)}`)), timeoutMs);
    const onData = (b: Buffer) => {
      out = (out + b.toString()).slice(-64 * 1024);
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), output: () => out });
      }
    };
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`${cmd} exited (${code ?? signal}) before reporting its port: ${out.slice(-2000)}`)));
  });
}
