import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { names } from '@kaching/contracts';
import { verifyProjections } from '@kaching/projector';
import { publishMessages } from '../src/bench/generate.js';
import { checkpoint, expectedWinners, makeStream, rollupTotals, seedDeployment, waitCaughtUp, waitFor } from './helpers.js';
import { privateWorld, type PrivateNats, type PrivatePostgres, type PrivateWorld } from './servers.js';

const FULL = process.env.KACHING_FAULTS === 'full' || process.env.KACHING_LONG === '1';
const JOBS = FULL ? 20_000 : 2_400;
const DIST = fileURLToPath(new URL('../dist/mod.js', import.meta.url));
const NS = 'kfault';

/**
 * The projector as a child process (projector/dist, built by `tsc -b`), SIGKILLed mid-batch, then a
 * Postgres crash-restart and a NATS SIGKILL-restart, all on private server instances.
 */
describe('projector survives SIGKILL, a Postgres restart and a NATS restart', () => {
  let world: PrivateWorld | undefined;
  let nats: PrivateNats;
  let pgs: PrivatePostgres;
  let pool: pg.Pool;
  let nc: NatsConnection;
  let child: ChildProcess | null = null;
  let databaseUrl = '';
  let msgs: ReturnType<typeof makeStream> = [];
  let ids: Awaited<ReturnType<typeof seedDeployment>>;

  let childLog = '';
  const spawnProjector = (logLevel = process.env.FAULT_LOG ?? 'error') => {
    childLog = '';
    child = spawn(process.execPath, ['--input-type=module', '-e',
      `import { start, loadConfig } from ${JSON.stringify(DIST)}; const h = await start(loadConfig()); process.on('SIGTERM', () => h.close().then(() => process.exit(0)));`], {
      env: { ...process.env, NATS_URL: nats.url, DATABASE_URL: databaseUrl, KACHING_NAMESPACE: NS, PROJECTOR_PORT: '0',
        PROJECTOR_HOST: '127.0.0.1', PROJECTOR_BATCH_SIZE: '200', PROJECTOR_ACK_WAIT_MS: '2000', LOG_LEVEL: logLevel },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // its logs (pino, stdout)
    child.stdout!.on('data', (b: Buffer) => {
      childLog = (childLog + b.toString()).slice(-64 * 1024);
      if (process.env.FAULT_LOG) process.stdout.write(b);
    });
  };
  const killProjector = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGKILL');
    });
  };
  const publish = async (part: typeof msgs) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await publishMessages(jetstream(nc), part, 200);
        return;
      } catch (err) {
        // dedup by msg id makes a retried publish safe
        if (attempt > 20) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error('projector/dist is missing: run `npx tsc -b` (or npx tsc -p projector/tsconfig.json) first');
    world = await privateWorld(NS);
    ({ nats, pgs, pool, nc, databaseUrl } = world);
    ids = await seedDeployment(pool);
    msgs = makeStream(names(NS), { ...ids, jobs: JOBS, seed: 23 });
  }, 120_000);

  afterAll(async () => {
    await killProjector();
    await world?.close();
  });

  it('after recovery nothing is lost and nothing counted twice', async () => {
    const q = Math.floor(msgs.length / 4);
    await publish(msgs.slice(0, 2 * q));
    spawnProjector();
    // SIGKILL mid-run: as soon as the raw projection has committed something but not everything
    await waitFor(async () => (await checkpoint(pool, 'raw').catch(() => 0)) > 0, 60_000, 'first commit');
    await killProjector();
    const killedAt = await checkpoint(pool, 'raw');
    expect(killedAt).toBeLessThan(2 * q);
    spawnProjector();
    await publish(msgs.slice(2 * q, 3 * q));

    // Postgres crash + restart while the projector works
    await waitFor(async () => (await checkpoint(pool, 'rollups').catch(() => 0)) > killedAt, 60_000, 'progress');
    pgs.stopImmediate();
    await new Promise((r) => setTimeout(r, 1000)); // the outage itself (its length, not a wait for a condition)
    await pgs.start();

    // NATS SIGKILL + restart (same store), then the rest of the stream
    await waitFor(async () => (await checkpoint(pool, 'raw').catch(() => 0)) >= 2 * q, 120_000, 'progress after pg restart');
    await nats.kill();
    await new Promise((r) => setTimeout(r, 1000)); // the outage itself
    await nats.start();
    await publish(msgs.slice(3 * q));

    const last = (await (await jetstreamManager(nc)).streams.info(names(NS).eventsStream)).state.last_seq;
    expect(last).toBe(msgs.length);
    await waitCaughtUp(pool, last, undefined, FULL ? 900_000 : 150_000);

    expect(await verifyProjections(pool)).toEqual([]);
    const winners = expectedWinners(msgs);
    const n = await pool.query<{ c: string; d: string }>('select count(*) as c, count(distinct correlation_id) as d from usage_sample');
    expect(Number(n.rows[0]!.c)).toBe(winners.size);
    expect(Number(n.rows[0]!.d)).toBe(winners.size);
    const [raw, hourly, daily] = await rollupTotals(pool);
    const strip = (r: Record<string, string>) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'src'));
    expect(strip(hourly!)).toEqual(strip(raw!));
    expect(strip(daily!)).toEqual(strip(raw!));
  }, FULL ? 1_200_000 : 240_000);

  it('a projector (re)started while Postgres is down waits for it instead of exiting, then projects', async () => {
    await killProjector();
    pgs.stopImmediate();
    spawnProjector('warn');
    // a supervisor restarting the projector into a Postgres outage: it used to exit with ECONNREFUSED. Once it
    // has failed to reach Postgres twice and said it retries, it is still running.
    await waitFor(async () => (childLog.match(/retrying/g) ?? []).length >= 2 || child?.exitCode !== null, 60_000, 'the projector retrying Postgres');
    expect(child?.exitCode).toBeNull();
    await pgs.start();
    const more = makeStream(names(NS), { ...ids, jobs: 200, seed: 29 });
    await publish(more);
    const last = (await (await jetstreamManager(nc)).streams.info(names(NS).eventsStream)).state.last_seq;
    await waitCaughtUp(pool, last, undefined, 120_000);
    expect(child?.exitCode).toBeNull();
    expect(await verifyProjections(pool)).toEqual([]);
  }, 180_000);
});
