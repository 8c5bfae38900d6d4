import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { issueIngestToken, registerAgentKey } from '@kaching/contracts';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { PROJECT, exited, spawnTs, streamEvents } from './support.js';
import { onFreePort } from '../support/ports.js';

// The agent's disk queue survives kill -9: events emitted while ingest was down are delivered after
// a restart, each exactly once, and a further restart sends nothing again.

const AGENT = path.join(PROJECT, 'test', 'e2e', 'fixtures', 'sdk-agent.ts');
let env: IsolatedEnv;
let nc: NatsConnection;
let dir: string;
let agentEnv: NodeJS.ProcessEnv;
let ingestPort: number;
let ingest: IngestHandle | undefined;
/** Holds the agent's ingest port while ingest is down, answering as ingest does when it cannot append (503). */
let placeholder: Server | undefined;

function unavailable(port: number): Promise<Server> {
  const srv = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ error: { code: 'STREAM_UNAVAILABLE', message: 'ingest is down' } }));
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  dir = await mkdtemp(path.join(os.tmpdir(), 'kaching-sigkill-'));
  const orgId = randomUUID();
  const deploymentId = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'sigkill']);
  await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'd']);
  const token = (await issueIngestToken(env.pool, { deploymentId })).token;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyPath = path.join(dir, 'agent.key');
  await writeFile(keyPath, Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url').toString('base64') + '\n');
  const pub = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url').toString('base64');
  await registerAgentKey(env.pool, { deploymentId, keyId: 'k-sigkill', publicKey: pub, validFrom: new Date(Date.now() - 60_000) });
  placeholder = await onFreePort(unavailable);
  ingestPort = (placeholder.address() as AddressInfo).port;
  agentEnv = {
    ...env.env,
    KACHING_INGEST_URL: `http://127.0.0.1:${ingestPort}`,
    KACHING_TOKEN: token,
    KACHING_DEPLOYMENT_ID: deploymentId,
    KACHING_KEY_ID: 'k-sigkill',
    KACHING_KEY_PATH: keyPath,
    KACHING_AGENT_ID: randomUUID(),
    KACHING_RUN_ID: 'sigkill-run',
    KACHING_QUEUE_DIR: path.join(dir, 'queue'),
    KACHING_FLUSH_INTERVAL_MS: '50',
    KACHING_MAX_BATCH: '7',
    KACHING_BACKOFF_BASE_MS: '20',
    KACHING_BACKOFF_MAX_MS: '200',
  };
});

afterAll(async () => {
  placeholder?.close();
  await ingest?.close();
  await rm(dir, { recursive: true, force: true });
  await env?.cleanup();
});

describe('SDK disk queue and SIGKILL', () => {
  it('loses nothing and doubles nothing across kill -9 and restarts', async () => {
    // 1. Ingest is down (503 on its port): the agent emits 40 events (each fsync'd before emit resolves), then is killed.
    const a = spawnTs(AGENT, ['emit', '40', '1'], agentEnv);
    await a.waitFor(/idle/, 60_000);
    const emitted = [...a.output().matchAll(/^emitted (\d+) (\S+)$/gm)].map((m) => m[2]!);
    expect(emitted).toHaveLength(40);
    a.kill('SIGKILL');
    expect((await exited(a)).signal).toBe('SIGKILL');

    // 2. Ingest comes up on the agent's URL; a new process on the same queue emits 10 more and is
    //    killed once they are durable, while it is still delivering.
    await new Promise((r) => placeholder!.close(r));
    placeholder = undefined;
    ingest = await start({ ...loadConfig(env.env), port: ingestPort, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' });
    const b = spawnTs(AGENT, ['emit', '10', '41'], agentEnv);
    await b.waitFor(/idle/, 60_000);
    emitted.push(...[...b.output().matchAll(/^emitted (\d+) (\S+)$/gm)].map((m) => m[2]!));
    b.kill('SIGKILL');
    await exited(b);

    // 3. A restart flushes what is left.
    const c = spawnTs(AGENT, ['flush'], agentEnv);
    const line = await c.waitFor(/^stats .*$/m, 60_000);
    expect((await exited(c)).code).toBe(0);
    const stats = JSON.parse(line.slice('stats '.length)) as { left: number; failed: number };
    expect(stats).toMatchObject({ left: 0, failed: 0 });

    const first = await streamEvents(nc, env.names);
    expect(first.correlationIds.length).toBe(50);
    expect(new Set(first.correlationIds)).toEqual(new Set(emitted));
    expect(new Set(first.msgIds).size).toBe(50);

    // 4. Once more: the fsync'd cursor says everything was acknowledged, so nothing is resent.
    const d = spawnTs(AGENT, ['flush'], agentEnv);
    const again = JSON.parse((await d.waitFor(/^stats .*$/m, 60_000)).slice('stats '.length)) as { accepted: number; duplicates: number; left: number };
    await exited(d);
    expect(again).toMatchObject({ accepted: 0, duplicates: 0, left: 0 });
    expect((await streamEvents(nc, env.names)).correlationIds.length).toBe(50);
  });
});
