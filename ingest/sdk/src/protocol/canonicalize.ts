/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 * Numbers use ECMAScript Number::toString (which JCS adopts verbatim), strings use the minimal JSON
 * escaping JCS prescribes, object members are sorted by their keys' UTF-16 code units.
 */
export function canonicalize(value: unknown): string {
  return write(value, false);
}

function write(value: unknown, inArray: boolean): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return serializeNumber(value);
    case 'string':
      return serializeString(value);
    case 'object':
      break;
    case 'undefined':
      // Only reachable for array elements and the top level: object members holding undefined are skipped like JSON.stringify does.
      throw new TypeError(inArray ? 'canonicalize: undefined array element' : 'canonicalize: undefined value');
    default:
      throw new TypeError(`canonicalize: cannot serialise a ${typeof value}`);
  }
  const obj = value as { toJSON?: unknown };
  if (typeof obj.toJSON === 'function') return write((obj.toJSON as () => unknown)(), inArray);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += write(value[i], true);
    }
    return out + ']';
  }
  const rec = value as Record<string, unknown>;
  // Default sort compares UTF-16 code units, exactly what JCS asks for.
  const keys = Object.keys(rec).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = rec[key];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    if (!first) out += ',';
    first = false;
    out += serializeString(key) + ':' + write(v, false);
  }
  return out + '}';
}

/** ECMAScript Number::toString for finite numbers; -0 serialises as 0. */
export function serializeNumber(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`canonicalize: non-finite number ${n} is not JSON`);
  if (n === 0) return '0';
  return String(n);
}

const SHORT_ESCAPES: Record<number, string> = {
  0x08: '\\b',
  0x09: '\\t',
  0x0a: '\\n',
  0x0c: '\\f',
  0x0d: '\\r',
  0x22: '\\"',
  0x5c: '\\\\',
};

// Characters that need any escaping (controls, quote, backslash) or checking (surrogates).
const NEEDS_WORK = /[\u0000-\u001f"\\\ud800-\udfff]/;

export function serializeString(s: string): string {
  if (!NEEDS_WORK.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) {
      out += SHORT_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) throw new TypeError('canonicalize: lone surrogate in string');
      out += s[i]! + s[i + 1]!;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new TypeError('canonicalize: lone surrogate in string');
    } else {
      out += s[i]!;
    }
  }
  return out + '"';
}
