import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { baseConfig, type CommandContext } from '@kaching/contracts';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { commands } from '../../deploy/src/up/commands.js';
import { buildFleet, logNormal } from '../../deploy/src/up/fleet.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { streamEvents } from './support.js';

// `kaching simulate`: a signed fleet through the SDK into a real ingest; it issues its own token and
// agent key when none is given, and its summary matches what the stream holds.

let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let deploymentId: string;

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  const orgId = randomUUID();
  deploymentId = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'sim']);
  await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'sim']);
  ingest = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' });
});

afterAll(async () => {
  await ingest?.close();
  await env?.cleanup();
});

function ctx(args: CommandContext['args']): CommandContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    args,
    positionals: [],
    config: baseConfig(env.env),
    json: true,
    progress: (l) => lines.push(l),
    signal: new AbortController().signal,
    lines,
  };
}

describe('kaching simulate', () => {
  it('sends signed jobs from several agent types and nodes; every accepted job is in the stream once', async () => {
    const simulate = commands.find((c) => c.name === 'simulate')!;
    const r = await simulate.run(ctx({ deployment: deploymentId, agents: '10', rate: '60', duration: '2', 'ingest-url': ingest.url }));
    const data = r.data as { emitted: number; accepted: number; duplicates: number; errors: number; unsent: number; agents: number; nodes: number };
    expect(r.exitCode ?? 0).toBe(0);
    expect(data.emitted).toBeGreaterThan(0);
    expect(data).toMatchObject({ accepted: data.emitted, duplicates: 0, errors: 0, unsent: 0, agents: 10 });
    expect(data.nodes).toBeGreaterThan(1);
    const { correlationIds } = await streamEvents(nc, env.names);
    expect(correlationIds.length).toBe(data.emitted);
    expect(new Set(correlationIds).size).toBe(data.emitted);
    const types = await env.pool.query('select count(*)::int as n from agent_key where deployment_id = $1', [deploymentId]);
    expect(types.rows[0].n).toBe(1);
  });

  it('builds a fleet of several agent types over several nodes, with log-normal metrics', () => {
    const fleet = buildFleet(randomUUID(), 20);
    expect(new Set(fleet.map((a) => a.agent_type)).size).toBeGreaterThanOrEqual(4);
    expect(new Set(fleet.map((a) => a.node.node_id)).size).toBe(5);
    const xs = Array.from({ length: 2000 }, () => logNormal(2, 1));
    const sorted = [...xs].sort((a, b) => a - b);
    const median = sorted[1000]!;
    expect(median).toBeGreaterThan(1.6);
    expect(median).toBeLessThan(2.5);
    expect(xs.every((x) => x > 0)).toBe(true);
  });
});
