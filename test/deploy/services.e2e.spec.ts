import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortTakenError, candidatePort, onFreePorts } from '../support/ports.js';

// deploy/services.mjs against a private KACHING_HOME and free ports: it must start its own NATS
// (JetStream) and Postgres, leave them running after it exits, be a no-op the second time, and
// stop exactly what it started. The shared servers on 4222/5432 are never touched.

const PROJECT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = path.join(PROJECT, 'deploy', 'services.mjs');
const isRoot = process.getuid?.() === 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(cmd: string, env: NodeJS.ProcessEnv, ids: { uid?: number; gid?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, cmd], { cwd: PROJECT, env, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const state = (home: string, name: string) => JSON.parse(fs.readFileSync(path.join(home, 'run', `${name}.json`), 'utf8')) as { pid: number };

describe('deploy/services.mjs', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let natsPort: number;
  let pgPort: number;
  let databaseUrl: string;
  let first: Run;

  beforeAll(async () => {
    // The postgres user (we may be root) must reach the data dir, so the temp home is world-traversable.
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kaching-services-'));
    fs.chmodSync(home, 0o755);
    // the script binds both ports; one taken by another process in between means: again, on other ports
    first = await onFreePorts(2, async ([n, p]) => {
      if (!(await refused(n!)) || !(await refused(p!))) throw new PortTakenError('taken');
      natsPort = n!;
      pgPort = p!;
      databaseUrl = `postgres://root@127.0.0.1:${pgPort}/kaching_e2e`;
      env = { ...process.env, KACHING_HOME: home, NATS_URL: `nats://127.0.0.1:${natsPort}`, DATABASE_URL: databaseUrl };
      const r = await runScript('ensure', env);
      if (r.code !== 0 && /address already in use|could not bind/i.test(r.stdout + r.stderr)) {
        await runScript('stop', env);
        throw new PortTakenError(r.stderr);
      }
      return r;
    });
  }, 180_000);

  afterAll(async () => {
    if (!home) return;
    await runScript('stop', env);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('starts NATS with JetStream and Postgres with the database when nothing answers, and they outlive the script', async () => {
    // nothing answered on either port when the script ran (checked in beforeAll)
    const r = first;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^nats: started nats-server .* at nats://127\\.0\\.0\\.1:${natsPort} `, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^postgres: started PostgreSQL .* at 127\\.0\\.0\\.1:${pgPort} .*database "kaching_e2e" created$`, 'm'));

    // The script has exited; both servers still answer.
    const nc = await connect({ servers: `nats://127.0.0.1:${natsPort}` });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      expect(info.streams).toBe(0);
    } finally {
      await nc.close();
    }
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query('select current_database() as db, current_user as usr, 1 as one');
      expect(rows[0]).toEqual({ db: 'kaching_e2e', usr: 'root', one: 1 });
    } finally {
      await client.end();
    }
    expect(fs.existsSync(path.join(home, 'nats', 'jetstream'))).toBe(true);
    expect(fs.existsSync(path.join(home, 'pg', 'data', 'PG_VERSION'))).toBe(true);
  });

  it('is a no-op the second time: both already running, same processes', async () => {
    const before = { nats: state(home, 'nats').pid, pg: state(home, 'postgres').pid };
    const r = await runScript('ensure', env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^nats: already running at nats://127\\.0\\.0\\.1:${natsPort} .*started by this script, pid ${before.nats}\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^postgres: already running at 127\\.0\\.0\\.1:${pgPort} \\(started by this script, pid ${before.pg}\\); database "kaching_e2e" ready$`, 'm'));
    expect(r.stdout).not.toMatch(/started (nats-server|PostgreSQL)/);
    expect({ nats: state(home, 'nats').pid, pg: state(home, 'postgres').pid }).toEqual(before);
  });

  it('creates a missing database on a Postgres that already answers', async () => {
    const other = `postgres://root@127.0.0.1:${pgPort}/kaching_e2e_other`;
    const r = await runScript('ensure', { ...env, DATABASE_URL: other });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^postgres: already running .*database "kaching_e2e_other" created$/m);
    const client = new pg.Client({ connectionString: other });
    await client.connect();
    await client.end();
  });

  it('status reports both as answering and started by the script', async () => {
    const r = await runScript('status', env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nats: .* answers \(nats-server .*, JetStream on\); started by this script/m);
    expect(r.stdout).toMatch(/^postgres: .* answers; started by this script/m);
  });

  it('without nats-server and not root, prints the one install line and fails', async () => {
    // A second home the unprivileged user can write; NATS on a port where nothing answers.
    const home2 = fs.mkdtempSync(path.join(os.tmpdir(), 'kaching-services-'));
    fs.chmodSync(home2, 0o777);
    try {
      const ids = isRoot ? { uid: Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout) } : {};
      const r = await runScript(
        'ensure',
        { ...env, KACHING_HOME: home2, NATS_URL: `nats://127.0.0.1:${await candidatePort()}`, PATH: '/usr/local/bin:/usr/bin:/bin', KACHING_NATS_DIRS: '/nonexistent' },
        ids,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('nats: nats-server is not installed and nothing answers at NATS_URL');
      expect(r.stderr).toContain('sudo apt-get install -y nats-server');
      // Postgres is still handled in the same run.
      expect(r.stdout).toMatch(/^postgres: already running/m);
    } finally {
      fs.rmSync(home2, { recursive: true, force: true });
    }
  });

  it('without nats-server as root on Debian, chooses apt-get install (dry run)', async () => {
    const home2 = fs.mkdtempSync(path.join(os.tmpdir(), 'kaching-services-'));
    try {
      const r = await runScript('ensure', {
        ...env,
        KACHING_HOME: home2,
        NATS_URL: `nats://127.0.0.1:${await candidatePort()}`,
        PATH: '/usr/local/bin:/usr/bin:/bin',
        KACHING_NATS_DIRS: '/nonexistent',
        KACHING_APT_DRY_RUN: '1',
      });
      expect(r.code).toBe(1);
      if (isRoot) {
        expect(r.stderr).toContain('as root on Debian this would run:\n  apt-get update\n  apt-get install -y --no-install-recommends nats-server');
      } else {
        // Not root: the dry-run knob changes nothing, the install line is printed instead.
        expect(r.stderr).toContain('sudo apt-get install -y nats-server');
      }
    } finally {
      fs.rmSync(home2, { recursive: true, force: true });
    }
  });

  it('stop stops exactly what ensure started, and a second stop is harmless', async () => {
    const pids = { nats: state(home, 'nats').pid, pg: state(home, 'postgres').pid };
    const r = await runScript('stop', env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^nats: stopped nats-server \\(pid ${pids.nats}, port ${natsPort}\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^postgres: stopped \\(pid ${pids.pg}, port ${pgPort}\\)`, 'm'));
    expect(pidAlive(pids.nats)).toBe(false);
    expect(pidAlive(pids.pg)).toBe(false);
    expect(await refused(natsPort)).toBe(true);
    expect(await refused(pgPort)).toBe(true);

    const again = await runScript('stop', env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nats: nothing started by this script');
    expect(again.stdout).toContain('postgres: nothing started by this script');
  });
});
