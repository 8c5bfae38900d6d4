import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import canonicalizeRef from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '@kaching/contracts';

const dir = fileURLToPath(new URL('./vectors/rfc8785/', import.meta.url));
const names = readdirSync(`${dir}input`).filter((f) => f.endsWith('.json')).sort();

describe('canonicalize: RFC 8785 vectors (cyberphone/json-canonicalization testdata)', () => {
  it('has the six vector files', () => {
    expect(names).toEqual(['arrays.json', 'french.json', 'structures.json', 'unicode.json', 'values.json', 'weird.json']);
  });
  for (const name of names) {
    it(`${name} canonicalises byte for byte`, () => {
      const input = JSON.parse(readFileSync(`${dir}input/${name}`, 'utf8'));
      const expected = readFileSync(`${dir}output/${name}`);
      expect(Buffer.from(canonicalize(input), 'utf8').equals(expected)).toBe(true);
    });
  }
});

describe('canonicalize: numbers (ECMAScript Number::toString)', () => {
  // From RFC 8785 Appendix B: IEEE-754 value → canonical text.
  const cases: Array<[number, string]> = [
    [0, '0'],
    [-0, '0'],
    [Number.MIN_VALUE, '5e-324'],
    [-Number.MIN_VALUE, '-5e-324'],
    [Number.MAX_VALUE, '1.7976931348623157e+308'],
    [9007199254740992, '9007199254740992'],
    [-9007199254740992, '-9007199254740992'],
    [295147905179352830000, '295147905179352830000'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [0.000001, '0.000001'],
    [999999999999999900000, '999999999999999900000'],
    [333333333.3333333, '333333333.3333333'],
    [1.5, '1.5'],
    [-1e-20, '-1e-20'],
  ];
  for (const [n, s] of cases) {
    it(`${s}`, () => expect(canonicalize(n)).toBe(s));
  }
  it('rejects NaN and ±Infinity', () => {
    expect(() => canonicalize(Number.NaN)).toThrow(RangeError);
    expect(() => canonicalize({ a: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => canonicalize([Number.NEGATIVE_INFINITY])).toThrow(RangeError);
  });
});

describe('canonicalize: strings and structure', () => {
  it('escapes only what JCS asks, with lowercase \\u00xx for other controls', () => {
    expect(canonicalize('\u0000\b\t\n\f\r"\\/\u001f\u007f€😀')).toBe('"\\u0000\\b\\t\\n\\f\\r\\"\\\\/\\u001f\u007f€😀"');
  });
  it('sorts keys by UTF-16 code units, not code points', () => {
    // U+FB33 (one unit 0xFB33) sorts after U+1F600 (surrogates 0xD83D…) in UTF-16 order.
    expect(canonicalize({ '\ufb33': 1, '\u{1f600}': 2, a: 3, B: 4 })).toBe('{"B":4,"a":3,"\u{1f600}":2,"\ufb33":1}');
  });
  it('rejects lone surrogates', () => {
    expect(() => canonicalize('\ud800')).toThrow(TypeError);
    expect(() => canonicalize({ ['\udc00']: 1 })).toThrow(TypeError);
  });
  it('skips undefined members, refuses undefined array elements, bigint and functions at top level', () => {
    expect(canonicalize({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalize([undefined])).toThrow(TypeError);
    expect(() => canonicalize(1n)).toThrow(TypeError);
    expect(() => canonicalize(() => 1)).toThrow(TypeError);
  });
  it('has no whitespace and keeps array order', () => {
    expect(canonicalize({ z: [3, 1, 2], a: { y: null, x: true } })).toBe('{"a":{"x":true,"y":null},"z":[3,1,2]}');
  });
  it('agrees with the `canonicalize` npm package on random JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        expect(canonicalize(v)).toBe((canonicalizeRef as (x: unknown) => string)(v));
      }),
      { numRuns: 300 },
    );
  });
});
