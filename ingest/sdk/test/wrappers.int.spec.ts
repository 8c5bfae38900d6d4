import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeStreamRecord, SCHEMA_FINGERPRINT_HEADER, type UsageEvent } from '@kaching/contracts';
import { loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { createAgent, withTags, wrapAnthropic, wrapOpenAI, type KachingAgent } from '@kaching/sdk';
import { isolatedEnv, type IsolatedEnv } from '../../../test/support/isolation.js';
import { seedDeployment, type SeededDeployment } from '../../test/support.js';
import { startFakeProviders, type FakeProviders, type Usage } from './fake-providers.js';

/**
 * The official `openai` and `@anthropic-ai/sdk` clients, wrapped, against a local server that answers in each
 * provider's wire format (JSON and SSE): usage lands in KACHING as signed events (through a real ingest), with
 * cache and reasoning tokens, and the caller gets exactly what the provider sent.
 */
let env: IsolatedEnv;
let ingest: IngestHandle;
let nc: NatsConnection;
let dep: SeededDeployment;
let providers: FakeProviders;
let agent: KachingAgent;

// model name → usage the fake provider reports (one model per test, to find its events)
const USAGE: Record<string, Usage> = {};
const usage = (model: string, u: Usage) => ((USAGE[model] = u), model);

async function storedFor(model: string, n = 1): Promise<UsageEvent[]> {
  await agent.flush(10_000);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(env.names.eventsStream);
  const out: UsageEvent[] = [];
  for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
    const m = await jsm.streams.getMessage(env.names.eventsStream, { seq: s }).catch(() => null);
    if (!m) continue;
    const r = decodeStreamRecord(m.data, m.header?.get(SCHEMA_FINGERPRINT_HEADER) || undefined);
    if (r.kind === 'usage' && r.usage.llm?.model_name === model) out.push(r.usage);
  }
  expect(out, `events of ${model}`).toHaveLength(n);
  return out;
}

beforeAll(async () => {
  env = await isolatedEnv();
  ingest = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' });
  nc = await env.nats();
  dep = await seedDeployment(env.pool);
  providers = await startFakeProviders((m) => USAGE[m] ?? { input: 1, output: 1, cacheRead: 0, cacheWrite: 0, reasoning: 0 });
  agent = await createAgent({
    ingestUrl: ingest.url, token: dep.token, deploymentId: dep.deploymentId, keyId: dep.keyId,
    secretKey: Buffer.from(dep.secretKey).toString('base64'), agentType: 'assistant', flushIntervalMs: 20,
  });
});

afterAll(async () => {
  await agent?.close();
  await providers?.close();
  await ingest?.close();
  await env?.cleanup();
});

const openai = () => wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: `${providers.url}/v1`, maxRetries: 0 }), agent);
const anthropic = () => wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-test', baseURL: providers.url, maxRetries: 0 }), agent);

describe('wrapOpenAI (official openai client)', () => {
  it('chat completion: the caller gets the response as sent; usage with cached and reasoning tokens is recorded once', async () => {
    const model = usage('gpt-plain', { input: 1000, cacheRead: 200, output: 300, reasoning: 100, cacheWrite: 0 });
    const r = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.message.content).toBe('Hello there');
    expect(r.usage).toMatchObject({ prompt_tokens: 1200, completion_tokens: 300 });
    const [e] = await storedFor(model);
    expect(e!.llm).toEqual({ model_name: model, provider: 'openai', tokens_in: 1200, tokens_cached_in: 200, tokens_out: 300, tokens_reasoning: 100 });
    expect(e!.job.status).toBe('succeeded');
  });

  it('streaming without include_usage: the wrapper asks for usage but the caller sees the chunks it would have seen', async () => {
    const model = usage('gpt-stream', { input: 50, cacheRead: 0, output: 7, reasoning: 0, cacheWrite: 0 });
    const stream = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello there');
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
    expect(providers.requests.at(-1)!.body.stream_options).toEqual({ include_usage: true });
    const [e] = await storedFor(model);
    expect(e!.llm).toMatchObject({ tokens_in: 50, tokens_out: 7 });
  });

  it("streaming with include_usage: the caller's usage chunk is left alone", async () => {
    const model = usage('gpt-stream-usage', { input: 9, cacheRead: 1, output: 3, reasoning: 0, cacheWrite: 0 });
    const stream = await openai().chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const c of stream) last = c;
    expect(last!.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 3 });
    expect((await storedFor(model))[0]!.llm).toMatchObject({ tokens_in: 10, tokens_cached_in: 1, tokens_out: 3 });
  });

  it('the SDK helper chat.completions.stream() is metered through the wrapped create', async () => {
    const model = usage('gpt-helper', { input: 20, cacheRead: 0, output: 4, reasoning: 0, cacheWrite: 0 });
    const runner = openai().chat.completions.stream({ model, messages: [{ role: 'user', content: 'hi' }] });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe('Hello there');
    expect((await storedFor(model))[0]!.llm).toMatchObject({ tokens_in: 20, tokens_out: 4 });
  });

  it('responses API, plain and streaming', async () => {
    const model = usage('gpt-resp', { input: 300, cacheRead: 100, output: 80, reasoning: 30, cacheWrite: 0 });
    const r = await openai().responses.create({ model, input: 'hi' });
    expect(r.output_text).toBe('Hello there');
    const stream = await openai().responses.create({ model, input: 'hi', stream: true });
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    expect(types).toEqual(['response.created', 'response.output_text.delta', 'response.completed']);
    const events = await storedFor(model, 2);
    for (const e of events) expect(e.llm).toEqual({ model_name: model, provider: 'openai', tokens_in: 400, tokens_cached_in: 100, tokens_out: 80, tokens_reasoning: 30 });
  });
});

describe('wrapAnthropic (official @anthropic-ai/sdk client)', () => {
  it('messages.create: cache reads and writes, reported apart by Anthropic, are counted into tokens_in once', async () => {
    const model = usage('claude-plain', { input: 500, cacheRead: 4000, cacheWrite: 1000, output: 250, reasoning: 0 });
    const m = await anthropic().messages.create({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    expect(m.content[0]).toEqual({ type: 'text', text: 'Hello there' });
    expect(m.usage).toMatchObject({ input_tokens: 500, cache_read_input_tokens: 4000 });
    const [e] = await storedFor(model);
    expect(e!.llm).toEqual({ model_name: model, provider: 'anthropic', tokens_in: 5500, tokens_cached_in: 4000, tokens_cache_write: 1000, tokens_out: 250 });
  });

  it('streaming, raw and through messages.stream(): the final output token count is recorded', async () => {
    const model = usage('claude-stream', { input: 30, cacheRead: 0, cacheWrite: 10, output: 42, reasoning: 0 });
    const raw = await anthropic().messages.create({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }], stream: true });
    const types: string[] = [];
    for await (const ev of raw) types.push(ev.type);
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    const final = await anthropic().messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }).finalMessage();
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'Hello there' });
    const events = await storedFor(model, 2);
    for (const e of events) expect(e.llm).toEqual({ model_name: model, provider: 'anthropic', tokens_in: 40, tokens_cache_write: 10, tokens_out: 42 });
  });
});

describe('attribution and jobs', () => {
  it('withTags() tags every call inside it, across awaits, and nested scopes add to the outer one', async () => {
    const model = usage('gpt-tagged', { input: 1, cacheRead: 0, output: 1, reasoning: 0, cacheWrite: 0 });
    const client = openai();
    await withTags({ team: 'ml', feature: 'search' }, async () => {
      await new Promise((r) => setTimeout(r, 5));
      await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'a' }] });
      await withTags({ user: 'u-42' }, () => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'b' }] }));
    });
    const tags = (await storedFor(model, 2)).map((e) => e.tags).sort((a, b) => Object.keys(a!).length - Object.keys(b!).length);
    expect(tags).toEqual([{ team: 'ml', feature: 'search' }, { team: 'ml', feature: 'search', user: 'u-42' }]);
    expect(() => withTags({ Team: 'x' }, () => 1)).toThrow(/tag key/);
  });

  it('inside agent.job() the calls add up into the job\'s one usage event (every token kind)', async () => {
    const model = usage('claude-in-job', { input: 10, cacheRead: 5, cacheWrite: 2, output: 3, reasoning: 0 });
    const client = anthropic();
    const out = await agent.job('ucxl://assistant:dev@proj:task/x', async () => {
      await client.messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'a' }] });
      await client.messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'b' }] });
      return 'done';
    });
    expect(out).toBe('done');
    const [e] = await storedFor(model);
    expect(e!.llm).toEqual({ model_name: model, provider: 'anthropic', tokens_in: 34, tokens_cached_in: 10, tokens_cache_write: 4, tokens_out: 6 });
  });
});

describe('KACHING down', () => {
  it('never blocks or breaks the caller: calls return as usual and their usage waits in the queue', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const offline = await createAgent({
      ingestUrl: `http://127.0.0.1:${port}`, token: dep.token, deploymentId: dep.deploymentId, keyId: dep.keyId,
      secretKey: Buffer.from(dep.secretKey).toString('base64'), flushIntervalMs: 10, requestTimeoutMs: 200, backoffBaseMs: 10, backoffMaxMs: 50,
    });
    try {
      const model = usage('gpt-offline', { input: 5, cacheRead: 0, output: 5, reasoning: 0, cacheWrite: 0 });
      const client = wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: `${providers.url}/v1`, maxRetries: 0 }), offline);
      for (let i = 0; i < 3; i++) {
        const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
        expect(r.choices[0]!.message.content).toBe('Hello there');
      }
      // the calls came back while nothing could be delivered: the usage waits in the queue, nothing failed
      await new Promise((r) => setTimeout(r, 100));
      expect(offline.stats()).toMatchObject({ produced: 3, queued: 3, accepted: 0, failed: 0 });
      expect(offline.stats().retries).toBeGreaterThan(0);
    } finally {
      await offline.close();
    }
  });
});
