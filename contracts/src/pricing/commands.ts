import { requireString, UsageError, withCommandPool, type Command, type CommandContext } from '../cli/command.js';
import { listPriceAliases, removePriceAlias, setPriceAlias } from './aliases.js';
import { listPriceChanges } from './changes.js';
import { listCurrentPrices, setModelPrice } from './setPrice.js';
import { fetchPriceFile, readLiteLlmFile, syncPriceBook } from './sync.js';

const str = (ctx: CommandContext, k: string): string | undefined => (typeof ctx.args[k] === 'string' && ctx.args[k] !== '' ? (ctx.args[k] as string) : undefined);

function dateArg(ctx: CommandContext, k: string): Date | undefined {
  const v = str(ctx, k);
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${k} must be a date or an RFC 3339 time`);
  return d;
}

function intArg(ctx: CommandContext, k: string): string | undefined {
  const v = str(ctx, k);
  if (v === undefined) return undefined;
  if (!/^\d{1,18}$/.test(v)) throw new UsageError(`--${k} must be a non-negative integer`);
  return v;
}

/** Running projectors and enforcers notice a book change within their re-price interval (2 s by default). */
export const pricingCommands: Command[] = [
  {
    name: 'prices sync',
    summary: "Import LiteLLM's model_prices_and_context_window.json (a file or an http(s) URL) into the price book",
    options: {
      from: { type: 'string', description: 'path or URL of the LiteLLM price file', required: true },
      'effective-at': { type: 'string', description: 'when the changes take effect (default now; never before the last sync)' },
    },
    details: `New models get a price version, changed ones a new version from --effective-at, models the file no longer
lists are closed; each is recorded in the change log (kaching prices changes). Syncing the same file again
records nothing. Models whose newest price was set by hand (kaching price set) are left alone.`,
    async run(ctx) {
      const from = requireString(ctx, 'from');
      const bytes = await fetchPriceFile(from, { signal: ctx.signal });
      const { entries, sha256 } = readLiteLlmFile(bytes);
      return withCommandPool(ctx, async (pool) => {
        const r = await syncPriceBook(pool, { entries, source: from, sha256, effectiveAt: dateArg(ctx, 'effective-at') ?? new Date() });
        return {
          data: r,
          text: `synced ${r.models} models from ${from} (sha256 ${r.sha256.slice(0, 12)}…), effective ${r.effective_at}: ` +
            `${r.added} added, ${r.changed} changed (${r.changes.filter((c) => c.kind === 'changed').length} fields), ${r.removed} removed` +
            (r.skipped_manual ? `, ${r.skipped_manual} set by hand left alone` : ''),
        };
      });
    },
  },
  {
    name: 'prices changes',
    summary: 'The price change log: models added, removed, and each field changed with old and new value',
    options: {
      since: { type: 'string', description: 'changes taking effect at or after this time' },
      until: { type: 'string', description: 'changes taking effect before this time' },
      provider: { type: 'string', description: 'only this provider' },
      model: { type: 'string', description: 'only this model' },
      limit: { type: 'string', description: 'at most this many (default 1000)' },
    },
    async run(ctx) {
      const since = dateArg(ctx, 'since');
      const until = dateArg(ctx, 'until');
      const provider = str(ctx, 'provider');
      const model = str(ctx, 'model');
      const limit = intArg(ctx, 'limit');
      return withCommandPool(ctx, async (pool) => {
        const items = await listPriceChanges(pool, { ...(since ? { since } : {}), ...(until ? { until } : {}), ...(provider ? { provider } : {}), ...(model ? { model } : {}), ...(limit ? { limit: Number(limit) } : {}) });
        const line = (c: (typeof items)[number]) =>
          `${new Date(c.effective_at).toISOString()}  ${c.kind.padEnd(7)} ${c.provider}/${c.model}` + (c.field ? `  ${c.field}: ${c.old_value ?? '-'} -> ${c.new_value ?? '-'}` : '');
        return { data: { items }, text: items.length ? items.map(line).join('\n') : 'no price changes recorded' };
      });
    },
  },
  {
    name: 'prices list',
    summary: 'The price version of every model in force now (micro-USD per 1M tokens)',
    options: { at: { type: 'string', description: 'in force at this time instead of now' } },
    async run(ctx) {
      const at = dateArg(ctx, 'at') ?? new Date();
      return withCommandPool(ctx, async (pool) => {
        const items = await listCurrentPrices(pool, at);
        return {
          data: { at: at.toISOString(), items },
          text: items.map((p) => `${p.provider}/${p.model_name} v${p.version} (${p.source}) in ${p.input_per_1m_micro_usd} out ${p.output_per_1m_micro_usd}` +
            ` cache-read ${p.cached_input_per_1m_micro_usd ?? '=in'} cache-write ${p.cache_write_per_1m_micro_usd ?? '=in'} reasoning ${p.reasoning_per_1m_micro_usd ?? '=out'}`).join('\n') || 'the price book is empty',
        };
      });
    },
  },
  {
    name: 'prices aliases',
    summary: 'The explicit model aliases and patterns (a model priced as another when it has no entry of its own)',
    async run(ctx) {
      return withCommandPool(ctx, async (pool) => {
        const items = await listPriceAliases(pool);
        return { data: { items }, text: items.map((a) => `${a.alias} -> ${a.provider}/${a.model_name}`).join('\n') || 'no aliases' };
      });
    },
  },
  {
    name: 'prices alias set',
    summary: 'Price a model name, or every name matching a pattern with *, as a priced model',
    options: {
      alias: { type: 'string', description: 'model name or pattern, e.g. gpt-4o-2024-08-06 or gpt-4o-*', required: true },
      provider: { type: 'string', description: 'provider of the priced model', required: true },
      model: { type: 'string', description: 'the priced model', required: true },
    },
    async run(ctx) {
      return withCommandPool(ctx, async (pool) => {
        const a = await setPriceAlias(pool, { alias: requireString(ctx, 'alias'), provider: requireString(ctx, 'provider'), model_name: requireString(ctx, 'model') });
        return { data: a, text: `${a.alias} is priced as ${a.provider}/${a.model_name}` };
      });
    },
  },
  {
    name: 'prices alias remove',
    summary: 'Remove a model alias or pattern',
    options: { alias: { type: 'string', description: 'the alias', required: true } },
    async run(ctx) {
      return withCommandPool(ctx, async (pool) => {
        const removed = await removePriceAlias(pool, requireString(ctx, 'alias'));
        return { data: { removed }, text: removed ? 'removed' : 'no such alias', exitCode: removed ? 0 : 1 };
      });
    },
  },
  {
    name: 'price set',
    summary: 'Add the next version of a model price by hand (integer micro-USD per 1M tokens / per second)',
    options: {
      provider: { type: 'string', description: 'Provider, e.g. openai, anthropic, local', required: true },
      model: { type: 'string', description: 'Model name as agents report it', required: true },
      input: { type: 'string', description: 'µUSD per 1M input tokens' },
      output: { type: 'string', description: 'µUSD per 1M output tokens' },
      'cached-input': { type: 'string', description: 'µUSD per 1M cache-read input tokens (default: the input price)' },
      'cache-write': { type: 'string', description: 'µUSD per 1M cache-write input tokens (default: the input price)' },
      reasoning: { type: 'string', description: 'µUSD per 1M reasoning tokens (default: the output price)' },
      'gpu-second': { type: 'string', description: 'µUSD per GPU second (local models)' },
      'cpu-second': { type: 'string', description: 'µUSD per CPU second (local models)' },
      'effective-from': { type: 'string', description: 'When this version starts (default now); costs of events from then on are re-priced' },
    },
    async run(ctx) {
      const ef = dateArg(ctx, 'effective-from');
      const opt = (k: string) => intArg(ctx, k);
      return withCommandPool(ctx, async (pool) => {
        const p = await setModelPrice(pool, {
          provider: requireString(ctx, 'provider'), model_name: requireString(ctx, 'model'),
          input_per_1m_micro_usd: opt('input') ?? 0, output_per_1m_micro_usd: opt('output') ?? 0,
          cached_input_per_1m_micro_usd: opt('cached-input') ?? null, cache_write_per_1m_micro_usd: opt('cache-write') ?? null,
          reasoning_per_1m_micro_usd: opt('reasoning') ?? null, gpu_second_micro_usd: opt('gpu-second') ?? 0, cpu_second_micro_usd: opt('cpu-second') ?? 0,
          ...(ef ? { effective_from: ef } : {}),
        });
        return { data: p, text: `${p.provider}/${p.model_name} price version ${p.version} from ${new Date(p.effective_from).toISOString()}` };
      });
    },
  },
];
