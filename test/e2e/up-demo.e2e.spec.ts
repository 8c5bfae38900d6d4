import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { PROJECT, exited, spawnTs } from './support.js';

// `kaching up --demo` as a child process in its own namespace and database, on free ports: within
// 90 s the pipeline shows projected events, an alert and a decision; SIGINT stops it with exit 0. The
// demo user signs in with the password it prints.

const CLI = path.join(PROJECT, 'deploy', 'src', 'cli', 'kaching.ts');
let env: IsolatedEnv;
let nc: NatsConnection;
let home: string;
let upEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  home = await mkdtemp(path.join(os.tmpdir(), 'kaching-up-'));
  upEnv = { ...env.env, INGEST_PORT: '0', API_PORT: '0', PROJECTOR_PORT: '0', ENFORCER_PORT: '0', ARCHIVER_PORT: '0', KACHING_HOME: home, LOG_LEVEL: 'warn', INGEST_VERIFY_WORKERS: '1' };
});

afterAll(async () => {
  await rm(home, { recursive: true, force: true });
  await env?.cleanup();
});

interface Seen {
  events: number;
  alerts: number;
  decisions: number;
}

async function observe(): Promise<Seen> {
  const count = async (sql: string) => Number((await env.pool.query<{ c: string }>(sql).catch(() => ({ rows: [{ c: '0' }] }))).rows[0]?.c ?? 0);
  const jsm = await jetstreamManager(nc);
  const decisions = (await jsm.streams.info(env.names.decisionsStream).catch(() => null))?.state.messages ?? 0;
  return {
    events: await count('select count(*) as c from usage_sample'),
    alerts: await count('select count(*) as c from alert'),
    decisions,
  };
}

/** `kaching status --json` (the projector's command) in the same world. */
async function statusJson(): Promise<{ code: number | null; out: string }> {
  const s = spawnTs(CLI, ['status', '--json'], upEnv);
  const r = await exited(s);
  return { code: r.code, out: s.output() };
}

describe('kaching up --demo', () => {
  it('shows projected events, an alert and a decision within 90 s, and stops cleanly on SIGINT', async () => {
    const up = spawnTs(CLI, ['up', '--demo'], upEnv);
    try {
      const dashboardLine = await up.waitFor(/dashboard: http:\/\/\S+\//, 60_000);
      const signInLine = await up.waitFor(/sign in as demo with password \S+/, 10_000);
      // no key in the URL any more: the demo user signs in with the printed one-time password
      expect(dashboardLine).not.toContain('#key=');
      const apiUrl = dashboardLine.slice('dashboard: '.length).replace(/\/$/, '');
      const password = signInLine.split(' ').pop()!;
      const signin = await fetch(`${apiUrl}/v1/auth/signin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'demo', password }) });
      expect(signin.status).toBe(200);
      const cookie = signin.headers.getSetCookie()[0]!.split(';')[0]!;
      const deps = (await (await fetch(`${apiUrl}/v1/deployments`, { headers: { cookie } })).json()) as { items: { name: string }[] };
      expect(deps.items.map((d) => d.name)).toEqual(['demo-fleet']);
      expect(up.output()).not.toMatch(/ka_[0-9a-f]{24}_/);
      const deadline = Date.now() + 90_000;
      let seen: Seen = { events: 0, alerts: 0, decisions: 0 };
      while (Date.now() < deadline) {
        seen = await observe();
        if (seen.events > 0 && seen.alerts > 0 && seen.decisions > 0) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
      expect(seen.events, up.output().slice(-3000)).toBeGreaterThan(0);
      expect(seen.alerts, up.output().slice(-3000)).toBeGreaterThan(0);
      expect(seen.decisions, up.output().slice(-3000)).toBeGreaterThan(0);

      // The operator's view agrees: `kaching status --json` (projector package) counts the same things.
      const status = await statusJson();
      expect(status.code, status.out).toBe(0);
      const counts = (JSON.parse(status.out) as { counts: { usage_samples: number; alerts: number; decisions: number } }).counts;
      expect(counts.usage_samples).toBeGreaterThan(0);
      expect(counts.alerts).toBeGreaterThan(0);
      expect(counts.decisions).toBeGreaterThan(0);
    } finally {
      up.kill('SIGINT');
    }
    const r = await exited(up);
    expect(r.code, up.output().slice(-3000)).toBe(0);
    expect(up.output()).toMatch(/stopped cleanly/);
  });
});
