import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { SpanKind } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import protobuf from 'protobufjs';
import { decodeStreamRecord, issueIngestToken, setModelPrice } from '@kaching/contracts';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { createDeployment, createOrg, issueApiKey, loadConfig as apiConfig, start as startApi, type ApiHandle } from '@kaching/api';
import { loadConfig as projectorConfig, start as startProjector, type ProjectorHandle } from '@kaching/projector';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { waitCaughtUp } from '../../projector/test/helpers.js';

// Spans from the real OpenTelemetry JS exporters (OTLP/HTTP JSON, and protobuf with gzip) into a running
// ingest, projected by a running projector, priced by the book and read back from GET /v1/costs.

let env: IsolatedEnv;
let nc: NatsConnection;
let ingest: IngestHandle;
let projector: ProjectorHandle;
let api: ApiHandle;
let dep: string;
let otlpToken: string;
let readKey: string;

// Prices in micro-USD per 1M tokens.
const GPT = { input: 2_500_000, cacheRead: 1_250_000, cacheWrite: 3_000_000, output: 10_000_000, reasoning: 12_000_000 };
const CLAUDE = { input: 3_000_000, cacheRead: 300_000, cacheWrite: 3_750_000, output: 15_000_000 }; // reasoning at the output price

/** The cost of one call, each token once: OpenTelemetry counts cache tokens inside input, reasoning inside output. */
function expectedMicroUsd(p: { input: number; cacheRead: number; cacheWrite: number; output: number; reasoning?: number }, t: { tin: number; read?: number; write?: number; tout: number; reasoning?: number }): number {
  const read = t.read ?? 0;
  const write = t.write ?? 0;
  const reasoning = t.reasoning ?? 0;
  const perMillion = (t.tin - read - write) * p.input + read * p.cacheRead + write * p.cacheWrite + (t.tout - reasoning) * p.output + reasoning * (p.reasoning ?? p.output);
  return perMillion / 1_000_000;
}

function recorder(exporter: SpanExporter): { exporter: SpanExporter; results: ExportResult[] } {
  const results: ExportResult[] = [];
  return {
    results,
    exporter: {
      export: (spans: ReadableSpan[], done: (r: ExportResult) => void) => exporter.export(spans, (r) => (results.push(r), done(r))),
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    },
  };
}

/** Sends spans through a tracer provider whose only processor exports to `exporter`; the export must succeed. */
async function emit(exporter: SpanExporter, service: string, spans: { name: string; kind?: SpanKind; attributes: Record<string, string | number> }[]): Promise<void> {
  const rec = recorder(exporter);
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': service, 'host.name': 'otel-host' }), spanProcessors: [new BatchSpanProcessor(rec.exporter)] });
  const tracer = provider.getTracer('kaching-test');
  const end = Date.now() - 1_000;
  for (const s of spans) tracer.startSpan(s.name, { kind: s.kind ?? SpanKind.CLIENT, attributes: s.attributes, startTime: end - 2_000 }).end(end);
  await provider.forceFlush();
  await provider.shutdown();
  // One batch: one request carrying every span.
  expect(rec.results.map((r) => [r.code, r.error?.message])).toEqual([[ExportResultCode.SUCCESS, undefined]]);
}

const hour = (ms: number) => new Date(Math.floor(ms / 3_600_000) * 3_600_000).toISOString();

beforeAll(async () => {
  env = await isolatedEnv();
  nc = await env.nats();
  const org = await createOrg(env.pool, { name: 'otel' });
  dep = String((await createDeployment(env.pool, org.org_id, { name: 'otel-prod' })).deployment_id);
  readKey = (await issueApiKey(env.pool, { orgId: org.org_id, scopes: 'read' })).apiKey;
  otlpToken = (await issueIngestToken(env.pool, { deploymentId: dep, scopes: ['ingest:otlp'] })).token;
  const from = new Date(Date.now() - 86_400_000);
  await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: from, input_per_1m_micro_usd: GPT.input, cached_input_per_1m_micro_usd: GPT.cacheRead, cache_write_per_1m_micro_usd: GPT.cacheWrite, output_per_1m_micro_usd: GPT.output, reasoning_per_1m_micro_usd: GPT.reasoning });
  await setModelPrice(env.pool, { provider: 'anthropic', model_name: 'claude-sonnet-4', effective_from: from, input_per_1m_micro_usd: CLAUDE.input, cached_input_per_1m_micro_usd: CLAUDE.cacheRead, cache_write_per_1m_micro_usd: CLAUDE.cacheWrite, output_per_1m_micro_usd: CLAUDE.output });
  ingest = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 1, logLevel: 'silent' });
  projector = await startProjector({ ...projectorConfig(env.env), port: 0, host: '127.0.0.1' });
  api = await startApi({ ...apiConfig(env.env), port: 0 }, { pool: env.pool, nc });
});

afterAll(async () => {
  await api?.close();
  await projector?.close();
  await ingest?.close();
  await env?.cleanup();
});

describe('OpenTelemetry exporters → /v1/traces → /v1/costs', () => {
  it('JSON and gzip-compressed protobuf spans with cached and reasoning tokens cost exactly their price, each token once', async () => {
    const headers = { authorization: `Bearer ${otlpToken}` };
    const url = `${ingest.url}/v1/traces`;
    // Current attribute names; the response model is the one priced (the request names an alias).
    const a = { tin: 10_000, read: 4_000, write: 1_000, tout: 2_000, reasoning: 500 };
    // Deprecated names (prompt/completion tokens, gen_ai.system).
    const b = { tin: 3_000, tout: 700 };
    await emit(new JsonExporter({ url, headers }), 'planner', [
      {
        name: 'chat gpt-4o',
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'openai',
          'gen_ai.request.model': 'gpt-4o-latest',
          'gen_ai.response.model': 'gpt-4o',
          'gen_ai.usage.input_tokens': a.tin,
          'gen_ai.usage.cache_read.input_tokens': a.read,
          'gen_ai.usage.cache_creation.input_tokens': a.write,
          'gen_ai.usage.output_tokens': a.tout,
          'gen_ai.usage.reasoning.output_tokens': a.reasoning,
        },
      },
      { name: 'chat gpt-4o', attributes: { 'gen_ai.system': 'openai', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.prompt_tokens': b.tin, 'gen_ai.usage.completion_tokens': b.tout } },
      { name: 'GET /health', attributes: { 'http.request.method': 'GET' } },
    ]);
    const c = { tin: 20_000, read: 15_000, write: 2_000, tout: 1_000, reasoning: 300 };
    await emit(new ProtoExporter({ url, headers, compression: CompressionAlgorithm.GZIP }), 'reviewer', [
      {
        name: 'chat claude-sonnet-4',
        attributes: {
          'gen_ai.provider.name': 'anthropic',
          'gen_ai.request.model': 'claude-sonnet-4',
          'gen_ai.usage.input_tokens': c.tin,
          'gen_ai.usage.cache_read.input_tokens': c.read,
          'gen_ai.usage.cache_creation.input_tokens': c.write,
          'gen_ai.usage.output_tokens': c.tout,
          'gen_ai.usage.reasoning.output_tokens': c.reasoning,
        },
      },
      // An in-process agent span sums its inference spans: pricing it too would count them twice.
      { name: 'invoke_agent reviewer', kind: SpanKind.INTERNAL, attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4', 'gen_ai.usage.input_tokens': c.tin, 'gen_ai.usage.output_tokens': c.tout } },
    ]);

    // The protobuf export really went gzip-compressed.
    const metrics = await (await fetch(`${ingest.url}/metrics`)).text();
    expect(metrics).toContain('kaching_ingest_otlp_requests_total{encoding="json",compression="identity"} 1');
    expect(metrics).toContain('kaching_ingest_otlp_requests_total{encoding="protobuf",compression="gzip"} 1');

    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(env.names.eventsStream);
    expect(info.state.messages).toBe(3);
    const llms = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const r = decodeStreamRecord((await jsm.streams.getMessage(env.names.eventsStream, { seq }))!.data);
      if (r.kind === 'usage') llms.push(r.usage.llm);
    }
    expect(llms).toEqual(
      expect.arrayContaining([
        { model_name: 'gpt-4o', provider: 'openai', tokens_in: a.tin, tokens_out: a.tout, tokens_cached_in: a.read, tokens_cache_write: a.write, tokens_reasoning: a.reasoning },
        { model_name: 'gpt-4o', provider: 'openai', tokens_in: b.tin, tokens_out: b.tout },
        { model_name: 'claude-sonnet-4', provider: 'anthropic', tokens_in: c.tin, tokens_out: c.tout, tokens_cached_in: c.read, tokens_cache_write: c.write, tokens_reasoning: c.reasoning },
      ]),
    );
    await waitCaughtUp(env.pool, info.state.last_seq, ['raw', 'rollups'], 20_000);

    const gpt = expectedMicroUsd(GPT, a) + expectedMicroUsd(GPT, b);
    const claude = expectedMicroUsd(CLAUDE, c);
    // The same sums worked by hand (micro-USD): a = 5,000×2.5 + 4,000×1.25 + 1,000×3 + 1,500×10 + 500×12 = 41,500;
    // b = 3,000×2.5 + 700×10 = 14,500; c = 3,000×3 + 15,000×0.3 + 2,000×3.75 + 700×15 + 300×15 = 36,000.
    expect([gpt, claude]).toEqual([41_500 + 14_500, 36_000]);
    const now = Date.now();
    const q = `/v1/costs?deployment_id=${dep}&from=${hour(now - 3_600_000)}&to=${hour(now + 7_200_000)}&group_by=model&interval=hour`;
    const res = await fetch(api.url + q, { headers: { authorization: `Bearer ${readKey}` } });
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ cost_micro_usd: gpt + claude, requests: 3, unpriced_requests: 0 });
    expect(body.groups.map((g: { key: string; cost_micro_usd: number; requests: number }) => [g.key, g.cost_micro_usd, g.requests])).toEqual([
      ['gpt-4o', gpt, 2],
      ['claude-sonnet-4', claude, 1],
    ]);
  });

  it('answers per OTLP: partial_success for rejected spans, 400 with a catalogue code for undecodable bodies, 415 for other types', async () => {
    const root = new protobuf.Root();
    root.resolvePath = (_o, target) => new URL(`../proto/${target}`, import.meta.url).pathname;
    root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto');
    const Req = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
    const Res = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
    const jsm = await jetstreamManager(nc);
    const count = async () => (await jsm.streams.info(env.names.eventsStream)).state.messages;
    const send = (body: Uint8Array | string, type: string, extra: Record<string, string> = {}) =>
      fetch(`${ingest.url}/v1/traces`, { method: 'POST', headers: { authorization: `Bearer ${otlpToken}`, 'content-type': type, ...extra }, body: typeof body === 'string' ? body : new Blob([new Uint8Array(body)]) });
    const ns = String(BigInt(Date.now() - 1_000) * 1_000_000n);
    const span = (id: string, tokens: number) => ({
      traceId: Buffer.from('5b8efff798038103d269b633813fc60c', 'hex'),
      spanId: Buffer.from(id, 'hex'),
      name: 'chat',
      startTimeUnixNano: ns,
      endTimeUnixNano: ns,
      attributes: [
        { key: 'gen_ai.provider.name', value: { stringValue: 'openai' } },
        { key: 'gen_ai.request.model', value: { stringValue: 'gpt-4o' } },
        { key: 'gen_ai.usage.input_tokens', value: { intValue: tokens } },
      ],
    });
    const before = await count();
    const req = Req.encode(Req.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [span('eee19b7ec3c1b174', 100), span('eee19b7ec3c1b175', -5)] }] }] })).finish();
    const partial = await send(Buffer.from(req), 'application/x-protobuf');
    expect([partial.status, partial.headers.get('content-type')]).toEqual([200, 'application/x-protobuf']);
    const decoded = Res.toObject(Res.decode(new Uint8Array(await partial.arrayBuffer())), { longs: Number });
    expect(decoded).toEqual({
      partialSuccess: { rejectedSpans: 1, errorMessage: 'span 5b8efff798038103d269b633813fc60c/eee19b7ec3c1b175: FIELD_TYPE gen_ai.usage.input_tokens (type:integer>=0)' },
    });
    expect(await count()).toBe(before + 1);

    const badJson = await send('{"resourceSpans": [', 'application/json');
    expect([badJson.status, await badJson.json()]).toEqual([400, expect.objectContaining({ code: 3, error: expect.objectContaining({ code: 'OTLP_UNDECODABLE', field: 'body' }) })]);
    const badProto = await send(Buffer.from([0x0a, 0xff, 0xff, 0x01]), 'application/x-protobuf');
    const status = root.define('google.rpc').add(new protobuf.Type('Status').add(new protobuf.Field('code', 1, 'int32')).add(new protobuf.Field('message', 2, 'string'))).lookupType('Status');
    expect(badProto.status).toBe(400);
    expect(status.toObject(status.decode(new Uint8Array(await badProto.arrayBuffer())))).toMatchObject({ code: 3, message: expect.stringMatching(/^OTLP_UNDECODABLE: /) });
    const badGzip = await send(Buffer.from('not gzip'), 'application/json', { 'content-encoding': 'gzip' });
    expect([badGzip.status, (await badGzip.json()).error.code]).toEqual([400, 'OTLP_UNDECODABLE']);
    const brotli = await send(gzipSync('{}'), 'application/json', { 'content-encoding': 'br' });
    expect([brotli.status, (await brotli.json()).error.code]).toEqual([415, 'CONTENT_ENCODING_UNSUPPORTED']);
    const text = await send('{}', 'text/plain');
    expect([text.status, (await text.json()).error]).toEqual([415, expect.objectContaining({ code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-type' })]);
    const gzJson = await send(gzipSync('{"resourceSpans":[]}'), 'application/json; charset=utf-8', { 'content-encoding': 'gzip' });
    expect([gzJson.status, await gzJson.json()]).toEqual([200, {}]);
    expect(await count()).toBe(before + 1);
  });
});
