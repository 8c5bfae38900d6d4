import { describe, expect, it } from 'vitest';
import { bytes, day, duration, int, localTime, pct, usd } from '../src/report/format.js';
import { winAnsi } from '../src/report/pdf.js';
import { usdMicro } from '../web/src/format.js';

describe('report number formats', () => {
  it('dollars from integer micro-USD: cents from $1, four decimals below, rounded half up', () => {
    const cases: [number, string][] = [
      [0, '$0.0000'], [12_500, '$0.0125'], [49, '$0.0000'], [50, '$0.0001'], [999_949, '$0.9999'], [999_950, '$1.00'],
      [1_000_000, '$1.00'], [1_725_000, '$1.73'], [1_724_999, '$1.72'], [6_900_000, '$6.90'], [1_234_567_890, '$1,234.57'], [-3_250_000, '-$3.25'],
    ];
    for (const [micro, text] of cases) {
      expect(usd(micro), String(micro)).toBe(text);
      expect(usdMicro(micro), `dashboard ${micro}`).toBe(text); // the dashboard prints the same amounts
    }
  });

  it('durations, bytes, counts, shares and days', () => {
    expect(duration(42.54)).toBe('42.5 s');
    expect(duration(725)).toBe('12 min 5 s');
    expect(duration(3725.4)).toBe('1 h 2 min 5 s');
    expect(duration(3600)).toBe('1 h 0 min 0 s');
    expect(duration(360_000)).toBe('100 h 0 min 0 s');
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1_400_000_000)).toBe('1.40 GB');
    expect(int(1_700_000)).toBe('1,700,000');
    expect(pct(36, 69)).toBe('52.2%');
    expect(pct(1, 0)).toBe('–');
    expect(day('2026-11-20')).toBe('20 Nov 2026');
    expect(localTime('2026-11-20T16:00:00Z', 'America/New_York')).toBe('20 Nov 2026 11:00');
    expect(localTime('2026-11-20T23:30:00Z', 'Europe/Berlin')).toBe('21 Nov 2026 00:30');
  });

  it('text outside the standard fonts\' encoding prints as "?"', () => {
    expect(winAnsi('Flotte Ørsted – “ok” €5')).toBe('Flotte Ørsted – “ok” €5');
    expect(winAnsi('東京 fleet 😀')).toBe('?? fleet ?');
  });
});
