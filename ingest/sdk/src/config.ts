import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { OnFull } from './queue.js';

/** Everything an agent needs to report usage. */
export interface AgentConfig {
  /** HTTP bridge, e.g. http://127.0.0.1:7070 (one of ingestUrl / natsUrl). */
  ingestUrl?: string;
  /** NATS server; requests go to `<namespace>.ingest.<deployment>`. */
  natsUrl?: string;
  namespace: string;
  token: string;
  deploymentId: string;
  keyId: string;
  /** File holding the base64 Ed25519 secret key (64-byte libsodium form or 32-byte seed). */
  keyPath?: string;
  /** The secret key itself (base64), instead of keyPath. */
  secretKey?: string;
  agentId?: string;
  agentType: string;
  agentVersion?: string;
  nodeId?: string;
  hostname: string;
  hwClass?: string;
  /** Default run id for correlation ids; a fresh random one per process if absent. */
  runId?: string;
  flushIntervalMs: number;
  maxBatch: number;
  /** ucxl_addr segment names the agent redacts itself before signing (ingest may redact more). */
  redactSegments: string[];
  /** Directory of the on-disk queue; absent = an in-memory queue (lost on crash). */
  queueDir?: string;
  queueMaxBytes: number;
  onFull: OnFull;
  /**
   * JSON Lines file of events ingest refused for good, with the refusal (list and replay them with
   * `kaching agent dead-letter list|replay`). Default: `dead-letter.jsonl` in queueDir; without either, an
   * in-memory list (`agent.deadLetters()`), lost with the process like the in-memory queue.
   */
  deadLetterPath?: string;
  heartbeatIntervalMs: number;
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** NATS only: this agent's NATS user and password (deploy/nats/secure.conf, account AGENTS). */
  natsUser?: string;
  natsPassword?: string;
  /** PEM file of the CA that signed ingest's (or nats-server's) certificate (default: the system's CAs). */
  tlsCa?: string;
  /** This agent's client certificate and key (PEM files), for ingest with mTLS (INGEST_TLS_CLIENT_CA) or nats-server `verify`. */
  tlsCert?: string;
  tlsKey?: string;
  /** `batch`: one Merkle-root signature per batch (ingest verifies once); `event`: each event signed alone. */
  signing: 'batch' | 'event';
}

export const AGENT_DEFAULTS = {
  namespace: 'kaching',
  agentType: 'generic',
  flushIntervalMs: 1000,
  maxBatch: 200,
  queueMaxBytes: 64 * 1024 * 1024,
  onFull: 'block' as OnFull,
  heartbeatIntervalMs: 15_000,
  requestTimeoutMs: 10_000,
  backoffBaseMs: 200,
  backoffMaxMs: 30_000,
  signing: 'batch' as 'batch' | 'event',
};

/** Config keys as written in YAML (snake_case) → environment variable. */
const KEYS: Record<string, { env: string; field: keyof AgentConfig; kind: 'string' | 'int' | 'list' | 'onfull' }> = {
  ingest_url: { env: 'KACHING_INGEST_URL', field: 'ingestUrl', kind: 'string' },
  nats_url: { env: 'KACHING_NATS_URL', field: 'natsUrl', kind: 'string' },
  namespace: { env: 'KACHING_NAMESPACE', field: 'namespace', kind: 'string' },
  token: { env: 'KACHING_TOKEN', field: 'token', kind: 'string' },
  deployment_id: { env: 'KACHING_DEPLOYMENT_ID', field: 'deploymentId', kind: 'string' },
  key_id: { env: 'KACHING_KEY_ID', field: 'keyId', kind: 'string' },
  key_path: { env: 'KACHING_KEY_PATH', field: 'keyPath', kind: 'string' },
  secret_key: { env: 'KACHING_SECRET_KEY', field: 'secretKey', kind: 'string' },
  agent_id: { env: 'KACHING_AGENT_ID', field: 'agentId', kind: 'string' },
  agent_type: { env: 'KACHING_AGENT_TYPE', field: 'agentType', kind: 'string' },
  agent_version: { env: 'KACHING_AGENT_VERSION', field: 'agentVersion', kind: 'string' },
  node_id: { env: 'KACHING_NODE_ID', field: 'nodeId', kind: 'string' },
  hostname: { env: 'KACHING_HOSTNAME', field: 'hostname', kind: 'string' },
  hw_class: { env: 'KACHING_HW_CLASS', field: 'hwClass', kind: 'string' },
  run_id: { env: 'KACHING_RUN_ID', field: 'runId', kind: 'string' },
  flush_interval_ms: { env: 'KACHING_FLUSH_INTERVAL_MS', field: 'flushIntervalMs', kind: 'int' },
  max_batch: { env: 'KACHING_MAX_BATCH', field: 'maxBatch', kind: 'int' },
  redact_segments: { env: 'KACHING_REDACT_SEGMENTS', field: 'redactSegments', kind: 'list' },
  queue_dir: { env: 'KACHING_QUEUE_DIR', field: 'queueDir', kind: 'string' },
  queue_max_bytes: { env: 'KACHING_QUEUE_MAX_BYTES', field: 'queueMaxBytes', kind: 'int' },
  on_full: { env: 'KACHING_ON_FULL', field: 'onFull', kind: 'onfull' },
  dead_letter_path: { env: 'KACHING_DEAD_LETTER_PATH', field: 'deadLetterPath', kind: 'string' },
  heartbeat_interval_ms: { env: 'KACHING_HEARTBEAT_INTERVAL_MS', field: 'heartbeatIntervalMs', kind: 'int' },
  request_timeout_ms: { env: 'KACHING_REQUEST_TIMEOUT_MS', field: 'requestTimeoutMs', kind: 'int' },
  backoff_base_ms: { env: 'KACHING_BACKOFF_BASE_MS', field: 'backoffBaseMs', kind: 'int' },
  backoff_max_ms: { env: 'KACHING_BACKOFF_MAX_MS', field: 'backoffMaxMs', kind: 'int' },
  signing: { env: 'KACHING_SIGNING', field: 'signing', kind: 'string' },
  nats_user: { env: 'KACHING_NATS_USER', field: 'natsUser', kind: 'string' },
  nats_password: { env: 'KACHING_NATS_PASSWORD', field: 'natsPassword', kind: 'string' },
  tls_ca: { env: 'KACHING_TLS_CA', field: 'tlsCa', kind: 'string' },
  tls_cert: { env: 'KACHING_TLS_CERT', field: 'tlsCert', kind: 'string' },
  tls_key: { env: 'KACHING_TLS_KEY', field: 'tlsKey', kind: 'string' },
};

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}

export type FlatValue = string | string[];

/**
 * The YAML the SDK reads: a flat mapping of `key: value` lines, `#` comments, quoted or bare
 * scalars, and lists either inline (`[a, b]`) or as `- item` lines under a `key:` line.
 * A JSON object is accepted too (JSON is YAML).
 */
export function parseFlatYaml(text: string): Record<string, FlatValue> {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const o = JSON.parse(trimmed) as Record<string, unknown>;
    const out: Record<string, FlatValue> = {};
    for (const [k, v] of Object.entries(o)) out[k] = Array.isArray(v) ? v.map(String) : String(v);
    return out;
  }
  const out: Record<string, FlatValue> = {};
  let listKey: string | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = stripComment(raw).trimEnd();
    if (!line.trim() || line.trim() === '---') return;
    const item = /^\s+-\s*(.*)$/.exec(line) ?? /^-\s+(.*)$/.exec(line);
    if (item && listKey) {
      (out[listKey] as string[]).push(scalar(item[1]!));
      return;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$/.exec(line);
    if (!m) throw new AgentConfigError(`config line ${i + 1}: expected "key: value"`);
    const [, key, value] = m as unknown as [string, string, string];
    if (value === '') {
      out[key] = [];
      listKey = key;
    } else if (value.startsWith('[')) {
      if (!value.endsWith(']')) throw new AgentConfigError(`config line ${i + 1}: unterminated list`);
      const inner = value.slice(1, -1).trim();
      out[key] = inner ? inner.split(',').map((s) => scalar(s.trim())) : [];
      listKey = null;
    } else {
      out[key] = scalar(value);
      listKey = null;
    }
  });
  return out;
}

function stripComment(line: string): string {
  let q: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function scalar(v: string): string {
  const s = v.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) return JSON.parse(s) as string;
  if (s.length >= 2 && s.startsWith("'") && s.endsWith("'")) return s.slice(1, -1).replace(/''/g, "'");
  return s;
}

/**
 * Config from (lowest to highest precedence) defaults, a YAML/JSON file (`file`, or
 * KACHING_AGENT_CONFIG), the environment, and explicit overrides.
 */
export function loadAgentConfig(opts: { env?: NodeJS.ProcessEnv; file?: string; overrides?: Partial<AgentConfig> } = {}): AgentConfig {
  const env = opts.env ?? process.env;
  const raw: Record<string, FlatValue> = {};
  const file = opts.file ?? env.KACHING_AGENT_CONFIG;
  if (file) {
    const parsed = parseFlatYaml(readFileSync(file, 'utf8'));
    for (const [k, v] of Object.entries(parsed)) {
      if (!KEYS[k]) throw new AgentConfigError(`${file}: unknown key "${k}"`);
      raw[k] = v;
    }
  }
  for (const [k, spec] of Object.entries(KEYS)) {
    const v = env[spec.env];
    if (v !== undefined && v !== '') raw[k] = spec.kind === 'list' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  }
  const cfg: Record<string, unknown> = { ...AGENT_DEFAULTS, hostname: os.hostname(), redactSegments: [] };
  for (const [k, v] of Object.entries(raw)) {
    const spec = KEYS[k]!;
    cfg[spec.field] = convert(k, spec.kind, v);
  }
  return validateAgentConfig({ ...(cfg as unknown as AgentConfig), ...(opts.overrides ?? {}) });
}

function convert(key: string, kind: 'string' | 'int' | 'list' | 'onfull', v: FlatValue): unknown {
  if (kind === 'list') return Array.isArray(v) ? v : v.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(v)) throw new AgentConfigError(`${key} must be a single value`);
  if (kind === 'int') {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new AgentConfigError(`${key}="${v}" must be a non-negative integer`);
    return n;
  }
  if (kind === 'onfull' && v !== 'block' && v !== 'drop_oldest') throw new AgentConfigError(`${key} must be block or drop_oldest`);
  return v;
}

/** Fills defaults for a programmatic config and checks the essentials. */
export function validateAgentConfig(c: Partial<AgentConfig> & Pick<AgentConfig, 'token' | 'deploymentId' | 'keyId'>): AgentConfig {
  const cfg: AgentConfig = { ...AGENT_DEFAULTS, hostname: os.hostname(), redactSegments: [], ...stripUndefined(c) } as AgentConfig;
  const missing = (['token', 'deploymentId', 'keyId'] as const).filter((k) => !cfg[k]);
  if (missing.length) throw new AgentConfigError(`missing agent config: ${missing.join(', ')}`);
  if (!cfg.ingestUrl && !cfg.natsUrl) throw new AgentConfigError('set ingest_url (KACHING_INGEST_URL) or nats_url (KACHING_NATS_URL)');
  if (!cfg.keyPath && !cfg.secretKey) throw new AgentConfigError('set key_path (KACHING_KEY_PATH) or secret_key');
  if (cfg.maxBatch < 1) throw new AgentConfigError('max_batch must be at least 1');
  if (cfg.onFull !== 'block' && cfg.onFull !== 'drop_oldest') throw new AgentConfigError('on_full must be block or drop_oldest');
  if (cfg.signing !== 'batch' && cfg.signing !== 'event') throw new AgentConfigError('signing must be batch or event');
  if (!cfg.tlsCert !== !cfg.tlsKey) throw new AgentConfigError('tls_cert and tls_key go together');
  return cfg;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
