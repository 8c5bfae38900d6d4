import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createPool, ensureEventsStream, migrate, names } from '@kaching/contracts';
import { PortTakenError, onFreePort, spawnReportingPort } from '../../test/support/ports.js';

/** Private server instances for fault tests: never the shared ones on 4222/5432. */

/**
 * A nats-server of our own. `launch()` lets it pick its port (`-p -1`) and reads it from its log, so no other
 * process can take the port between choosing and binding it; a restart (`start()` after `kill()`) binds the
 * same port again, as a restarted server does for its clients.
 */
export class PrivateNats {
  private proc: ChildProcess | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), 'kaching-nats-'));
  private constructor(public port: number) {}

  static async launch(): Promise<PrivateNats> {
    const n = new PrivateNats(0);
    await n.start();
    return n;
  }
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }
  async start(): Promise<void> {
    const args = ['-js', '-a', '127.0.0.1', '-p', this.port ? String(this.port) : '-1', '-sd', this.dir];
    const r = await spawnReportingPort('nats-server', args, {}, /Listening for client connections on [^\s]+:(\d+)/);
    this.proc = r.child;
    this.port = r.port;
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
  /** Chosen at the first start (another port while the chosen one turns out taken), kept for restarts. */
  port = 0;
  constructor() {
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
  async start(): Promise<void> {
    if (this.port) return this.startOn(this.port);
    await onFreePort(async (port) => {
      this.startOn(port);
      this.port = port;
    });
  }
  private startOn(port: number): void {
    try {
      this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-l', join(this.dir, 'log'), '-w', '-o',
        `-p ${port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`, 'start']);
    } catch (err) {
      const log = existsSync(join(this.dir, 'log')) ? readFileSync(join(this.dir, 'log'), 'utf8') : '';
      if (/could not bind|Address already in use/i.test(log)) throw new PortTakenError(`port ${port} taken`);
      throw err;
    }
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
  const nats = await PrivateNats.launch();
  const pgs = new PrivatePostgres();
  pgs.init();
  await pgs.start();
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
