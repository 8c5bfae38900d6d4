import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPool, cryptoReady, migrate, type BaseConfig } from '@kaching/contracts';
import { seedBenchDeployment } from '@kaching/ingest';
import { cpuBetween, cpuSnapshot, cpuText } from './harness/proc.js';
import { presignBodies, type Signing } from './harness/presign.js';
import { profilesIn, profileText, summariseProfile, type ProfileSummary } from './harness/profile.js';
import { startStack, type ServiceName, type Topology } from './harness/stack.js';
import { runWrk } from './harness/wrk.js';

export type ProfiledPath = 'single' | 'batch' | 'signed-batch';

export interface ProfileResult {
  path: ProfiledPath;
  topology: Topology;
  events: number;
  eventsPerSecond: number;
  cpu: string;
  /** Per service process: its profile summarised. */
  profiles: Record<string, ProfileSummary>;
  text: string;
}

const SHAPES: Record<ProfiledPath, { batchSize: number; signing: Signing; connections: number; route: string }> = {
  single: { batchSize: 1, signing: 'per-event', connections: 64, route: '/v1/ingest/usage' },
  batch: { batchSize: 100, signing: 'per-event', connections: 8, route: '/v1/ingest/batch' },
  'signed-batch': { batchSize: 100, signing: 'batch', connections: 8, route: '/v1/ingest/batch' },
};

/**
 * `kaching bench --profile`: the services run under `node --cpu-prof` while wrk (its own process) sends
 * pre-signed events at one path for `seconds`; each service's profile is summarised by area and function,
 * in µs per accepted event, over the samples taken while wrk ran (start-up and shutdown left out).
 */
export async function profileIngestPath(o: { config: BaseConfig; namespace: string; path: ProfiledPath; topology: Topology; services?: ServiceName[]; seconds: number; outDir: string; progress(l: string): void }): Promise<ProfileResult> {
  await cryptoReady();
  await migrate({ databaseUrl: o.config.databaseUrl, namespace: o.namespace });
  const pool = createPool({ databaseUrl: o.config.databaseUrl, namespace: o.namespace, max: 2 });
  const work = await mkdtemp(path.join(tmpdir(), 'kaching-profile-'));
  const profDir = path.join(o.outDir, `${o.path}-${o.topology}`);
  await mkdir(profDir, { recursive: true });
  try {
    const dep = await seedBenchDeployment(pool);
    const shape = SHAPES[o.path];
    const file = path.join(work, 'bodies.txt');
    // enough bodies that wrk does not run out at ~10k events/s
    const events = Math.max(shape.batchSize, 12_000 * o.seconds);
    o.progress(`signing ${events.toLocaleString('en-US')} events (${o.path})`);
    await presignBodies({ file, deploymentId: dep.deploymentId, keyId: dep.keyId, secretKey: dep.secretKey, events, batchSize: shape.batchSize, signing: shape.signing });
    const env = {
      ...process.env, DATABASE_URL: o.config.databaseUrl, NATS_URL: o.config.natsUrl, KACHING_NAMESPACE: o.namespace,
    };
    const stack = await startStack({ topology: o.topology, env, ...(o.services ? { services: o.services } : {}), nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
    let r: Awaited<ReturnType<typeof runWrk>>;
    const window = { fromUs: 0, toUs: 0 };
    let batches = '';
    let cpu: string;
    try {
      o.progress(`wrk: ${o.path} for ${o.seconds} s against ${o.topology}, services under --cpu-prof`);
      const pids = Object.fromEntries(Object.entries(stack.pids));
      const before = cpuSnapshot(pids);
      window.fromUs = Number(process.hrtime.bigint() / 1000n);
      r = await runWrk({ url: stack.ingestUrl, path: shape.route, seconds: o.seconds, connections: shape.connections, token: dep.token, bodiesFile: file });
      window.toUs = Number(process.hrtime.bigint() / 1000n);
      batches = await batchSizes(stack.urls);
      const accepted = (r.requests - r.non2xx) * shape.batchSize;
      cpu = cpuText(cpuBetween(before, cpuSnapshot(pids)), accepted);
    } finally {
      await stack.close();
    }
    const accepted = (r.requests - r.non2xx) * shape.batchSize;
    const profiles: Record<string, ProfileSummary> = {};
    const byPid = new Map(Object.entries(stack.pids).map(([label, pid]) => [String(pid), label]));
    for (const f of await profilesIn(profDir)) {
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread, others are workers
      const m = /CPU\.\d+\.\d+\.(\d+)\.(\d+)\./.exec(path.basename(f));
      const service = (m && byPid.get(m[1]!)) || path.basename(f);
      const label = m && m[2] !== '0' ? `${service} worker thread ${m[2]}` : service;
      profiles[label] = await summariseProfile(f, window);
    }
    const head = `${o.path} over HTTP (wrk, ${shape.connections} connections), ${o.topology}: ${Math.round(accepted / r.seconds).toLocaleString('en-US')} events/s under --cpu-prof; CPU: ${cpu}; events per batch: ${batches}`;
    const text = [head, ...Object.entries(profiles).map(([label, s]) => `\n## ${label}\n${profileText(s, accepted)}`)].join('\n');
    return { path: o.path, topology: o.topology, events: accepted, eventsPerSecond: Math.round(accepted / r.seconds), cpu, profiles, text };
  } finally {
    await pool.end();
    await rm(work, { recursive: true, force: true });
  }
}

/** Events per committed batch of each consumer since start, from the projector's and enforcer's /metrics. */
async function batchSizes(urls: Partial<Record<string, string>>): Promise<string> {
  const out: string[] = [];
  for (const svc of ['projector', 'enforcer']) {
    if (!urls[svc]) continue;
    const text = await (await fetch(`${urls[svc]}/metrics`)).text().catch(() => '');
    const sum = (re: RegExp) => text.split('\n').filter((l) => re.test(l)).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
    if (svc === 'projector') {
      for (const p of ['raw', 'rollups', 'concurrency']) {
        const batches = sum(new RegExp(`^kaching_projector_batch_seconds_count\\{[^}]*projection="${p}"`));
        const events = sum(new RegExp(`^kaching_projector_events_applied_total\\{[^}]*projection="${p}"`));
        if (batches) out.push(`${p} ${(events / batches).toFixed(0)}`);
      }
    } else {
      const batches = sum(/^kaching_enforcer_evaluation_seconds_count/);
      const events = sum(/^kaching_enforcer_events_applied_total/);
      if (batches) out.push(`enforcer ${(events / batches).toFixed(0)}`);
    }
  }
  return out.join(', ') || 'not reported';
}
