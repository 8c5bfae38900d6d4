import { describe, expect, it } from 'vitest';
import { formatBytes, formatCount, formatMicroUsd, formatPercent, formatQuantity, formatRatio, formatUsd, metricUnit } from '@kaching/contracts';

describe('numbers for people', () => {
  it('seconds get their unit and one decimal from 100 up', () => {
    expect(formatQuantity('cpu_seconds', 2502.867177)).toBe('2,502.9 CPU-s');
    expect(formatQuantity('cpu_seconds', '2500')).toBe('2,500 CPU-s');
    expect(formatQuantity('gpu_seconds', '12.3456')).toBe('12.35 GPU-s');
    expect(formatQuantity('cpu_seconds', 0.125)).toBe('0.125 CPU-s');
    expect(formatQuantity('wall_seconds', 90)).toBe('90 s');
  });

  it('bytes in decimal units; *_mb metrics are megabytes', () => {
    expect(formatQuantity('context_bytes_written', 120802782)).toBe('120.8 MB');
    expect(formatQuantity('context_bytes_read', '999')).toBe('999 B');
    expect(formatBytes(1_500)).toBe('1.5 kB');
    expect(formatBytes(3_210_000_000_000n)).toBe('3.2 TB');
    expect(formatQuantity('net_in_mb', 1500)).toBe('1.5 GB');
  });

  it('tokens grouped, then k/M/B', () => {
    expect(formatQuantity('model_tokens_in', 9999)).toBe('9,999 tokens');
    expect(formatQuantity('model_tokens_out', 45_678)).toBe('45.7k tokens');
    expect(formatQuantity('tokens_in', '1234567')).toBe('1.23M tokens');
    expect(formatCount(2_500_000_000)).toBe('2.5B');
  });

  it('cost: USD decimals and integer micro-USD both read as dollars and cents', () => {
    expect(formatMicroUsd(1_234_567)).toBe('$1.23');
    expect(formatMicroUsd('250000000')).toBe('$250.00');
    expect(formatQuantity('cost_usd', '1234.5')).toBe('$1,234.50');
    expect(formatQuantity('cost_micro_usd', 1_230_000)).toBe('$1.23');
    expect(formatUsd(0.0042)).toBe('$0.0042');
    expect(formatUsd(0)).toBe('$0.00');
  });

  it('counts, ratios and percentages', () => {
    expect(formatQuantity('jobs', 3)).toBe('3');
    expect(formatQuantity('nodes_active', '12')).toBe('12');
    expect(formatRatio(1.0011)).toBe('1.00×');
    expect(formatRatio(2502.867177 / 2500)).toBe('1.00×');
    expect(formatRatio(1.8)).toBe('1.80×');
    expect(formatPercent(0.873)).toBe('87%');
    expect(metricUnit('context_bytes_written')).toBe('bytes');
    expect(metricUnit('cost_usd')).toBe('usd');
    expect(() => formatQuantity('cpu_seconds', 'abc')).toThrow(RangeError);
  });
});
