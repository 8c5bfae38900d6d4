import { currentJob, type KachingAgent } from '../agent.js';
import type { LlmUsage } from '../protocol/mod.js';

/** How a wrapped client's calls are recorded. */
export interface WrapOptions {
  /** `provider` of the recorded usage (default: the client's, e.g. "openai", "anthropic"). */
  provider?: string;
  /** ucxl address of calls made outside agent.job() (default `ucxl://<agent type>:llm@<provider>:<model>`). */
  ucxlAddr?: string | ((model: string) => string);
  /** Called when recording fails (the call itself is never affected). */
  onRecordError?(err: unknown): void;
}

/**
 * Records one model call: into the enclosing agent.job() when there is one (its usage event then carries the
 * tokens), else as a usage event of its own. Never awaited by the caller's path and never throws: metering
 * must not slow down or break the application, also when KACHING is unreachable (the event waits in the queue).
 */
export function recordCall(agent: KachingAgent, o: WrapOptions, call: { llm: LlmUsage; startedAt: Date; ok: boolean }): void {
  try {
    const job = currentJob(agent);
    if (job) {
      job.llm(call.llm);
      return;
    }
    const model = call.llm.model_name;
    const ucxlAddr =
      typeof o.ucxlAddr === 'function' ? o.ucxlAddr(model) : (o.ucxlAddr ?? `ucxl://${agent.config.agentType}:llm@${safe(call.llm.provider)}:${safe(model)}`);
    void agent
      .emitUsage({ ucxlAddr, startedAt: call.startedAt, endedAt: new Date(), status: call.ok ? 'succeeded' : 'failed', llm: call.llm })
      .catch((err) => o.onRecordError?.(err));
  } catch (err) {
    o.onRecordError?.(err);
  }
}

// ucxl segments are separated by ':' '@' '/': keep them out of provider and model names
const safe = (s: string) => s.replace(/[:@/]/g, '_');

/**
 * Watches a provider SDK stream without changing it: the chunks go to the caller as they were (but for
 * `hide`), `onChunk` sees each one, `onEnd` runs once when the stream ends, fails or is abandoned. Patches
 * the stream's `iterator` factory (which iteration, `tee()` and `toReadableStream()` all go through in the
 * official OpenAI and Anthropic SDKs), falling back to `Symbol.asyncIterator`.
 */
export function observeStream<C>(stream: object, onChunk: (c: C) => void, onEnd: (ok: boolean) => void, hide?: (c: C) => boolean): void {
  const s = stream as { iterator?: () => AsyncIterator<C>; [Symbol.asyncIterator]?: () => AsyncIterator<C> };
  const key: 'iterator' | typeof Symbol.asyncIterator = typeof s.iterator === 'function' ? 'iterator' : Symbol.asyncIterator;
  const original = s[key];
  if (typeof original !== 'function') return;
  let ended = false;
  const end = (ok: boolean) => {
    if (ended) return;
    ended = true;
    try {
      onEnd(ok);
    } catch {
      /* recording never breaks the caller */
    }
  };
  s[key] = function () {
    const inner = original.call(stream) as AsyncIterator<C>;
    const it: AsyncIterator<C> = {
      async next() {
        for (;;) {
          let r: IteratorResult<C>;
          try {
            r = await inner.next();
          } catch (err) {
            end(false);
            throw err;
          }
          if (r.done) {
            end(true);
            return r;
          }
          try {
            onChunk(r.value);
          } catch {
            /* ignore */
          }
          if (!hide?.(r.value)) return r;
        }
      },
      async return(v?: unknown) {
        end(false);
        return (await inner.return?.(v)) ?? { done: true, value: v as C };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    } as AsyncIterator<C>;
    return it;
  } as never;
}

const WRAPPED = Symbol.for('kaching.wrapped');

export type Create = (this: unknown, params: Record<string, unknown>, options?: unknown) => unknown;
interface Resource {
  create?: Create;
  [WRAPPED]?: true;
}

/** Replaces resource.create once (a second wrap of the same client is a no-op). */
export function patch(resource: Resource | undefined, make: (orig: Create) => Create): void {
  if (!resource || typeof resource.create !== 'function' || resource[WRAPPED]) return;
  resource.create = make(resource.create);
  resource[WRAPPED] = true;
}

/**
 * Looks at what a call resolves to without touching the promise the caller gets: the SDKs' API promises
 * (with `.withResponse()` and friends) are returned as they are, and `then` callbacks run in registration
 * order, so a stream is observed before the caller starts reading it.
 */
export function watch(result: unknown, fn: (value: unknown) => void): void {
  const p = result as { then?: (ok: (v: unknown) => void, fail: (e: unknown) => void) => unknown } | null;
  if (p && typeof p.then === 'function') {
    p.then(
      (v) => {
        try {
          fn(v);
        } catch {
          /* never the caller's problem */
        }
      },
      () => undefined,
    );
  }
}
