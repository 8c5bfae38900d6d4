import { createHash } from 'node:crypto';
import { InputError, USAGE_SCHEMA, type UsageEvent } from '@kaching/contracts';

/**
 * OTLP/HTTP JSON traces → usage events. Only spans carrying OpenTelemetry GenAI usage attributes
 * (`gen_ai.usage.input_tokens` / `output_tokens`) become events; other spans are ignored.
 * Such events are not agent-signed: the ingest marks them `unsigned_otlp` and stores a placeholder
 * signature (all-zero, key_id `unsigned-otlp`) so they keep the event shape. Ids that the event
 * schema wants as uuids are derived deterministically, so a resent span is the same event.
 */
export const OTLP_PLACEHOLDER_KEY_ID = 'unsigned-otlp';
const ZERO_SIG = Buffer.alloc(64).toString('base64');

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
type KeyValue = { key: string; value?: AnyValue };
interface OtlpSpan {
  traceId?: string;
  spanId?: string;
  name?: string;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValue[];
  status?: { code?: number };
}

function attrs(list: KeyValue[] | undefined): Map<string, string | number | boolean> {
  const m = new Map<string, string | number | boolean>();
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    const x = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue;
    if (x !== undefined) m.set(kv.key, x);
  }
  return m;
}

/** A stable uuid-shaped id from a name (sha256, version nibble 5-like). */
function derivedUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function nanosToIso(v: string | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  const ms = Number(BigInt(String(v)) / 1_000_000n);
  return Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : undefined;
}

export function otlpToUsageEvents(body: unknown, deploymentId: string): { events: UsageEvent[]; ignoredSpans: number } {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { resourceSpans?: unknown }).resourceSpans)) {
    throw new InputError('FIELD_TYPE', { field: 'resourceSpans', rule: 'type:array' });
  }
  const events: UsageEvent[] = [];
  let ignoredSpans = 0;
  for (const rs of (body as { resourceSpans: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[] }).resourceSpans) {
    const res = attrs(rs.resource?.attributes);
    const service = String(res.get('service.name') ?? 'otlp');
    const host = String(res.get('host.name') ?? 'unknown');
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        const a = attrs(span.attributes);
        const tin = a.get('gen_ai.usage.input_tokens');
        const tout = a.get('gen_ai.usage.output_tokens');
        const started = nanosToIso(span.startTimeUnixNano);
        if ((tin === undefined && tout === undefined) || !started || !span.traceId || !span.spanId) {
          ignoredSpans++;
          continue;
        }
        const correlation = `otlp:${span.traceId}:${span.spanId}`;
        events.push({
          schema: USAGE_SCHEMA,
          deployment_id: deploymentId,
          agent: { agent_id: derivedUuid(`agent:${String(res.get('service.instance.id') ?? service)}`), agent_type: service },
          node: { node_id: derivedUuid(`node:${host}`), hostname: host },
          job: {
            job_id: derivedUuid(`job:${correlation}`),
            correlation_id: correlation,
            ucxl_addr: String(a.get('ucxl.addr') ?? `ucxl://${service}:otlp@otlp:${span.traceId}/${span.spanId}`),
            started_at: started,
            ended_at: nanosToIso(span.endTimeUnixNano) ?? started,
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
          llm: {
            model_name: String(a.get('gen_ai.response.model') ?? a.get('gen_ai.request.model') ?? 'unknown'),
            provider: String(a.get('gen_ai.provider.name') ?? a.get('gen_ai.system') ?? 'unknown'),
            tokens_in: Number(tin ?? 0),
            tokens_out: Number(tout ?? 0),
          },
          sig: { algo: 'ed25519', key_id: OTLP_PLACEHOLDER_KEY_ID, signature: ZERO_SIG },
        });
      }
    }
  }
  return { events, ignoredSpans };
}
