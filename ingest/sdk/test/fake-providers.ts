import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local HTTP server that answers like OpenAI (Chat Completions, Responses) and Anthropic (Messages), in
 * JSON and as SSE streams, with fixed token counts per model — so the official clients run unmodified
 * against it. Each model name picks its usage, so tests can tell calls apart.
 */
export interface Usage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  reasoning: number;
}

export interface FakeProviders {
  url: string;
  /** The request bodies received, in order. */
  requests: { path: string; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

const sse = (res: ServerResponse, events: { event?: string; data: unknown }[]) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const e of events) res.write(`${e.event ? `event: ${e.event}\n` : ''}data: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}\n\n`);
  res.end();
};

export async function startFakeProviders(usageOf: (model: string) => Usage): Promise<FakeProviders> {
  const requests: FakeProviders['requests'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      const path = (req.url ?? '').replace(/\?.*$/, '');
      requests.push({ path, body });
      const model = String(body.model);
      const u = usageOf(model);
      if (path.endsWith('/chat/completions')) return chat(res, body, model, u);
      if (path.endsWith('/responses')) return responses(res, body, model, u);
      if (path.endsWith('/messages')) return messages(res, body, model, u);
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function chat(res: ServerResponse, body: Record<string, unknown>, model: string, u: Usage): void {
  // OpenAI counts cached tokens inside prompt_tokens and reasoning tokens inside completion_tokens
  const usage = {
    prompt_tokens: u.input + u.cacheRead,
    completion_tokens: u.output,
    total_tokens: u.input + u.cacheRead + u.output,
    prompt_tokens_details: { cached_tokens: u.cacheRead },
    completion_tokens_details: { reasoning_tokens: u.reasoning },
  };
  const base = { id: 'chatcmpl-1', created: 1_700_000_000, model, system_fingerprint: 'fp' };
  if (body.stream !== true) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hello there' } }], usage }));
    return;
  }
  const withUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const chunk = (delta: object, finish: string | null) => ({
    ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }], ...(withUsage ? { usage: null } : {}),
  });
  const events = [{ data: chunk({ role: 'assistant', content: 'Hello' }, null) }, { data: chunk({ content: ' there' }, null) }, { data: chunk({}, 'stop') }];
  if (withUsage) events.push({ data: { ...base, object: 'chat.completion.chunk', choices: [], usage } as never });
  sse(res, [...events, { data: '[DONE]' }]);
}

function responses(res: ServerResponse, body: Record<string, unknown>, model: string, u: Usage): void {
  const usage = {
    input_tokens: u.input + u.cacheRead,
    input_tokens_details: { cached_tokens: u.cacheRead },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: u.reasoning },
    total_tokens: u.input + u.cacheRead + u.output,
  };
  const response = {
    id: 'resp_1', object: 'response', created_at: 1_700_000_000, status: 'completed', model,
    output: [{ type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello there', annotations: [] }] }],
    usage,
  };
  if (body.stream !== true) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(response));
    return;
  }
  sse(res, [
    { event: 'response.created', data: { type: 'response.created', sequence_number: 0, response: { ...response, status: 'in_progress', output: [], usage: null } } },
    { event: 'response.output_text.delta', data: { type: 'response.output_text.delta', sequence_number: 1, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello there' } },
    { event: 'response.completed', data: { type: 'response.completed', sequence_number: 2, response } },
  ]);
}

function messages(res: ServerResponse, body: Record<string, unknown>, model: string, u: Usage): void {
  // Anthropic reports cache reads and writes apart from input_tokens
  const usage = { input_tokens: u.input, cache_read_input_tokens: u.cacheRead, cache_creation_input_tokens: u.cacheWrite, output_tokens: u.output };
  const message = { id: 'msg_1', type: 'message', role: 'assistant', model, content: [{ type: 'text', text: 'Hello there' }], stop_reason: 'end_turn', stop_sequence: null, usage };
  if (body.stream !== true) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(message));
    return;
  }
  sse(res, [
    { event: 'message_start', data: { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } } },
    { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
    { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello there' } } },
    { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
    { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: u.output } } },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ]);
}
