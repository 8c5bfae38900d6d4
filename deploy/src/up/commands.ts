import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection } from '@nats-io/transport-node';
import { connectNats, UsageError, createPool, issueIngestToken, names, registerAgentKey, requireString, type Command, type CommandContext } from '@kaching/contracts';
import type pg from 'pg';
import { seedDemo, type DemoSeed } from './demo.js';
import { runFleet, type FleetProgress, type FleetResult } from './fleet.js';
import { prepareInfrastructure, startStack } from './services.js';

function positiveNumber(ctx: CommandContext, key: string, fallback: number): number {
  const v = ctx.args[key];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${key} must be a non-negative number (got "${String(v)}")`);
  return n;
}

const home = () => process.env.KACHING_HOME || path.resolve('.kaching');

/** A one-line bar: rewritten in place on a terminal, a line every few seconds otherwise. */
function progressPrinter(ctx: CommandContext, everyMs = 5000): { line(s: string): void; done(): void } {
  const tty = process.stderr.isTTY && !ctx.json;
  let last = 0;
  return {
    line(s) {
      if (ctx.json) return;
      if (tty) process.stderr.write(`\r\x1b[2K${s}`);
      else if (Date.now() - last >= everyMs) {
        last = Date.now();
        ctx.progress(s);
      }
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

function bar(p: FleetProgress, target: number, durationS: number): string {
  const frac = durationS > 0 ? Math.min(1, p.elapsedS / durationS) : 0;
  const width = 24;
  const filled = Math.round(frac * width);
  const errors = p.failed + p.dropped;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.elapsedS.toFixed(0)}s ${p.rate.toFixed(1)}/s (target ${target}/s) accepted ${p.accepted} duplicates ${p.duplicates} errors ${errors} queued ${p.queued}`;
}

async function simulationCredentials(ctx: CommandContext, deploymentId: string): Promise<{ token: string; keyId: string; secretKey: string; created: string[] }> {
  const created: string[] = [];
  let token = typeof ctx.args.token === 'string' && ctx.args.token ? ctx.args.token : process.env.KACHING_TOKEN;
  let keyId = typeof ctx.args['key-id'] === 'string' && ctx.args['key-id'] ? ctx.args['key-id'] : undefined;
  let secretKey: string | undefined;
  const keyFile = typeof ctx.args['key-file'] === 'string' && ctx.args['key-file'] ? ctx.args['key-file'] : undefined;
  if (keyFile) {
    secretKey = (await readFile(keyFile, 'utf8')).trim();
    if (!keyId) throw new UsageError('--key-file needs --key-id (the id the key was registered under)');
  }
  if (token && secretKey) return { token, keyId: keyId!, secretKey, created };
  const pool: pg.Pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 2, applicationName: 'kaching-simulate' });
  try {
    if (!token) {
      token = (await issueIngestToken(pool, { deploymentId, label: 'kaching simulate' })).token;
      created.push('ingest token');
    }
    if (!secretKey) {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const seed = Buffer.from((privateKey.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
      const pub = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url');
      secretKey = seed.toString('base64');
      keyId = `sim-${Date.now().toString(36)}-${pub.subarray(0, 3).toString('hex')}`;
      await registerAgentKey(pool, { deploymentId, keyId, publicKey: pub.toString('base64') });
      created.push(`agent key ${keyId}`);
    }
  } finally {
    await pool.end();
  }
  return { token, keyId: keyId!, secretKey, created };
}

const simulate: Command = {
  name: 'simulate',
  summary: 'Signed load from simulated agents (several types and nodes) through the agent SDK, with a progress bar',
  options: {
    deployment: { type: 'string', description: 'deployment id', required: true },
    agents: { type: 'string', description: 'simulated agents', default: '20' },
    rate: { type: 'string', description: 'jobs (usage events) per second across the fleet', default: '50' },
    duration: { type: 'string', description: 'seconds to run (0 = until Ctrl-C)', default: '30' },
    token: { type: 'string', description: 'ingest token (default: KACHING_TOKEN, else a new one is issued)' },
    'key-file': { type: 'string', description: 'agent secret key file (base64); default: a new key is generated and registered' },
    'key-id': { type: 'string', description: 'key id of --key-file' },
    'ingest-url': { type: 'string', description: 'ingest bridge (default: KACHING_INGEST_URL or http://127.0.0.1:$INGEST_PORT)' },
    'queue-dir': { type: 'string', description: 'on-disk SDK queue directory (default: in memory)' },
  },
  details:
    'Agent types: planner, coder, reviewer (LLM tokens), indexer (context I/O), trainer (GPU). CPU seconds are\n' +
    'log-normal; each job has a deterministic correlation id (agent, run, step). The JSON summary counts\n' +
    'accepted, duplicates and errors by code. Without --token/--key-file the command issues a token and\n' +
    'registers a fresh agent key in the database (DATABASE_URL, KACHING_NAMESPACE).',
  async run(ctx) {
    const deploymentId = requireString(ctx, 'deployment');
    const agents = Math.max(1, Math.floor(positiveNumber(ctx, 'agents', 20)));
    const rate = positiveNumber(ctx, 'rate', 50);
    const durationS = positiveNumber(ctx, 'duration', 30);
    const ingestUrl =
      (typeof ctx.args['ingest-url'] === 'string' && ctx.args['ingest-url']) ||
      process.env.KACHING_INGEST_URL ||
      `http://127.0.0.1:${process.env.INGEST_PORT || 7070}`;
    const creds = await simulationCredentials(ctx, deploymentId);
    for (const c of creds.created) ctx.progress(`created ${c}`);
    const printer = progressPrinter(ctx, 2000);
    const r: FleetResult = await runFleet({
      deploymentId,
      ingestUrl,
      token: creds.token,
      keyId: creds.keyId,
      secretKey: creds.secretKey,
      agents,
      rate,
      durationS,
      signal: ctx.signal,
      queueDir: typeof ctx.args['queue-dir'] === 'string' ? ctx.args['queue-dir'] : undefined,
      onProgress: (p) => printer.line(bar(p, rate, durationS)),
      progressMs: 250,
    });
    printer.done();
    const data = {
      deployment_id: deploymentId,
      run_id: r.runId,
      ingest_url: ingestUrl,
      agents: r.agents,
      nodes: r.nodes,
      duration_s: Number(r.durationS.toFixed(3)),
      emitted: r.emitted,
      rate_per_s: Number(r.rate.toFixed(2)),
      accepted: r.accepted,
      duplicates: r.duplicates,
      errors: r.failed,
      errors_by_code: r.errorsByCode,
      dropped: r.dropped,
      retries: r.retries,
      unsent: r.unsent,
    };
    const text = `simulated ${r.emitted} jobs from ${r.agents} agents on ${r.nodes} nodes in ${data.duration_s}s: accepted ${r.accepted}, duplicates ${r.duplicates}, errors ${r.failed}${r.unsent ? `, ${r.unsent} not yet delivered` : ''}`;
    return { data, text, exitCode: r.failed > 0 || r.unsent > 0 ? 1 : 0 };
  },
};

interface LiveStatus {
  events_projected: number | null;
  alerts: number | null;
  suggestions: number | null;
  decisions: number | null;
  stream_messages: number | null;
}

async function liveStatus(pool: pg.Pool, nc: NatsConnection, namespace: string, deploymentId?: string): Promise<LiveStatus> {
  const n = names(namespace);
  const count = async (sql: string) => {
    try {
      const r = await pool.query<{ c: string }>(sql, deploymentId ? [deploymentId] : []);
      return Number(r.rows[0]?.c ?? 0);
    } catch {
      return null;
    }
  };
  const where = deploymentId ? ' where deployment_id = $1' : '';
  const jsm = await jetstreamManager(nc);
  const msgs = async (stream: string) => (await jsm.streams.info(stream).catch(() => null))?.state.messages ?? null;
  return {
    events_projected: await count(`select count(*) as c from usage_sample${where}`),
    alerts: await count(`select count(*) as c from alert${where}`),
    suggestions: await count(`select count(*) as c from suggestion${where}`),
    decisions: await msgs(n.decisionsStream),
    stream_messages: await msgs(n.eventsStream),
  };
}

const fmt = (v: number | null) => (v === null ? '–' : String(v));

const up: Command = {
  name: 'up',
  summary: 'Every service in one process (ingest, projectors, enforcer, archiver, api); --demo seeds a demo world and runs simulated agents',
  options: {
    demo: { type: 'boolean', description: 'seed the demo org/deployment/plans/license/quotas/budgets and run simulated agents' },
    agents: { type: 'string', description: 'simulated agents (with --demo)', default: '12' },
    rate: { type: 'string', description: 'simulated jobs per second (with --demo)', default: '20' },
    hq: { type: 'boolean', description: 'also be HQ: receive other installations\' rollups over mTLS (same as KACHING_ROLE=hq; needs HQ_TLS_*)' },
  },
  details:
    'Creates the database, schema (migrations), events stream, decisions stream and KV bucket when missing, then\n' +
    'starts each package with its own start(loadConfig()). Ports: INGEST_PORT (7070), API_PORT (7071),\n' +
    'PROJECTOR_PORT (7072), ENFORCER_PORT (7073), HQ_PORT (7074, with --hq), ARCHIVER_PORT (7075); 0 picks free ports. Demo keys live in\n' +
    'KACHING_HOME (./.kaching). With KACHING_HQ_URL set, the HQ pusher runs too (see hq/README.md).\n' +
    'Ctrl-C stops the agents, then every service, and exits 0.',
  async run(ctx) {
    const config = ctx.config;
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (ctx.args.hq) env.KACHING_ROLE = 'hq';
    ctx.progress(`preparing namespace "${config.namespace}" (database, schema, streams, KV)…`);
    await prepareInfrastructure(config);
    const pool: pg.Pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: 3, applicationName: 'kaching-up' });
    let seed: DemoSeed | undefined;
    let stack: Awaited<ReturnType<typeof startStack>> | undefined;
    const nc = await connectNats(config.natsUrl, { name: 'kaching-up-status', maxReconnectAttempts: -1 });
    let fleet: Promise<FleetResult> | undefined;
    const fleetAbort = new AbortController();
    try {
      if (ctx.args.demo) {
        seed = await seedDemo(pool, home());
        if (!env.KACHING_LICENSE_PUBLIC_KEY) env.KACHING_LICENSE_PUBLIC_KEY = seed.vendorPublicKey;
        ctx.progress(`demo: org ${seed.orgId}, deployment ${seed.deploymentId} (license ${seed.license})`);
      }
      stack = await startStack(env, config);
      if (stack.missing.length) ctx.progress(`not started (package has no start() yet): ${stack.missing.join(', ')}`);
      for (const s of stack.services) ctx.progress(`${s.name.padEnd(10)} ${s.url ?? '(running)'}`);
      const dashboard = stack.apiUrl ? `${stack.apiUrl}/` : undefined;
      if (dashboard) ctx.progress(`dashboard: ${dashboard}`);
      // shown once: only its hash is stored, and the next start sets a new one
      if (dashboard && seed) ctx.progress(`sign in as ${seed.user.login} with password ${seed.user.password} (new at every start)`);
      if (seed) {
        const agents = Math.max(1, Math.floor(positiveNumber(ctx, 'agents', 12)));
        const rate = positiveNumber(ctx, 'rate', 20);
        ctx.progress(`running ${agents} simulated agents at ${rate} jobs/s — Ctrl-C stops everything`);
        fleet = runFleet({
          deploymentId: seed.deploymentId,
          ingestUrl: stack.ingestUrl,
          token: seed.token,
          keyId: seed.keyId,
          secretKey: seed.secretKey,
          agents,
          rate,
          durationS: 0,
          signal: fleetAbort.signal,
        });
        fleet.catch(() => undefined);
      }
      const printer = progressPrinter(ctx, 5000);
      while (!ctx.signal.aborted) {
        const s = await liveStatus(pool, nc, config.namespace, seed?.deploymentId).catch(() => null);
        if (s) printer.line(`events projected ${fmt(s.events_projected)} | stream ${fmt(s.stream_messages)} | alerts ${fmt(s.alerts)} | suggestions ${fmt(s.suggestions)} | decisions ${fmt(s.decisions)}`);
        await new Promise<void>((r) => {
          const done = () => {
            clearTimeout(t);
            ctx.signal.removeEventListener('abort', done);
            r();
          };
          const t = setTimeout(done, 1000);
          ctx.signal.addEventListener('abort', done, { once: true });
        });
      }
      printer.done();
      ctx.progress('stopping…');
      fleetAbort.abort();
      const fr = await fleet?.catch(() => undefined);
      const final = await liveStatus(pool, nc, config.namespace, seed?.deploymentId).catch(() => null);
      const data = {
        namespace: config.namespace,
        services: stack.services.map((s) => ({ name: s.name, url: s.url ?? null })),
        not_started: stack.missing,
        dashboard: dashboard ?? null,
        demo: seed ? { org_id: seed.orgId, deployment_id: seed.deploymentId, login: seed.user.login } : null,
        simulated: fr ? { emitted: fr.emitted, accepted: fr.accepted, duplicates: fr.duplicates, errors: fr.failed } : null,
        status: final,
      };
      return { data, text: 'stopped cleanly' };
    } finally {
      fleetAbort.abort();
      await fleet?.catch(() => undefined);
      await stack?.close();
      await nc.close().catch(() => undefined);
      await pool.end().catch(() => undefined);
      // Everything was closed above; should a library still hold a handle, do not hang after Ctrl-C.
      setTimeout(() => process.exit(process.exitCode ?? 0), 5000).unref();
    }
  },
};

export const commands: Command[] = [up, simulate];
