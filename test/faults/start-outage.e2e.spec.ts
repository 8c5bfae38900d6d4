import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateWorld, type PrivateWorld } from '../../projector/test/servers.js';
import { waitFor } from '../../projector/test/helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST = { ingest: 'ingest/dist/mod.js', projector: 'projector/dist/mod.js', enforcer: 'enforcer/dist/mod.js' } as const;
const NS = 'kstartout';

/**
 * A supervisor (systemd Restart=always) restarts a service that died, and Postgres may be restarting at that
 * very moment. Each service must then wait for it and come up, not exit again: before, the projector and the
 * enforcer read their checkpoints once at start and exited with ECONNREFUSED.
 */
describe('services started while Postgres is down', () => {
  let world: PrivateWorld;
  const children: { name: string; child: ChildProcess; ready: boolean; stderr: string; warned: boolean }[] = [];

  beforeAll(async () => {
    for (const d of Object.values(DIST)) if (!existsSync(`${ROOT}${d}`)) throw new Error(`${d} is missing: run \`npx tsc -b\` first`);
    world = await privateWorld(NS);
  }, 120_000);

  afterAll(async () => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    await world?.close();
  });

  it('wait for it instead of exiting, and are ready once it is back', async () => {
    world.pgs.stopImmediate();
    const env = {
      ...process.env, NATS_URL: world.nats.url, DATABASE_URL: world.databaseUrl, KACHING_NAMESPACE: NS, LOG_LEVEL: 'warn',
      INGEST_PORT: '0', INGEST_HOST: '127.0.0.1', PROJECTOR_PORT: '0', PROJECTOR_HOST: '127.0.0.1',
      ENFORCER_PORT: '0', ENFORCER_HOST: '127.0.0.1',
    };
    for (const [name, entry] of Object.entries(DIST)) {
      const script = `import { start, loadConfig } from ${JSON.stringify(`${ROOT}${entry}`)};
const h = await start(loadConfig());
process.stdout.write('ready ' + h.url + '\\n');`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const c = { name, child, ready: false, stderr: '', warned: false };
      // logs (pino) go to stdout, as does the ready line
      child.stdout!.on('data', (b: Buffer) => {
        c.ready ||= b.toString().includes('ready ');
        c.warned ||= b.toString().includes('"level":40');
      });
      child.stderr!.on('data', (b: Buffer) => (c.stderr = (c.stderr + b.toString()).slice(-2000)));
      children.push(c);
    }
    // each has met the outage (logged a warning about Postgres) — and is still running
    await waitFor(async () => children.every((c) => c.warned || c.child.exitCode !== null), 60_000, 'each service meeting the outage')
      .catch((e: Error) => {
        throw new Error(`${e.message}: ${children.filter((c) => !c.warned).map((c) => `${c.name}: ${c.stderr}`).join('; ')}`);
      });
    const exited = children.filter((c) => c.child.exitCode !== null).map((c) => `${c.name} (exit ${c.child.exitCode}): ${c.stderr}`);
    expect(exited).toEqual([]);

    await world.pgs.start();
    await waitFor(async () => children.every((c) => c.ready || c.child.exitCode !== null), 60_000, 'services ready');
    expect(children.map((c) => [c.name, c.ready, c.child.exitCode])).toEqual(children.map((c) => [c.name, true, null]));
  }, 120_000);
});
