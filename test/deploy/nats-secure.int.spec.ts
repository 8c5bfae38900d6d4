import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { connectNats, decisionsBucket, devCa, type DevCaResult, type NatsSecurity } from '@kaching/contracts';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { createAgent } from '@kaching/sdk';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { spawnReportingPort } from '../support/ports.js';
import { seedDeployment, streamCount, type SeededDeployment } from '../../ingest/test/support.js';

/**
 * deploy/nats/secure.conf on a private nats-server: TLS required, one account per role. The KACHING
 * services connect over TLS with their user (contracts' connectNats: NATS_TLS_CA + NATS_USER/PASSWORD),
 * an agent can only send ingest requests, an orchestrator can only read decisions.
 */
const CONF = fileURLToPath(new URL('../../deploy/nats/secure.conf', import.meta.url));
// nats-server parses an environment value as a config value: a password must start with a letter (see secure.conf)
const pw = () => `k${randomBytes(24).toString('hex')}`;
const PW = { service: pw(), agent: pw(), orchestrator: pw() };

let env: IsolatedEnv;
let dir: string;
let pki: DevCaResult;
let server: ChildProcess;
let serverLog: () => string;
let url: string;
let svc: NatsConnection;
let ingest: IngestHandle;
let A: SeededDeployment;
const conns: NatsConnection[] = [];

const clientCert = (name: string) => {
  const c = pki.clients.find((x) => x.name === name)!;
  return { tlsCertFile: c.cert, tlsKeyFile: c.key };
};
const as = (user: 'kaching' | 'agent' | 'orchestrator', password: string, extra: NatsSecurity = {}) =>
  connectNats(url, { maxReconnectAttempts: 0, timeout: 5000, name: `test-${user}` }, { tlsCaFile: pki.ca, user, password, ...clientCert(user === 'kaching' ? 'service' : 'agent-1'), ...extra }).then((nc) => {
    conns.push(nc);
    return nc;
  });

/** Resolves with the error that closed the subscription (a permissions violation), or 'open' if it stayed open. */
async function subscribeOutcome(nc: NatsConnection, subject: string): Promise<Error | 'open'> {
  const sub: Subscription = nc.subscribe(subject);
  const r = await Promise.race([sub.closed.then((e) => e ?? new Error('closed')), new Promise<'open'>((res) => setTimeout(() => res('open'), 1500))]);
  if (r === 'open') sub.unsubscribe();
  return r;
}

beforeAll(async () => {
  env = await isolatedEnv();
  dir = mkdtempSync(path.join(tmpdir(), 'kaching-nats-secure-'));
  pki = devCa({ dir: path.join(dir, '.kaching/tls'), agents: ['agent-1'], days: 1 });
  // the file's subjects are the default namespace's; this test lives in its own namespace. `verify: true`:
  // client certificates on top of users, the stricter variant (every client below presents one).
  const conf = readFileSync(CONF, 'utf8').replace(/kaching(?=[._])/g, env.namespace);
  expect(conf).toContain('verify: false');
  writeFileSync(path.join(dir, 'secure.conf'), conf.replace('verify: false', 'verify: true'));
  const r = await spawnReportingPort(
    'nats-server',
    ['-c', path.join(dir, 'secure.conf'), '-a', '127.0.0.1', '-p', '-1'],
    {
      cwd: dir,
      env: {
        ...process.env,
        KACHING_NATS_SERVICE_PASSWORD: PW.service,
        KACHING_NATS_AGENT_PASSWORD: PW.agent,
        KACHING_NATS_ORCHESTRATOR_PASSWORD: PW.orchestrator,
      },
    },
    /Listening for client connections on [^\s]+:(\d+)/,
  );
  server = r.child;
  serverLog = r.output;
  url = `nats://127.0.0.1:${r.port}`;
  svc = await as('kaching', PW.service);
  A = await seedDeployment(env.pool);
  ingest = await start({
    ...loadConfig({
      ...env.env,
      NATS_URL: url,
      NATS_TLS_CA: pki.ca,
      NATS_TLS_CERT: clientCert('service').tlsCertFile,
      NATS_TLS_KEY: clientCert('service').tlsKeyFile,
      NATS_USER: 'kaching',
      NATS_PASSWORD: PW.service,
    }),
    port: 0,
    host: '127.0.0.1',
    verifyWorkers: 0,
    logLevel: 'silent',
  });
}, 60_000);

afterAll(async () => {
  await ingest?.close();
  for (const c of conns) await c.close().catch(() => undefined);
  server?.kill('SIGKILL');
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('deploy/nats/secure.conf', () => {
  it('requires TLS, a client certificate and a user: each missing piece is refused; the service user connects over TLS', async () => {
    const svcCert = clientCert('service');
    const o = { maxReconnectAttempts: 0, timeout: 3000 };
    await expect(connectNats(url, o, { user: 'kaching', password: PW.service, ...svcCert })).rejects.toThrow();
    // without a client certificate the server ends the TLS session: the client never gets in
    await expect(connectNats(url, { ...o, timeout: 1500 }, { tlsCaFile: pki.ca, user: 'kaching', password: PW.service })).rejects.toThrow();
    expect(serverLog()).toMatch(/TLS handshake error.*certificate/i);
    await expect(connectNats(url, o, { tlsCaFile: pki.ca, user: 'kaching', password: 'wrong', ...svcCert })).rejects.toThrow(/Authorization/i);
    await expect(connectNats(url, o, { tlsCaFile: pki.ca, ...svcCert })).rejects.toThrow(/Authorization/i);
    expect(svc.info?.tls_required).toBe(true);
    expect(await subscribeOutcome(svc, `${env.namespace}.events.>`)).toBe('open');
  });

  it('an agent user sends usage through ingest (SDK over NATS with TLS) and the event lands once', async () => {
    const before = await streamCount(svc, env.names.eventsStream);
    const agent = await createAgent({
      natsUrl: url,
      namespace: env.namespace,
      natsUser: 'agent',
      natsPassword: PW.agent,
      tlsCa: pki.ca,
      tlsCert: clientCert('agent-1').tlsCertFile,
      tlsKey: clientCert('agent-1').tlsKeyFile,
      token: A.token,
      deploymentId: A.deploymentId,
      keyId: A.keyId,
      secretKey: Buffer.from(A.secretKey).toString('base64'),
      flushIntervalMs: 20,
    });
    try {
      const now = new Date();
      await agent.emitUsage({ ucxlAddr: 'ucxl://a:b@p:t/nats-tls', startedAt: new Date(now.getTime() - 500), endedAt: now, metrics: { cpu_seconds: 1 } });
      expect(await agent.flush(10_000)).toBe(0);
      expect(agent.stats().accepted).toBe(1);
    } finally {
      await agent.close();
    }
    expect(await streamCount(svc, env.names.eventsStream)).toBe(before + 1);
  });

  it('an agent user cannot read decisions, events or KV, nor publish to the events stream', async () => {
    const agent = await as('agent', PW.agent);
    for (const s of [`${env.namespace}.control.>`, `${env.namespace}.events.>`, `$KV.${env.namespace}_decisions.>`]) {
      expect(String(await subscribeOutcome(agent, s))).toMatch(/Permissions Violation/i);
    }
    const kvGet = `$JS.API.DIRECT.GET.KV_${env.namespace}_decisions.$KV.${env.namespace}_decisions.x`;
    await expect(agent.request(kvGet, '', { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Publish/);
    const before = await streamCount(svc, env.names.eventsStream);
    agent.publish(env.names.eventSubject(A.deploymentId, 'usage', 1), '{}');
    await agent.flush();
    expect(await streamCount(svc, env.names.eventsStream)).toBe(before);
  });

  it('an orchestrator user reads decisions (KV by key, live control) and nothing else', async () => {
    const kv = await decisionsBucket(svc, env.names);
    const key = env.names.decisionKey(A.deploymentId, 'jobs');
    await kv.put(key, JSON.stringify({ action: 'block' }));
    const orch = await as('orchestrator', PW.orchestrator);
    const got = await orch.request(`$JS.API.DIRECT.GET.KV_${env.namespace}_decisions.$KV.${env.namespace}_decisions.${key}`, '', { timeout: 3000 });
    expect(got.json()).toEqual({ action: 'block' });

    const live = orch.subscribe(env.names.controlSubject(A.deploymentId), { max: 1 });
    await orch.flush();
    svc.publish(env.names.controlSubject(A.deploymentId), JSON.stringify({ decision: 'd1' }));
    for await (const m of live) expect(m.json()).toEqual({ decision: 'd1' });

    expect(String(await subscribeOutcome(orch, `${env.namespace}.events.>`))).toMatch(/Permissions Violation/i);
    await expect(orch.request(env.names.ingestSubject(A.deploymentId), '{}', { timeout: 2000 })).rejects.toThrow(/Permissions Violation for Publish/);
  });
});
