import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ensureEventsStream } from '@kaching/contracts';
import { loadConfig, replay, start, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { publishMessages } from '../src/bench/generate.js';
import { makeStream, seedDeployment, tableSnapshot, waitCaughtUp } from './helpers.js';

const DIST = fileURLToPath(new URL('../dist/mod.js', import.meta.url));
// Enough events that the bulk load reports progress (every 20k messages) well before it ends.
const JOBS = 20_000;

/**
 * `kaching replay raw` as a child process, SIGKILLed in the middle of its bulk load: the live tables must
 * not notice, the replay's lock must go with its connection, and the next replay must clean up after it.
 */
describe('a replay killed with SIGKILL mid-bulk-load leaves the live tables untouched', () => {
  let env: IsolatedEnv;
  let live: ProjectorHandle;
  let lastSeq = 0;

  beforeAll(async () => {
    if (!existsSync(DIST)) throw new Error('projector/dist is missing: run `npx tsc -b` first');
    env = await isolatedEnv();
    const ids = await seedDeployment(env.pool);
    const nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await publishMessages(jetstream(nc), makeStream(env.names, { ...ids, jobs: JOBS, seed: 31 }));
    lastSeq = (await (await jetstreamManager(nc)).streams.info(env.names.eventsStream)).state.last_seq;
    live = await start({ ...loadConfig({}), databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, port: 0, host: '127.0.0.1', projections: ['raw'] });
    await waitCaughtUp(env.pool, lastSeq, ['raw']);
  });

  afterAll(async () => {
    await live?.close();
    await env?.cleanup();
  });

  it('the killed replay changes nothing, releases its lock, and the next replay rebuilds identical tables', async () => {
    const before = [await tableSnapshot(env.pool, 'job', 'deployment_id, correlation_id'), await tableSnapshot(env.pool, 'usage_sample', 'deployment_id, correlation_id')];
    const config = { databaseUrl: env.databaseUrl, natsUrl: env.natsUrl, namespace: env.namespace, logLevel: 'warn' };
    const child = spawn(process.execPath, ['--input-type=module', '-e',
      `import { replay } from ${JSON.stringify(DIST)};
       await replay(${JSON.stringify(config)}, 'raw', { onProgress: (p) => console.log(JSON.stringify(p)) });
       console.log('"done"');`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    let killedAt: { seq: number; pending: number } | null = null;
    for await (const line of createInterface({ input: child.stdout! })) {
      const p = JSON.parse(line) as { phase: string; seq: number; pending: number } | 'done';
      if (p !== 'done' && p.phase === 'load' && p.pending > 0) {
        killedAt = p;
        child.kill('SIGKILL');
        break;
      }
    }
    expect(await exited).toBe('SIGKILL');
    expect(killedAt!.seq).toBeLessThan(lastSeq);
    // It died inside the bulk load: its staging table is still there.
    const staged = await env.pool.query(`select to_regclass('replay_stage_raw') is not null as left`);
    expect(staged.rows[0].left).toBe(true);

    const after = [await tableSnapshot(env.pool, 'job', 'deployment_id, correlation_id'), await tableSnapshot(env.pool, 'usage_sample', 'deployment_id, correlation_id')];
    expect(after).toEqual(before);

    // The lock went with the killed process's connection: this replay is not refused.
    const r = await replay(config as Parameters<typeof replay>[0], 'raw');
    expect(r.lastSeq).toBe(lastSeq);
    expect(r.events).toBe(lastSeq);
    const rebuilt = [await tableSnapshot(env.pool, 'job', 'deployment_id, correlation_id'), await tableSnapshot(env.pool, 'usage_sample', 'deployment_id, correlation_id')];
    expect(rebuilt).toEqual(before);
    const leftovers = await env.pool.query<{ c: number }>(`select count(*)::int as c from pg_tables where schemaname = current_schema()
      and (tablename like 'replay\\_stage%' or tablename like '%\\_\\_shadow%' or tablename like '%\\_\\_old%')`);
    expect(leftovers.rows[0]!.c).toBe(0);
  });
});
