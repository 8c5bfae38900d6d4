import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createPool, ensureEventsStream, migrate, names } from '@kaching/contracts';

/** Private server instances for fault tests: never the shared ones on 4222/5432. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitPort(port: number, timeoutMs = 20_000): Promise<void> {
  const { connect } = await import('node:net');
  const t0 = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class PrivateNats {
  private proc: ChildProcess | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), 'kaching-nats-'));
  constructor(readonly port: number) {}
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.dir], { stdio: 'ignore' });
    await waitPort(this.port);
  }
  /** SIGKILL: acked messages are in the file store (fsync caveat aside) and must survive. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGKILL');
    });
    this.proc = null;
  }
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A throwaway Postgres cluster run as the `postgres` user (we are root). */
export class PrivatePostgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'kaching-pg-'));
  constructor(readonly port: number) {
    chownSync(this.dir, 101, 104);
  }
  url(db = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }
  private pg(tool: string, args: string[]): void {
    execFileSync('runuser', ['-u', 'postgres', '--', join(PG_BIN, tool), ...args], { stdio: 'ignore' });
  }
  init(): void {
    this.pg('initdb', ['-D', join(this.dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }
  start(): void {
    this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-l', join(this.dir, 'log'), '-w', '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`, 'start']);
  }
  /** Crash-like stop (immediate: no checkpoint, recovery on start). */
  stopImmediate(): void {
    this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop']);
  }
  destroy(): void {
    try {
      this.stopImmediate();
    } catch {
      // already down
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A private NATS and Postgres with a migrated database `kaching`, a pool and a reconnecting NATS connection. */
export interface PrivateWorld {
  nats: PrivateNats;
  pgs: PrivatePostgres;
  databaseUrl: string;
  pool: pg.Pool;
  nc: NatsConnection;
  /** Closes the connections and removes both servers. */
  close(): Promise<void>;
}

export async function privateWorld(namespace: string): Promise<PrivateWorld> {
  const nats = new PrivateNats(await freePort());
  await nats.start();
  const pgs = new PrivatePostgres(await freePort());
  pgs.init();
  pgs.start();
  const admin = new pg.Client({ connectionString: pgs.url() });
  await admin.connect();
  await admin.query('create database kaching');
  await admin.end();
  const databaseUrl = pgs.url('kaching');
  await migrate({ databaseUrl, namespace });
  const pool = createPool({ databaseUrl, namespace, max: 3 });
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  await ensureEventsStream(nc, names(namespace));
  return {
    nats, pgs, databaseUrl, pool, nc,
    async close() {
      await nc.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
      await nats.stop();
      pgs.destroy();
    },
  };
}
