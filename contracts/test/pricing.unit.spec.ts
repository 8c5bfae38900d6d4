import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  attoToMicroPerMillion, attoToUsdPerToken, entryPrices, microPerMillionToAtto, microUsdToUsd, parseLiteLlm, priceRequest, usdPerTokenToAtto, type PriceVersion,
} from '@kaching/contracts';

const fixture = (day: string) => JSON.parse(readFileSync(new URL(`./fixtures/litellm-prices/${day}.json`, import.meta.url), 'utf8')) as Record<string, Record<string, unknown>>;

/** micro-USD per 1M tokens, as prices are written, to the atto-USD per token the pricing function takes */
const mp = (v: number | string) => microPerMillionToAtto(v);

function version(p: Partial<PriceVersion>): PriceVersion {
  return {
    provider: 'p', model: 'm', version: 1, effectiveFrom: 0, effectiveTo: null, source: 'manual', input: mp(0), output: mp(0), cacheRead: null, cacheWrite: null, reasoning: null,
    tiers: [], gpuSecond: 0n, cpuSecond: 0n, ...p,
  };
}

describe('priceRequest: each token priced once, integer micro-USD', () => {
  // $3 / $15 per 1M, cache read $0.30, cache write $3.75 (Anthropic's Sonnet prices)
  const sonnet = version({ input: mp(3_000_000), output: mp(15_000_000), cacheRead: mp(300_000), cacheWrite: mp(3_750_000) });

  it('tokens_in holds cache reads and writes, tokens_out holds reasoning (the OpenTelemetry rule)', () => {
    // 7,000 uncached × $3 + 2,000 read × $0.30 + 1,000 written × $3.75 + 2,000 out × $15 (500 of them reasoning, at the output price)
    // = $0.021 + $0.0006 + $0.00375 + $0.03 = $0.05535
    const c = priceRequest(sonnet, { provider: 'anthropic', model_name: 'm', tokens_in: 10_000, tokens_out: 2_000, tokens_cached_in: 2_000, tokens_cache_write: 1_000, tokens_reasoning: 500 });
    expect(c).toBe(55_350n);
    expect(microUsdToUsd(c)).toBe('0.055350');
  });

  it('cache tokens without a price of their own cost the input price; reasoning with one costs its own', () => {
    const p = version({ input: mp(2_000_000), output: mp(8_000_000), reasoning: mp(20_000_000) });
    // 1,000 in (400 cached, no cache price) × $2 = $0.002; 300 out: 100 reasoning × $20 + 200 × $8 = $0.0036
    expect(priceRequest(p, { provider: 'x', model_name: 'm', tokens_in: 1_000, tokens_out: 300, tokens_cached_in: 400, tokens_reasoning: 100 })).toBe(5_600n);
  });

  it('a count above its total is clamped: no token is priced twice', () => {
    const c = priceRequest(sonnet, { provider: 'a', model_name: 'm', tokens_in: 100, tokens_out: 10, tokens_cached_in: 80, tokens_cache_write: 50, tokens_reasoning: 30 });
    // 80 read × 0.3 + 20 written × 3.75 (what is left of the input) + 10 reasoning at the output price
    expect(c).toBe((80n * 300_000n + 20n * 3_750_000n + 10n * 15_000_000n + 500_000n) / 1_000_000n);
  });

  it('a long prompt above a tier threshold prices the whole request at the tier', () => {
    const p = version({ input: mp(3_000_000), output: mp(15_000_000), cacheRead: mp(300_000), tiers: [{ aboveInputTokens: 200_000, input: mp(6_000_000), output: mp(22_500_000), cacheRead: mp(600_000) }] });
    const at = (tin: number) => priceRequest(p, { provider: 'a', model_name: 'm', tokens_in: tin, tokens_out: 1_000, tokens_cached_in: 100_000 });
    // at the threshold: base prices; one token above: every token at the tier's
    expect(at(200_000)).toBe(100_000n * 3n + 100_000n * 3n / 10n + 1_000n * 15n);
    expect(at(200_001)).toBe(100_001n * 6n + 100_000n * 6n / 10n + (1_000n * 225n) / 10n);
  });

  it('rounds half up once, from the exact atto-USD total', () => {
    const half = version({ input: mp(500_000) }); // $0.50 per 1M = half a micro-USD per token
    expect(priceRequest(half, { provider: 'x', model_name: 'm', tokens_in: 1, tokens_out: 0 })).toBe(1n);
    expect(priceRequest(half, { provider: 'x', model_name: 'm', tokens_in: 3, tokens_out: 0 })).toBe(2n); // 1.5 → 2
    expect(priceRequest(version({ input: mp(499_999) }), { provider: 'x', model_name: 'm', tokens_in: 1, tokens_out: 0 })).toBe(0n);
  });

  it('local models priced per GPU/CPU second', () => {
    const local = version({ gpuSecond: 250n, cpuSecond: 10n });
    expect(priceRequest(local, { provider: 'local', model_name: 'l', tokens_in: 0, tokens_out: 0 }, { gpu_seconds: 2.5, cpu_seconds: 10 })).toBe(725n);
  });
});

describe('prices from LiteLLM files convert exactly', () => {
  it('every token price in the three snapshots survives USD/token → stored micro-USD per 1M → USD/token', () => {
    let n = 0;
    for (const day of ['2026-03-06', '2026-04-26', '2026-07-24']) {
      for (const spec of Object.values(fixture(day))) {
        for (const [k, v] of Object.entries(spec)) {
          if (!/cost_per_token|token_cost/.test(k) || typeof v !== 'number') continue;
          const stored = attoToMicroPerMillion(usdPerTokenToAtto(v));
          expect(Number(attoToUsdPerToken(microPerMillionToAtto(stored)))).toBe(v);
          n++;
        }
      }
    }
    expect(n).toBeGreaterThan(1000);
  });

  it('3e-06 is 3,000,000 micro-USD per 1M tokens; 4.6875e-9 is 4,687.5; below an atto-USD is refused', () => {
    expect(attoToMicroPerMillion(usdPerTokenToAtto(3e-6))).toBe('3000000');
    expect(attoToMicroPerMillion(usdPerTokenToAtto(4.6875e-9))).toBe('4687.5');
    expect(attoToMicroPerMillion(usdPerTokenToAtto('0.000000125'))).toBe('125000');
    expect(() => usdPerTokenToAtto('0.0000000000000000001')).toThrow(/18 decimals/);
  });

  it('parses the entries that price tokens, with their long-prompt tiers', () => {
    const raw = fixture('2026-07-24');
    const entries = parseLiteLlm(raw);
    const priced = Object.entries(raw).filter(([k, s]) => k !== 'sample_spec' && (typeof s.input_cost_per_token === 'number' || typeof s.output_cost_per_token === 'number'));
    expect(entries.map((e) => e.model)).toEqual(priced.map(([k]) => k));
    const sonnet = entries.find((e) => e.model === 'claude-4-sonnet-20250514')!;
    expect(sonnet.provider).toBe(String(raw['claude-4-sonnet-20250514']!.litellm_provider));
    const p = entryPrices(sonnet.fields);
    expect(p).toMatchObject({ input: mp(3_000_000), output: mp(15_000_000), cacheRead: mp(300_000), cacheWrite: mp(3_750_000), reasoning: null });
    expect(p.tiers).toEqual([{ above_input_tokens: 200_000, input: '6000000', output: '22500000', cache_read: '600000', cache_write: '7500000' }]);
    // the finest price in the snapshots: 4.6875e-9 USD per token
    const flash = entryPrices(parseLiteLlm(fixture('2026-03-06')).find((e) => e.model === 'gemini-1.5-flash-preview-0514')!.fields);
    expect(attoToMicroPerMillion(flash.output)).toBe('4687.5');
  });
});
