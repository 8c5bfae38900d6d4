import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commands, listPriceChanges, PriceBook, readLiteLlmFile, setModelPrice, setPriceAlias, syncPriceBook, type CommandContext, type SyncReport,
} from '@kaching/contracts';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';

// The third-party LiteLLM snapshots (contracts/test/fixtures/litellm-prices, from ../shared/fixtures).
const DAYS = ['2026-03-06', '2026-04-26', '2026-07-24'] as const;
const bytes = (day: string) => readFileSync(new URL(`./fixtures/litellm-prices/${day}.json`, import.meta.url));
type Spec = Record<string, unknown>;
const raw = (day: string) => JSON.parse(bytes(day).toString('utf8')) as Record<string, Spec>;

// What the book tracks of an entry, written out here independently of the code under test: the five token
// prices of a standard request and their long-prompt tiers.
const TRACKED = ['input_cost_per_token', 'output_cost_per_token', 'cache_read_input_token_cost', 'cache_creation_input_token_cost', 'output_cost_per_reasoning_token'];
const TIERED = /^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)_above_\d+k_tokens$/;
const tracked = (s: Spec) => Object.fromEntries(Object.entries(s).filter(([k, v]) => typeof v === 'number' && (TRACKED.includes(k) || TIERED.test(k))));
const priced = (file: Record<string, Spec>) =>
  new Map(Object.entries(file).filter(([k, s]) => k !== 'sample_spec' && (typeof s.input_cost_per_token === 'number' || typeof s.output_cost_per_token === 'number')));

/** The differences between two snapshots, computed from the JSON alone. */
function expectedDiff(before: Record<string, Spec>, after: Record<string, Spec>) {
  const a = priced(before);
  const b = priced(after);
  const key = (m: string, s: Spec) => `${String(s.litellm_provider).toLowerCase()}/${m}`;
  const added = [...b].filter(([m]) => !a.has(m)).map(([m, s]) => key(m, s)).sort();
  const removed = [...a].filter(([m]) => !b.has(m)).map(([m, s]) => key(m, s)).sort();
  const fields: string[] = [];
  for (const [m, sb] of b) {
    const sa = a.get(m);
    if (!sa) continue;
    const ta = tracked(sa);
    const tb = tracked(sb);
    for (const f of new Set([...Object.keys(ta), ...Object.keys(tb)])) {
      if (ta[f] !== tb[f]) fields.push(`${key(m, sb)} ${f} ${ta[f] ?? null} -> ${tb[f] ?? null}`);
    }
  }
  return { added, removed, fields: fields.sort() };
}

/** The same three lists from a sync report (values parsed back to numbers). */
function reportedDiff(r: SyncReport) {
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    added: r.changes.filter((c) => c.kind === 'added').map((c) => `${c.provider}/${c.model}`).sort(),
    removed: r.changes.filter((c) => c.kind === 'removed').map((c) => `${c.provider}/${c.model}`).sort(),
    fields: r.changes.filter((c) => c.kind === 'changed').map((c) => `${c.provider}/${c.model} ${c.field} ${num(c.old_value)} -> ${num(c.new_value)}`).sort(),
  };
}

let env: IsolatedEnv;
let server: Server;
let baseUrl: string;

const cmd = (name: string) => commands.find((c) => c.name === name)!;
const ctx = (args: Record<string, string>): CommandContext => ({
  args, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
  config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
});
const sync = (day: string, effective = `${day}T00:00:00Z`) => {
  const f = readLiteLlmFile(bytes(day));
  return syncPriceBook(env.pool, { entries: f.entries, sha256: f.sha256, source: `${day}.json`, effectiveAt: new Date(effective) });
};

beforeAll(async () => {
  env = await isolatedEnv();
  server = createServer((req, res) => {
    const day = /^\/(\d{4}-\d{2}-\d{2})\.json$/.exec(req.url ?? '')?.[1];
    if (!day || !DAYS.includes(day as (typeof DAYS)[number])) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(bytes(day));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await env?.cleanup();
});

describe('kaching prices sync over the dated LiteLLM snapshots', () => {
  it('the first sync adds every model that has token prices', async () => {
    const r = await sync('2026-03-06');
    expect(reportedDiff(r)).toEqual(expectedDiff({}, raw('2026-03-06')));
    expect(r.added).toBe(priced(raw('2026-03-06')).size);
  });

  it('2026-03-06 -> 2026-04-26 records the models added and removed and every field changed, old and new', async () => {
    const r = await sync('2026-04-26');
    const want = expectedDiff(raw('2026-03-06'), raw('2026-04-26'));
    expect(want.removed.length).toBeGreaterThan(0);
    expect(reportedDiff(r)).toEqual(want);
    expect(r).toMatchObject({ added: want.added.length, removed: want.removed.length });
  });

  it('the same file again records nothing', async () => {
    const before = (await listPriceChanges(env.pool, { limit: 10_000 })).length;
    const r = await sync('2026-04-26', '2026-05-01T00:00:00Z');
    expect(r.changes).toEqual([]);
    expect(r).toMatchObject({ added: 0, removed: 0, changed: 0 });
    expect((await listPriceChanges(env.pool, { limit: 10_000 })).length).toBe(before);
  });

  it('2026-04-26 -> 2026-07-24, through `kaching prices sync --from <URL>`, records the real differences', async () => {
    const out = await cmd('prices sync').run(ctx({ from: `${baseUrl}/2026-07-24.json`, 'effective-at': '2026-07-24T00:00:00Z' }));
    const r = out.data as SyncReport;
    const want = expectedDiff(raw('2026-04-26'), raw('2026-07-24'));
    expect(want.added.length).toBeGreaterThan(0);
    expect(want.fields.length).toBeGreaterThan(0);
    expect(reportedDiff(r)).toEqual(want);
    // SOURCE.md names gpt-5.4-pro and gpt-5.5-pro among the changed models; gpt-5.5-pro's price halved here
    const a = raw('2026-04-26')['gpt-5.5-pro']!;
    const b = raw('2026-07-24')['gpt-5.5-pro']!;
    const logged = await listPriceChanges(env.pool, { model: 'gpt-5.5-pro', since: new Date('2026-07-24T00:00:00Z') });
    expect(logged.length).toBeGreaterThan(0);
    for (const c of logged) {
      expect(c).toMatchObject({ kind: 'changed', provider: 'openai' });
      expect(c.old_value === null ? undefined : Number(c.old_value)).toBe(a[c.field!]);
      expect(c.new_value === null ? undefined : Number(c.new_value)).toBe(b[c.field!]);
      expect(new Date(c.effective_at).toISOString()).toBe('2026-07-24T00:00:00.000Z');
    }
    const listed = await cmd('prices changes').run({ ...ctx({ model: 'gpt-5.5-pro' }), json: false });
    expect(listed.text).toContain('gpt-5.5-pro');
    expect(listed.text).toContain(logged[0]!.field!);
  });

  it('a sync taking effect before the last one is refused (409 PRICE_SYNC_OUT_OF_ORDER), and nothing changes', async () => {
    const before = (await listPriceChanges(env.pool, { limit: 10_000 })).length;
    await expect(sync('2026-03-06', '2026-06-01T00:00:00Z')).rejects.toMatchObject({ code: 'PRICE_SYNC_OUT_OF_ORDER', status: 409, field: 'effective_at' });
    expect((await listPriceChanges(env.pool, { limit: 10_000 })).length).toBe(before);
  });

  it('a file that is not a LiteLLM price file is refused with PRICE_FILE_INVALID', async () => {
    await expect(cmd('prices sync').run(ctx({ from: `${baseUrl}/nope.json` }))).rejects.toMatchObject({ code: 'PRICE_FILE_INVALID' });
    expect(() => readLiteLlmFile('[1, 2]')).toThrow(expect.objectContaining({ code: 'PRICE_FILE_INVALID' }));
    expect(() => readLiteLlmFile('{ "gpt": ')).toThrow(expect.objectContaining({ code: 'PRICE_FILE_INVALID', rule: 'json' }));
  });

  it('the book prices each instant with the version in force then', async () => {
    const book = await new PriceBook().load(env.pool);
    const a = raw('2026-04-26')['gpt-5.5-pro']!;
    const b = raw('2026-07-24')['gpt-5.5-pro']!;
    // 100k input tokens (below the 272k long-prompt tier) cost the per-token price × 1e5, in micro-USD (× 1e6)
    const llm = { provider: 'openai', model_name: 'gpt-5.5-pro', tokens_in: 100_000, tokens_out: 0 };
    const costAt = (iso: string) => book.cost(llm, Date.parse(iso))!.microUsd;
    expect(costAt('2026-07-23T23:59:59Z')).toBe(BigInt(Math.round(Number(a.input_cost_per_token) * 1e11)));
    expect(costAt('2026-07-24T00:00:00Z')).toBe(BigInt(Math.round(Number(b.input_cost_per_token) * 1e11)));
    expect(costAt('2026-07-24T00:00:00Z')).toBeLessThan(costAt('2026-07-23T23:59:59Z'));
    // before the first version, the first version applies
    expect(book.versionAt('openai', 'gpt-5.5-pro', Date.parse('2020-01-01T00:00:00Z'))?.version.version).toBe(1);
  });

  it('a model priced by hand is left alone by later syncs; aliases and patterns are explicit', async () => {
    await setModelPrice(env.pool, { provider: 'openai', model_name: 'gpt-4o', effective_from: '2026-08-01T00:00:00Z', input_per_1m_micro_usd: 1, output_per_1m_micro_usd: 2 });
    const f = readLiteLlmFile(bytes('2026-03-06'));
    const r = await syncPriceBook(env.pool, { entries: f.entries, sha256: f.sha256, source: 'again', effectiveAt: new Date('2026-09-01T00:00:00Z') });
    expect(r.skipped_manual).toBe(1);
    expect(r.changes.some((c) => c.model === 'gpt-4o')).toBe(false);
    const book = await new PriceBook().load(env.pool);
    expect(book.versionAt('openai', 'gpt-4o', Date.parse('2026-09-02T00:00:00Z'))?.version).toMatchObject({ source: 'manual', input: 1_000_000n });
    // no entry for a dated snapshot name until an alias says which price it takes
    expect(book.cost({ provider: 'openai', model_name: 'gpt-4o-2099-01-01', tokens_in: 1, tokens_out: 0 }, Date.now())).toBeNull();
    await setPriceAlias(env.pool, { alias: 'gpt-4o-2099-*', provider: 'openai', model_name: 'gpt-4o' });
    await book.refresh(env.pool);
    const c = book.cost({ provider: 'openai', model_name: 'gpt-4o-2099-01-01', tokens_in: 1_000_000, tokens_out: 0 }, Date.parse('2026-09-02T00:00:00Z'));
    expect(c).toMatchObject({ microUsd: 1n, pricedAs: { provider: 'openai', model: 'gpt-4o' } });
    expect((await cmd('prices aliases').run(ctx({}))).data).toMatchObject({ items: [{ alias: 'gpt-4o-2099-*', provider: 'openai', model_name: 'gpt-4o' }] });
  });
});
