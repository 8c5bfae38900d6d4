import { randomUUID } from 'node:crypto';
import { createAgent, uuidV5, type AgentStats, type KachingAgent, type PartialMetrics } from '@kaching/sdk';
import type { LlmUsage } from '@kaching/contracts';

/**
 * A simulated fleet: agents of several types spread over several nodes, each "job" a usage event
 * with plausible metrics (log-normal CPU, GPU seconds on GPU nodes, tokens for LLM agents), all
 * signed and shipped through the agent SDK.
 */
export interface FleetOptions {
  deploymentId: string;
  ingestUrl: string;
  token: string;
  keyId: string;
  secretKey: string;
  agents: number;
  /** Jobs per second across the fleet. */
  rate: number;
  /** Seconds; 0 = until the signal aborts. */
  durationS: number;
  signal: AbortSignal;
  queueDir?: string;
  runId?: string;
  /** Called about every `progressMs` with the running totals. */
  onProgress?(p: FleetProgress): void;
  progressMs?: number;
  /** Optional per-type overrides of the metric generators (the demo makes context writes heavy). */
  intensity?: number;
  rand?: () => number;
}

export interface FleetProgress extends AgentStats {
  elapsedS: number;
  /** Jobs emitted per second over the run so far. */
  rate: number;
  errorsByCode: Record<string, number>;
}

interface SimAgent {
  agent_id: string;
  agent_type: AgentType;
  version: string;
  node: { node_id: string; hostname: string; hw_class: string };
  step: number;
}

type AgentType = 'planner' | 'coder' | 'indexer' | 'trainer' | 'reviewer';
const TYPES: AgentType[] = ['planner', 'coder', 'indexer', 'trainer', 'reviewer'];
const MODELS: LlmUsage[] = [
  { provider: 'anthropic', model_name: 'claude-sonnet-4', tokens_in: 0, tokens_out: 0 },
  { provider: 'openai', model_name: 'gpt-4o', tokens_in: 0, tokens_out: 0 },
  { provider: 'local', model_name: 'llama3.1:70b', tokens_in: 0, tokens_out: 0 },
];
const FLEET_NS = 'e4a3f0b5-7da0-5f4b-8c6d-9e5fb13f7d44';

/** Standard normal via Box–Muller. */
function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}
/** Log-normal with the given median and shape. */
export function logNormal(median: number, sigma: number, rand: () => number = Math.random): number {
  return median * Math.exp(sigma * gauss(rand));
}

export function buildFleet(deploymentId: string, n: number): SimAgent[] {
  const nodes = Math.max(1, Math.ceil(n / 4));
  return Array.from({ length: n }, (_, i) => {
    const type = TYPES[i % TYPES.length]!;
    // Trainers share the big GPU node; the rest fill nodes in groups of four.
    const nodeIx = type === 'trainer' ? 0 : Math.floor(i / 4) % nodes;
    const gpu = nodeIx === 0 || nodeIx % 3 === 1;
    return {
      agent_id: uuidV5(`${deploymentId}/agent/${i}`, FLEET_NS),
      agent_type: type,
      version: '1.4.2',
      node: {
        node_id: uuidV5(`${deploymentId}/node/${nodeIx}`, FLEET_NS),
        hostname: `sim-node-${String(nodeIx).padStart(2, '0')}`,
        hw_class: gpu ? 'gpu-a100' : 'cpu-std',
      },
      step: 0,
    };
  });
}

function metricsFor(a: SimAgent, rand: () => number, intensity: number): { metrics: PartialMetrics; llm?: LlmUsage; wallS: number } {
  const wallS = Math.min(600, logNormal(a.agent_type === 'trainer' ? 60 : 8, 0.8, rand));
  const m: PartialMetrics = {
    cpu_seconds: Math.min(wallS * 8, logNormal(2, 1, rand)),
    ram_mb_peak: Math.round(logNormal(a.agent_type === 'trainer' ? 8192 : 512, 0.5, rand)),
    disk_io_mb: logNormal(5, 1.2, rand),
    net_in_mb: logNormal(1, 1, rand),
    net_out_mb: logNormal(0.3, 1, rand),
    context_reads: Math.round(logNormal(20, 0.8, rand) * intensity),
    context_writes: Math.round(logNormal(4, 0.8, rand) * intensity),
    context_bytes_read: Math.round(logNormal(400_000, 1, rand) * intensity),
    context_bytes_written: Math.round(logNormal(120_000, 1, rand) * intensity),
  };
  if (a.node.hw_class.startsWith('gpu') && (a.agent_type === 'trainer' || rand() < 0.2)) {
    m.gpu_seconds = Math.min(wallS, logNormal(a.agent_type === 'trainer' ? 45 : 3, 0.7, rand));
  }
  let llm: LlmUsage | undefined;
  if (a.agent_type === 'planner' || a.agent_type === 'coder' || a.agent_type === 'reviewer') {
    const model = MODELS[Math.floor(rand() * MODELS.length)]!;
    llm = {
      ...model,
      tokens_in: Math.round(logNormal(1800, 0.9, rand) * intensity),
      tokens_out: Math.round(logNormal(450, 0.9, rand) * intensity),
    };
  }
  return { metrics: m, llm, wallS };
}

export interface FleetResult extends FleetProgress {
  runId: string;
  emitted: number;
  agents: number;
  nodes: number;
  durationS: number;
  /** Events still queued when the run ended (not yet answered by ingest). */
  unsent: number;
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const rand = o.rand ?? Math.random;
  const runId = o.runId ?? randomUUID();
  const fleet = buildFleet(o.deploymentId, o.agents);
  const errorsByCode: Record<string, number> = {};
  const agent: KachingAgent = await createAgent(
    {
      ingestUrl: o.ingestUrl,
      token: o.token,
      deploymentId: o.deploymentId,
      keyId: o.keyId,
      secretKey: o.secretKey,
      agentType: 'simulator',
      runId,
      flushIntervalMs: 250,
      maxBatch: 250,
      queueDir: o.queueDir,
      onFull: 'block',
    },
    { onError: (e) => (errorsByCode[e.code] = (errorsByCode[e.code] ?? 0) + 1) },
  );
  const started = Date.now();
  const intensity = o.intensity ?? 1;
  let emitted = 0;
  let owed = 0;
  const progress = (): FleetProgress => {
    const elapsedS = (Date.now() - started) / 1000;
    return { ...agent.stats(), elapsedS, rate: elapsedS > 0 ? emitted / elapsedS : 0, errorsByCode };
  };
  const ticker = o.onProgress ? setInterval(() => o.onProgress!(progress()), o.progressMs ?? 1000) : undefined;
  const tickMs = 100;
  try {
    while (!o.signal.aborted && (o.durationS <= 0 || Date.now() - started < o.durationS * 1000)) {
      const t0 = Date.now();
      owed += (o.rate * tickMs) / 1000;
      const n = Math.floor(owed);
      owed -= n;
      if (n > 0) {
        const now = Date.now();
        const events = Array.from({ length: n }, () => {
          const a = fleet[Math.floor(rand() * fleet.length)]!;
          const { metrics, llm, wallS } = metricsFor(a, rand, intensity);
          a.step++;
          return agent.buildUsage({
            ucxlAddr: `ucxl://${a.agent_type}-${a.agent_id.slice(0, 8)}:${a.agent_type}@demo-project:task-${a.step % 50}/src/module-${a.step % 7}`,
            step: a.step,
            runId,
            agent: { agent_id: a.agent_id, agent_type: a.agent_type, version: a.version },
            node: a.node,
            startedAt: new Date(now - Math.round(wallS * 1000)),
            endedAt: new Date(now),
            status: rand() < 0.04 ? 'failed' : 'succeeded',
            metrics,
            llm,
          });
        });
        await agent.enqueue(events);
        emitted += n;
      }
      const wait = tickMs - (Date.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await agent.flush(o.signal.aborted ? 2_000 : 15_000);
  } finally {
    if (ticker) clearInterval(ticker);
    await agent.close();
  }
  const p = progress();
  return {
    ...p,
    runId,
    emitted,
    agents: fleet.length,
    nodes: new Set(fleet.map((a) => a.node.node_id)).size,
    durationS: p.elapsedS,
    unsent: p.queued,
  };
}
