import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  JOB_STATUS_SCHEMA,
  USAGE_SCHEMA,
  type JobStatus,
  type JobStatusEvent,
  type LlmUsage,
  type SignedEvent,
  type Tags,
  type Unsigned,
  type UsageEvent,
  type UsageMetrics,
} from './protocol/mod.js';
import { backoffDelay } from './backoff.js';
import { validateAgentConfig, type AgentConfig } from './config.js';
import { IDENTITY_NAMESPACE, correlationId as makeCorrelationId, jobIdFor, uuidV5 } from './ids.js';
import path from 'node:path';
import { DeadLetterFile, MemoryDeadLetters, deadLetterFrom, isPermanentStatus, replayDeadLetters, type DeadLetter, type DeadLetterStore, type ReplayOptions, type ReplayReport } from './deadLetter.js';
import { DiskQueue, MemoryQueue, type EventQueue } from './queue.js';
import { EventSigner } from './signer.js';
import { checkTags, currentTags } from './tags.js';
import { HttpTransport, NatsTransport, TransportError, type BatchOutcome, type ItemOutcome, type Transport } from './transport.js';

/** A permanent rejection (4xx other than 408/429): not retried, kept in the dead-letter store instead. */
export interface DeliveryError {
  correlationId: string;
  kind: 'usage' | 'job_status';
  status: number;
  code: string;
  message: string;
  field?: string;
  /** The dead-letter file now holding the event (absent: the in-memory store, see AgentConfig.deadLetterPath). */
  deadLetterPath?: string;
}

export interface AgentStats {
  /** Events handed to the SDK (after signing, before the queue). */
  produced: number;
  /** 202: appended to the stream for the first time. */
  accepted: number;
  /** 200 duplicate: the stream already had this exact event (a resend). */
  duplicates: number;
  /** Permanent rejections (also reported through onError); each went to the dead-letter store. */
  failed: number;
  /** Events written to the dead-letter store since this agent started (= failed). */
  deadLettered: number;
  /** Entries in the dead-letter store now (including those of earlier runs), until replayed. */
  deadLetters: number;
  /** Dropped by the drop_oldest policy (also reported through onDrop). */
  dropped: number;
  /** Send attempts that failed transiently (network, 5xx, 429) and will be retried. */
  retries: number;
  /** Events waiting in the queue. */
  queued: number;
  queuedBytes: number;
  /** Damaged records skipped when the disk queue was opened. */
  corrupt: number;
}

export interface AgentOptions {
  onError?(e: DeliveryError): void;
  onDrop?(count: number): void;
  /** Swap the transport (tests); default: HTTP if ingestUrl, else NATS. */
  transport?: Transport;
  rand?: () => number;
}

export type PartialMetrics = Partial<UsageMetrics>;

export interface UsageInput {
  ucxlAddr: string;
  /** Step of the run: with (agent, run) it determines the correlation id. */
  step?: string | number;
  runId?: string;
  /** Explicit ids win over the derived ones. */
  correlationId?: string;
  jobId?: string;
  startedAt: Date | string;
  endedAt?: Date | string;
  status?: JobStatus;
  metrics?: PartialMetrics;
  llm?: LlmUsage;
  meta?: Record<string, string>;
  /** Per-event identity overrides (simulators speak for many agents/nodes). */
  agent?: Partial<UsageEvent['agent']>;
  node?: Partial<UsageEvent['node']>;
  /** Attribution (feature, user, project, team…); added to the tags of the current withTags() scope. */
  tags?: Tags;
}

export interface JobContext {
  correlationId: string;
  jobId: string;
  /** Adds to the job's metrics (gpu seconds, I/O, context operations…). */
  add(m: PartialMetrics): void;
  /** Records model usage (tokens add up if called again for the same model). */
  llm(u: LlmUsage): void;
  meta(key: string, value: string): void;
}

export interface JobOptions {
  step?: string | number;
  runId?: string;
  meta?: Record<string, string>;
}

/** The job() running in this async context: model calls inside it add to its one usage event. */
const jobScope = new AsyncLocalStorage<{ agent: KachingAgent; ctx: JobContext }>();

/** The job context of `agent` this call runs inside, if any (model-client wrappers record into it). */
export function currentJob(agent: KachingAgent): JobContext | undefined {
  const s = jobScope.getStore();
  return s?.agent === agent ? s.ctx : undefined;
}

/** Adds one model call's tokens to another's (same model): every count, cache and reasoning included. */
export function addLlm(a: LlmUsage, b: LlmUsage): LlmUsage {
  const sum = (x?: number, y?: number) => (x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0));
  const out: LlmUsage = { ...a, tokens_in: a.tokens_in + b.tokens_in, tokens_out: a.tokens_out + b.tokens_out };
  for (const k of ['tokens_cached_in', 'tokens_cache_write', 'tokens_reasoning'] as const) {
    const v = sum(a[k], b[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

const METRIC_KEYS: (keyof UsageMetrics)[] = [
  'cpu_seconds',
  'gpu_seconds',
  'ram_mb_peak',
  'disk_io_mb',
  'net_in_mb',
  'net_out_mb',
  'context_reads',
  'context_writes',
  'context_bytes_read',
  'context_bytes_written',
];
const INTEGER_METRICS = new Set<keyof UsageMetrics>(['context_reads', 'context_writes', 'context_bytes_read', 'context_bytes_written']);

/** Metric values as the schema stores them: seconds to µs, megabytes to 3 decimals, counts as integers. */
export function normalizeMetrics(m: PartialMetrics = {}): UsageMetrics {
  const out = {} as UsageMetrics;
  for (const k of METRIC_KEYS) {
    const v = Number(m[k] ?? 0);
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`metric ${k} must be a finite non-negative number`);
    out[k] = INTEGER_METRICS.has(k) ? Math.round(v) : k.endsWith('seconds') ? Math.round(v * 1e6) / 1e6 : Math.round(v * 1e3) / 1e3;
  }
  return out;
}

const iso = (d: Date | string) => (typeof d === 'string' ? d : d.toISOString());
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Client-side redaction of named ucxl segments (`ucxl://agent:role@project:task/path`, keyed path segments). */
export function redactAddr(addr: string, segments: readonly string[]): string {
  if (!segments.length) return addr;
  const want = new Set(segments);
  const m = /^ucxl:\/\/([^:@/]*):([^@/]*)@([^:/]*):([^/]*)(\/.*)?$/.exec(addr);
  if (!m) return addr;
  const parts = m.slice(1, 5).map((p, i) => (want.has(['agent', 'role', 'project', 'task'][i]!) && p ? '[redacted]' : p));
  let tail = m[5] ?? '';
  if (tail && want.has('path')) tail = '/[redacted]';
  else if (tail) {
    const segs = tail.slice(1).split('/');
    for (let i = 0; i < segs.length - 1; i++) if (want.has(segs[i]!)) segs[i + 1] = '[redacted]';
    tail = '/' + segs.join('/');
  }
  return `ucxl://${parts[0]}:${parts[1]}@${parts[2]}:${parts[3]}${tail}`;
}

/**
 * A KACHING agent: signs usage and job-status events, writes them to its queue (durable when
 * queueDir is set) and ships them to ingest in batches, in order, until each one is answered.
 */
export class KachingAgent {
  readonly agentId: string;
  readonly nodeId: string;
  readonly runId: string;
  private readonly signer: EventSigner;
  private readonly transport: Transport;
  private readonly abort = new AbortController();
  private readonly settled = new Set<number>();
  private readonly counters = { produced: 0, accepted: 0, duplicates: 0, failed: 0, deadLettered: 0, retries: 0 };
  private deadLetterCount = 0;
  private sender: Promise<void> | undefined;
  private kick: (() => void) | undefined;
  private stepCounter = 0;
  private closed = false;
  private batchLimit: number;
  /** One Merkle signature per batch (default); falls back to per-event signatures for an ingest without batch_sig. */
  private batchSigning: boolean;

  private constructor(
    readonly config: AgentConfig,
    private readonly queue: EventQueue,
    private readonly deadLetterStore: DeadLetterStore,
    private readonly opts: AgentOptions,
  ) {
    this.signer = config.secretKey ? new EventSigner(config.keyId, config.secretKey) : EventSigner.fromFile(config.keyId, config.keyPath!);
    this.agentId = config.agentId ?? uuidV5(`agent\u001f${config.hostname}\u001f${config.agentType}`, IDENTITY_NAMESPACE);
    this.nodeId = config.nodeId ?? uuidV5(`node\u001f${config.hostname}`, IDENTITY_NAMESPACE);
    this.runId = config.runId ?? randomUUID();
    this.batchLimit = config.maxBatch;
    this.batchSigning = config.signing === 'batch';
    this.transport =
      opts.transport ??
      (config.ingestUrl
        ? new HttpTransport(config.ingestUrl, config.token, config.requestTimeoutMs, undefined, tlsFiles(config))
        : new NatsTransport(config.natsUrl!, `${config.namespace}.ingest.${config.deploymentId}`, config.token, config.requestTimeoutMs, natsAuth(config)));
  }

  static async create(config: Parameters<typeof validateAgentConfig>[0], opts: AgentOptions = {}): Promise<KachingAgent> {
    const cfg = validateAgentConfig(config);
    let agent: KachingAgent | undefined;
    const qopts = { maxBytes: cfg.queueMaxBytes, onFull: cfg.onFull, onDrop: (n: number) => opts.onDrop?.(n) };
    const queue = cfg.queueDir ? await DiskQueue.open(cfg.queueDir, qopts) : new MemoryQueue(qopts);
    const dlPath = deadLetterPathOf(cfg);
    const deadLetters = dlPath ? new DeadLetterFile(dlPath) : new MemoryDeadLetters();
    agent = new KachingAgent(cfg, queue, deadLetters, opts);
    agent.deadLetterCount = await deadLetters.count();
    agent.sender = agent.sendLoop();
    return agent;
  }

  /** The public key (base64) matching this agent's secret key, for `kaching key register`. */
  get publicKey(): string {
    return this.signer.publicKey;
  }

  correlationId(step: string | number, runId = this.runId): string {
    return makeCorrelationId(this.agentId, runId, step);
  }

  stats(): AgentStats {
    return {
      ...this.counters,
      deadLetters: this.deadLetterCount,
      dropped: this.queue.dropped,
      queued: this.queue.length,
      queuedBytes: this.queue.bytes,
      corrupt: this.queue.corrupt,
    };
  }

  private identity(input: { agent?: Partial<UsageEvent['agent']>; node?: Partial<UsageEvent['node']> }) {
    const agent: UsageEvent['agent'] = { agent_id: this.agentId, agent_type: this.config.agentType, ...input.agent };
    if (!agent.version && this.config.agentVersion) agent.version = this.config.agentVersion;
    const node: UsageEvent['node'] = { node_id: this.nodeId, hostname: this.config.hostname, ...input.node };
    if (!node.hw_class && this.config.hwClass) node.hw_class = this.config.hwClass;
    return { agent, node };
  }

  private ids(input: { step?: string | number; runId?: string; correlationId?: string; jobId?: string; agent?: Partial<UsageEvent['agent']> }) {
    const agentId = input.agent?.agent_id ?? this.agentId;
    const runId = input.runId ?? this.runId;
    const step = input.step ?? `auto-${++this.stepCounter}`;
    return {
      correlationId: input.correlationId ?? makeCorrelationId(agentId, runId, step),
      jobId: input.jobId ?? jobIdFor(agentId, runId, step),
    };
  }

  /** Builds and signs a usage event without queueing it. */
  buildUsage(input: UsageInput): UsageEvent {
    return this.signer.sign<UsageEvent>(this.unsignedUsage(input));
  }

  private unsignedUsage(input: UsageInput): Unsigned<UsageEvent> {
    const { correlationId, jobId } = this.ids(input);
    const { agent, node } = this.identity(input);
    const job: UsageEvent['job'] = {
      job_id: jobId,
      correlation_id: correlationId,
      ucxl_addr: redactAddr(input.ucxlAddr, this.config.redactSegments),
      started_at: iso(input.startedAt),
      status: input.status ?? 'succeeded',
    };
    const endedAt = input.endedAt ?? (job.status === 'running' ? undefined : new Date());
    if (endedAt !== undefined) job.ended_at = iso(endedAt);
    if (input.meta && Object.keys(input.meta).length) job.meta = input.meta;
    const unsigned: Unsigned<UsageEvent> = {
      schema: USAGE_SCHEMA,
      deployment_id: this.config.deploymentId,
      agent,
      node,
      job,
      metrics: normalizeMetrics(input.metrics),
    };
    if (input.llm) unsigned.llm = input.llm;
    const tags = { ...currentTags(), ...(input.tags ? checkTags(input.tags) : {}) };
    if (Object.keys(tags).length) unsigned.tags = checkTags(tags);
    return unsigned;
  }

  /**
   * Queues one usage event; resolves once it is durable in the queue (fsync'd when queueDir is set). With
   * batch signing (the default) it is queued unsigned and signed with its batch when sent.
   */
  async emitUsage(input: UsageInput): Promise<{ correlationId: string }> {
    const ev = this.batchSigning ? this.unsignedUsage(input) : this.buildUsage(input);
    await this.enqueue([ev]);
    return { correlationId: ev.job.correlation_id };
  }

  /** Queues several already-built events (signed, or unsigned to be signed with their batch) with one fsync. */
  async enqueue(events: (SignedEvent | Unsigned<SignedEvent>)[]): Promise<void> {
    if (this.closed) throw new Error('agent closed');
    this.counters.produced += events.length;
    await this.queue.append(events.map((e) => Buffer.from(JSON.stringify(e), 'utf8')));
    if (this.queue.length >= this.batchLimit) this.kick?.();
  }

  async emitJobStatus(input: {
    correlationId: string;
    jobId: string;
    ucxlAddr?: string;
    startedAt: Date | string;
    status: JobStatus;
    observedAt?: Date;
    agent?: Partial<UsageEvent['agent']>;
    node?: Partial<UsageEvent['node']>;
  }): Promise<void> {
    const { agent, node } = this.identity(input);
    const job: JobStatusEvent['job'] = {
      job_id: input.jobId,
      correlation_id: input.correlationId,
      started_at: iso(input.startedAt),
      status: input.status,
    };
    if (input.ucxlAddr) job.ucxl_addr = redactAddr(input.ucxlAddr, this.config.redactSegments);
    const unsigned: Unsigned<JobStatusEvent> = {
      schema: JOB_STATUS_SCHEMA,
      deployment_id: this.config.deploymentId,
      agent,
      node,
      job,
      observed_at: (input.observedAt ?? new Date()).toISOString(),
    };
    await this.enqueue([this.batchSigning ? unsigned : this.signer.sign<JobStatusEvent>(unsigned)]);
  }

  /**
   * Runs `fn` as one job: a `running` heartbeat at once and every heartbeatIntervalMs, then the usage
   * event (CPU time of this process and wall time measured around `fn`), succeeded or failed.
   * `fn`'s result or error is passed through.
   */
  async job<T>(ucxlAddr: string, fn: (ctx: JobContext) => Promise<T> | T, opts: JobOptions = {}): Promise<T> {
    const { correlationId, jobId } = this.ids(opts);
    const startedAt = new Date();
    const cpu0 = process.cpuUsage();
    const extra: PartialMetrics = {};
    let ramPeak = process.memoryUsage().rss;
    const llms = new Map<string, LlmUsage>();
    const meta: Record<string, string> = { ...opts.meta };
    const ctx: JobContext = {
      correlationId,
      jobId,
      add(m) {
        for (const [k, v] of Object.entries(m) as [keyof UsageMetrics, number][]) extra[k] = (extra[k] ?? 0) + v;
      },
      llm(u) {
        const key = `${u.provider}\u001f${u.model_name}`;
        const prev = llms.get(key);
        llms.set(key, prev ? addLlm(prev, u) : { ...u });
      },
      meta(k, v) {
        meta[k] = v;
      },
    };
    const beat = () =>
      this.emitJobStatus({ correlationId, jobId, ucxlAddr, startedAt, status: 'running' }).catch(() => undefined);
    await beat();
    const timer = setInterval(() => {
      ramPeak = Math.max(ramPeak, process.memoryUsage().rss);
      void beat();
    }, this.config.heartbeatIntervalMs);
    timer.unref();
    let status: JobStatus = 'succeeded';
    try {
      return await jobScope.run({ agent: this, ctx }, () => fn(ctx));
    } catch (e) {
      status = 'failed';
      throw e;
    } finally {
      clearInterval(timer);
      const cpu = process.cpuUsage(cpu0);
      ramPeak = Math.max(ramPeak, process.memoryUsage().rss);
      const endedAt = new Date();
      const wallMs = endedAt.getTime() - startedAt.getTime();
      meta.wall_ms = String(wallMs);
      const metrics: PartialMetrics = {
        ...extra,
        cpu_seconds: (cpu.user + cpu.system) / 1e6 + (extra.cpu_seconds ?? 0),
        ram_mb_peak: Math.max(ramPeak / (1024 * 1024), extra.ram_mb_peak ?? 0),
      };
      // One usage event per job; several models are summed under the first (the schema holds one).
      const llm = [...llms.values()];
      const first = llm[0];
      const merged = first ? llm.slice(1).reduce((a, b) => addLlm(a, b), first) : undefined;
      await this.emitUsage({ ucxlAddr, correlationId, jobId, startedAt, endedAt, status, metrics, llm: merged, meta });
    }
  }

  /** Sends now and waits until the queue is empty (or `timeoutMs` passes); returns what is left. */
  async flush(timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 && Date.now() < deadline && !this.abort.signal.aborted) {
      this.kick?.();
      await sleep(20);
    }
    return this.queue.length;
  }

  private async sendLoop(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      // Wait for a full batch or the flush interval, whichever first.
      if (this.queue.length < this.batchLimit) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, this.config.flushIntervalMs);
          const onAbort = () => done();
          signal.addEventListener('abort', onAbort, { once: true });
          this.kick = done;
          function done() {
            clearTimeout(t);
            signal.removeEventListener('abort', onAbort);
            resolve();
          }
        });
        this.kick = undefined;
      }
      if (signal.aborted) break;
      if (this.queue.length === 0) continue;
      const delay = await this.sendOnce().catch(() => -1);
      if (delay === 0) {
        attempt = 0;
        continue;
      }
      this.counters.retries++;
      const wait = Math.max(delay === -1 ? 0 : delay, backoffDelay(attempt++, { baseMs: this.config.backoffBaseMs, maxMs: this.config.backoffMaxMs }, this.opts.rand));
      await sleep(wait, signal);
    }
  }

  /** One batch from the head of the queue. Returns 0 on progress, else a minimum wait (-1: none) before retrying. */
  private async sendOnce(): Promise<number> {
    const entries = this.queue.peek(this.batchLimit + this.settled.size).filter((e) => !this.settled.has(e.id)).slice(0, this.batchLimit);
    if (entries.length === 0) {
      await this.ackPrefix();
      return 0;
    }
    const queued = entries.map((e) => JSON.parse(e.payload.toString('utf8')) as SignedEvent | Unsigned<SignedEvent>);
    // Signed batches: the events go without `sig` and the batch carries one signature over their tree head.
    const batchSigned = this.batchSigning;
    const events: (SignedEvent | Unsigned<SignedEvent>)[] = batchSigned
      ? queued.map(({ sig: _sig, ...rest }: SignedEvent | (Unsigned<SignedEvent> & { sig?: unknown })) => rest as Unsigned<SignedEvent>)
      : queued.map((e) => ('sig' in e && e.sig ? (e as SignedEvent) : this.signer.sign<SignedEvent>(e)));
    let outcome: BatchOutcome;
    try {
      outcome = await this.transport.sendBatch(events, batchSigned ? this.signer.signBatch(events) : undefined);
    } catch (e) {
      if (e instanceof TransportError) return -1;
      throw e;
    }
    if (outcome.kind === 'whole') {
      const s = outcome.status;
      if (batchSigned && s === 400 && outcome.error?.field === 'batch_sig') {
        // an ingest that predates signed batches: sign each event instead, from now on
        this.batchSigning = false;
        return -1;
      }
      if (s >= 200 && s < 300) {
        entries.forEach((e) => this.settled.add(e.id));
        this.counters.accepted += entries.length;
      } else if ((s === 413 || outcome.error?.code === 'BATCH_TOO_LARGE') && this.batchLimit > 1) {
        this.batchLimit = Math.max(1, Math.floor(entries.length / 2));
        return -1;
      } else if (isPermanentStatus(s)) {
        await this.fail(entries.map((e, i) => ({ id: e.id, event: events[i]!, outcome: { status: s, ...(outcome.error ? { error: outcome.error } : {}) } })));
      } else {
        return outcome.retryAfterMs ?? -1;
      }
      await this.ackPrefix();
      return 0;
    }
    let retry = false;
    const refused: { id: number; event: SignedEvent | Unsigned<SignedEvent>; outcome: ItemOutcome }[] = [];
    outcome.items.forEach((item, i) => {
      const id = entries[i]!.id;
      if (item.status >= 200 && item.status < 300) {
        this.settled.add(id);
        if (item.duplicate) this.counters.duplicates++;
        else this.counters.accepted++;
      } else if (isPermanentStatus(item.status)) {
        refused.push({ id, event: events[i]!, outcome: item });
      } else retry = true;
    });
    await this.fail(refused);
    await this.ackPrefix();
    return retry ? (outcome.retryAfterMs ?? -1) : 0;
  }

  /**
   * Permanently refused events go to the dead-letter store first; only once that write is durable do they
   * count as answered and leave the queue. If the write fails they stay queued and are sent again.
   */
  private async fail(refused: { id: number; event: SignedEvent | Unsigned<SignedEvent>; outcome: ItemOutcome }[]): Promise<void> {
    if (!refused.length) return;
    // a batch-signed event is signed on its own for the dead-letter file, so it can be replayed by itself
    const letters = refused.map((r) => deadLetterFrom('sig' in r.event && r.event.sig ? (r.event as SignedEvent) : this.signer.sign<SignedEvent>(r.event), r.outcome));
    await this.deadLetterStore.add(letters);
    this.deadLetterCount += letters.length;
    for (const [i, r] of refused.entries()) {
      this.settled.add(r.id);
      this.counters.failed++;
      this.counters.deadLettered++;
      const d = letters[i]!;
      const err: DeliveryError = {
        correlationId: d.correlation_id,
        kind: d.kind,
        status: d.status,
        code: d.code,
        message: d.message,
        ...(d.field ? { field: d.field } : {}),
        ...(this.deadLetterStore.path ? { deadLetterPath: this.deadLetterStore.path } : {}),
      };
      try {
        this.opts.onError?.(err);
      } catch {
        /* a faulty callback must not stop delivery */
      }
    }
  }

  /** The events ingest refused for good, with the refusal, oldest first. */
  deadLetters(): Promise<DeadLetter[]> {
    return this.deadLetterStore.list();
  }

  /**
   * Sends dead letters again (after the operator fixed the cause); accepted ones leave the store, refused
   * ones stay with the new refusal. `resign: true` signs them with this agent's current key first.
   */
  async replayDeadLetters(opts: Omit<ReplayOptions, 'resign'> & { resign?: boolean } = {}): Promise<ReplayReport> {
    const { resign, ...rest } = opts;
    const report = await replayDeadLetters(this.deadLetterStore, this.transport, { batchSize: this.batchLimit, ...rest, ...(resign ? { resign: this.signer } : {}) });
    this.deadLetterCount = await this.deadLetterStore.count();
    return report;
  }

  /** Acknowledges the answered prefix of the queue (order on disk is kept; out-of-order answers wait in `settled`). */
  private async ackPrefix(): Promise<void> {
    let upto = 0;
    for (const e of this.queue.peek(this.settled.size)) {
      if (!this.settled.has(e.id)) break;
      upto = e.id;
    }
    if (upto === 0) return;
    await this.queue.ack(upto);
    const head = this.queue.peek(1)[0];
    // Ids below the head were acked or dropped (drop_oldest): forget them.
    for (const id of this.settled) if (id <= upto || !head || id < head.id) this.settled.delete(id);
  }

  /** Stops sending (after a best-effort flush of up to `flushTimeoutMs`); queued events stay on disk. */
  async close(flushTimeoutMs = 0): Promise<void> {
    if (this.closed) return;
    if (flushTimeoutMs > 0) await this.flush(flushTimeoutMs);
    this.closed = true;
    this.abort.abort();
    await this.sender?.catch(() => undefined);
    await this.queue.close();
    await this.transport.close();
  }
}

/** The agent's dead-letter file: dead_letter_path, else `dead-letter.jsonl` in the queue directory, else none (memory). */
export function deadLetterPathOf(cfg: Pick<AgentConfig, 'deadLetterPath' | 'queueDir'>): string | undefined {
  return cfg.deadLetterPath ?? (cfg.queueDir ? path.join(cfg.queueDir, 'dead-letter.jsonl') : undefined);
}

/** Creates an agent and starts its sender. */
export function createAgent(config: Parameters<typeof validateAgentConfig>[0], opts: AgentOptions = {}): Promise<KachingAgent> {
  return KachingAgent.create(config, opts);
}

function natsAuth(c: AgentConfig): ConstructorParameters<typeof NatsTransport>[4] {
  const t = tlsFiles(c);
  const tls = { ...(t.ca ? { ca: t.ca.toString() } : {}), ...(t.cert && t.key ? { cert: t.cert.toString(), key: t.key.toString() } : {}) };
  return { ...(c.natsUser ? { user: c.natsUser } : {}), ...(c.natsPassword ? { pass: c.natsPassword } : {}), tls };
}

/** The agent's TLS files, read once at start (a wrong path fails at once, not at the first flush). */
function tlsFiles(c: AgentConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  return {
    ...(c.tlsCa ? { ca: readFileSync(c.tlsCa) } : {}),
    ...(c.tlsCert && c.tlsKey ? { cert: readFileSync(c.tlsCert), key: readFileSync(c.tlsKey) } : {}),
  };
}
