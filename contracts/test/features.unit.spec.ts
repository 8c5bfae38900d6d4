import { describe, expect, it } from 'vitest';
import { flagTakesEffect, grants, mergeFeatures } from '@kaching/contracts';

describe('the feature merge rule', () => {
  it('a license value grants unless false, null, 0 or empty', () => {
    expect([true, 1, 'pro', {}, []].map(grants)).toEqual([true, true, true, true, true]);
    expect([false, null, undefined, 0, ''].map(grants)).toEqual([false, false, false, false, false]);
  });

  it('off always counts; on counts with the grant or an override', () => {
    const lic = { sso: true, federation: false, seats: 10 };
    expect(flagTakesEffect(lic, { flag: 'federation', enabled: false })).toBe(true);
    expect(flagTakesEffect(lic, { flag: 'federation', enabled: true })).toBe(false);
    expect(flagTakesEffect(lic, { flag: 'federation', enabled: true, override: true })).toBe(true);
    expect(flagTakesEffect(undefined, { flag: 'x', enabled: true })).toBe(false);
    expect(mergeFeatures(lic, [
      { flag: 'sso', enabled: false },
      { flag: 'federation', enabled: true },
      { flag: 'seats', enabled: true },
      { flag: 'beta', enabled: true, override: true },
    ])).toEqual({ sso: false, federation: false, seats: true, beta: true });
  });
});
