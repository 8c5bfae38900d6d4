import { createHash } from 'node:crypto';
import { InputError, USAGE_SCHEMA, type LlmUsage, type UsageEvent } from '@kaching/contracts';

/**
 * OTLP traces (in the OTLP/JSON shape, see otlpWire.ts) → usage events. Only spans carrying OpenTelemetry
 * GenAI usage attributes become events; other spans are ignored (accepted, not rejected).
 * Such events are not agent-signed: the ingest marks them `unsigned_otlp` and stores a placeholder
 * signature (all-zero, key_id `unsigned-otlp`) so they keep the event shape. Ids that the event
 * schema wants as uuids are derived deterministically, so a resent span is the same event.
 */
export const OTLP_PLACEHOLDER_KEY_ID = 'unsigned-otlp';
const ZERO_SIG = Buffer.alloc(64).toString('base64');

/**
 * GenAI attribute names, current semantic conventions first, then the names they replaced and the
 * spellings instrumentations still send (OpenLLMetry, Anthropic-shaped usage). The first one present wins.
 */
export const GENAI_ATTRIBUTES = {
  input: ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens'],
  output: ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens'],
  cacheRead: ['gen_ai.usage.cache_read.input_tokens', 'gen_ai.usage.cache_read_input_tokens'],
  cacheWrite: ['gen_ai.usage.cache_creation.input_tokens', 'gen_ai.usage.cache_creation_input_tokens'],
  reasoning: ['gen_ai.usage.reasoning.output_tokens', 'gen_ai.usage.reasoning_tokens'],
  provider: ['gen_ai.provider.name', 'gen_ai.system'],
  model: ['gen_ai.response.model', 'gen_ai.request.model'],
} as const;

/** `gen_ai.system` values the conventions renamed (deprecated → current `gen_ai.provider.name`). */
const RENAMED_SYSTEMS: Record<string, string> = {
  vertex_ai: 'gcp.vertex_ai',
  gemini: 'gcp.gemini',
  'az.ai.inference': 'azure.ai.inference',
  'az.ai.openai': 'azure.ai.openai',
};

/** Agent and workflow spans run in-process sum their child inference spans: pricing both would count twice. */
const AGGREGATE_OPERATIONS = new Set(['invoke_agent', 'invoke_workflow']);
const SPAN_KIND_INTERNAL = 1;

type AnyValue = { stringValue?: unknown; intValue?: unknown; doubleValue?: unknown; boolValue?: unknown };
type KeyValue = { key?: unknown; value?: AnyValue };
type Attr = string | number | boolean;

export interface OtlpRejection {
  /** `<traceId>/<spanId>` as hex, or the span's position when it has no ids. */
  span: string;
  error: InputError;
}

export interface OtlpMapping {
  events: { span: string; event: UsageEvent }[];
  rejected: OtlpRejection[];
  ignoredSpans: number;
}

function list(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError('FIELD_TYPE', { field, rule: 'type:array' });
  return v;
}

function attrs(v: unknown, field: string): Map<string, Attr> {
  const m = new Map<string, Attr>();
  for (const kv of list(v, field) as KeyValue[]) {
    if (typeof kv !== 'object' || kv === null || typeof kv.key !== 'string') continue;
    const val = kv.value ?? {};
    const x = val.stringValue ?? val.intValue ?? val.doubleValue ?? val.boolValue;
    if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') m.set(kv.key, x);
  }
  return m;
}

const first = (a: Map<string, Attr>, names: readonly string[]) => {
  for (const n of names) if (a.has(n)) return { name: n, value: a.get(n)! };
  return undefined;
};

/** A token count: a non-negative integer (int, integral double or digit string, as instrumentations send it). */
function count(a: Map<string, Attr>, names: readonly string[]): number | undefined {
  const hit = first(a, names);
  if (!hit) return undefined;
  const n = typeof hit.value === 'string' && /^\d{1,16}$/.test(hit.value) ? Number(hit.value) : hit.value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new InputError('FIELD_TYPE', { field: hit.name, rule: 'type:integer>=0' });
  }
  return n;
}

/** A stable uuid-shaped id from a name (sha256, version nibble 5-like). */
function derivedUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function nanosToIso(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === '' || v === 0 || v === '0') return undefined;
  if (!(typeof v === 'string' && /^\d{1,20}$/.test(v)) && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) {
    throw new InputError('FIELD_TYPE', { field, rule: 'type:uint64' });
  }
  return new Date(Number(BigInt(v) / 1_000_000n)).toISOString();
}

/**
 * The event's token fields from the span. OpenTelemetry counts cache reads and writes inside
 * `input_tokens` and reasoning inside `output_tokens` — the event's own rule, so they map one to one and the
 * price book prices each token once. An emitter that evidently counted them outside (the parts exceed the
 * total, as in Anthropic's raw usage) gets them added, so no token goes unpriced.
 */
export function genAiUsage(a: Map<string, Attr>): LlmUsage | undefined {
  const tin = count(a, GENAI_ATTRIBUTES.input);
  const tout = count(a, GENAI_ATTRIBUTES.output);
  if (tin === undefined && tout === undefined) return undefined;
  const read = count(a, GENAI_ATTRIBUTES.cacheRead) ?? 0;
  const write = count(a, GENAI_ATTRIBUTES.cacheWrite) ?? 0;
  const reasoning = count(a, GENAI_ATTRIBUTES.reasoning) ?? 0;
  const inTotal = read + write > (tin ?? 0) ? (tin ?? 0) + read + write : (tin ?? 0);
  const outTotal = reasoning > (tout ?? 0) ? (tout ?? 0) + reasoning : (tout ?? 0);
  const system = first(a, GENAI_ATTRIBUTES.provider);
  const provider = system ? String(system.value) : 'unknown';
  const llm: LlmUsage = {
    model_name: String(first(a, GENAI_ATTRIBUTES.model)?.value ?? 'unknown'),
    provider: system?.name === 'gen_ai.system' ? (RENAMED_SYSTEMS[provider] ?? provider) : provider,
    tokens_in: inTotal,
    tokens_out: outTotal,
  };
  if (read) llm.tokens_cached_in = read;
  if (write) llm.tokens_cache_write = write;
  if (reasoning) llm.tokens_reasoning = reasoning;
  return llm;
}

interface OtlpSpan {
  traceId?: unknown;
  spanId?: unknown;
  kind?: unknown;
  startTimeUnixNano?: unknown;
  endTimeUnixNano?: unknown;
  attributes?: unknown;
  status?: { code?: unknown };
}

export function otlpToUsageEvents(body: unknown, deploymentId: string): OtlpMapping {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InputError('FIELD_TYPE', { field: 'body', rule: 'type:object', message: 'An ExportTraceServiceRequest is {"resourceSpans":[...]}' });
  }
  const out: OtlpMapping = { events: [], rejected: [], ignoredSpans: 0 };
  const resourceSpans = list((body as { resourceSpans?: unknown }).resourceSpans, 'resourceSpans') as { resource?: { attributes?: unknown }; scopeSpans?: unknown }[];
  resourceSpans.forEach((rs, i) => {
    const res = attrs(rs?.resource?.attributes, `resourceSpans[${i}].resource.attributes`);
    const service = String(res.get('service.name') ?? 'otlp');
    const host = String(res.get('host.name') ?? 'unknown');
    (list(rs?.scopeSpans, `resourceSpans[${i}].scopeSpans`) as { spans?: unknown }[]).forEach((ss, j) => {
      (list(ss?.spans, `resourceSpans[${i}].scopeSpans[${j}].spans`) as OtlpSpan[]).forEach((span, k) => {
        const at = `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`;
        const ids = typeof span?.traceId === 'string' && typeof span.spanId === 'string' ? `${span.traceId}/${span.spanId}` : at;
        try {
          const a = attrs(span?.attributes, `${at}.attributes`);
          const op = a.get('gen_ai.operation.name');
          if (typeof op === 'string' && AGGREGATE_OPERATIONS.has(op) && span.kind === SPAN_KIND_INTERNAL) {
            out.ignoredSpans++;
            return;
          }
          const llm = genAiUsage(a);
          if (!llm) {
            out.ignoredSpans++;
            return;
          }
          const idOk = (v: unknown, len: number) => typeof v === 'string' && new RegExp(`^[0-9a-f]{${len}}$`, 'i').test(v) && !/^0+$/.test(v);
          if (!idOk(span.traceId, 32)) throw new InputError('FIELD_FORMAT', { field: `${at}.traceId`, rule: 'hex:16 bytes, not all zero' });
          if (!idOk(span.spanId, 16)) throw new InputError('FIELD_FORMAT', { field: `${at}.spanId`, rule: 'hex:8 bytes, not all zero' });
          const started = nanosToIso(span.startTimeUnixNano, `${at}.startTimeUnixNano`);
          if (!started) throw new InputError('FIELD_REQUIRED', { field: `${at}.startTimeUnixNano`, rule: 'required' });
          out.events.push({ span: ids, event: usageEvent(deploymentId, res, service, host, span as OtlpSpan & { traceId: string; spanId: string }, a, started, llm) });
        } catch (err) {
          if (!(err instanceof InputError)) throw err;
          out.rejected.push({ span: ids, error: err });
        }
      });
    });
  });
  return out;
}

function usageEvent(
  deploymentId: string,
  res: Map<string, Attr>,
  service: string,
  host: string,
  span: OtlpSpan & { traceId: string; spanId: string },
  a: Map<string, Attr>,
  started: string,
  llm: LlmUsage,
): UsageEvent {
  const traceId = span.traceId.toLowerCase();
  const spanId = span.spanId.toLowerCase();
  const correlation = `otlp:${traceId}:${spanId}`;
  return {
    schema: USAGE_SCHEMA,
    deployment_id: deploymentId,
    agent: { agent_id: derivedUuid(`agent:${String(res.get('service.instance.id') ?? service)}`), agent_type: service },
    node: { node_id: derivedUuid(`node:${host}`), hostname: host },
    job: {
      job_id: derivedUuid(`job:${correlation}`),
      correlation_id: correlation,
      ucxl_addr: String(a.get('ucxl.addr') ?? `ucxl://${service}:otlp@otlp:${traceId}/${spanId}`),
      started_at: started,
      ended_at: nanosToIso(span.endTimeUnixNano, 'endTimeUnixNano') ?? started,
      status: span.status?.code === 2 ? 'failed' : 'succeeded',
    },
    metrics: {
      cpu_seconds: 0,
      gpu_seconds: 0,
      ram_mb_peak: 0,
      disk_io_mb: 0,
      net_in_mb: 0,
      net_out_mb: 0,
      context_reads: 0,
      context_writes: 0,
      context_bytes_read: 0,
      context_bytes_written: 0,
    },
    llm,
    sig: { algo: 'ed25519', key_id: OTLP_PLACEHOLDER_KEY_ID, signature: ZERO_SIG },
  };
}
