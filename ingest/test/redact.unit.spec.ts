import { describe, expect, it } from 'vitest';
import { redactUcxl } from '@kaching/ingest';
import { RateLimiter } from '../src/pipeline/rateLimit.js';
import { parseIngestToken } from '@kaching/contracts';

describe('redactUcxl', () => {
  const addr = 'ucxl://coder-7:dev@acme:t1/src/customer/acme/main.ts';
  it('leaves the address alone without a policy or a match', () => {
    expect(redactUcxl(addr, [])).toEqual({ addr, redacted: [] });
    expect(redactUcxl(addr, ['tenant'])).toEqual({ addr, redacted: [] });
  });
  it('redacts named components', () => {
    expect(redactUcxl(addr, ['agent', 'task'])).toEqual({ addr: 'ucxl://[redacted]:dev@acme:[redacted]/src/customer/acme/main.ts', redacted: ['agent', 'task'] });
  });
  it('redacts the segment after a keyed path segment', () => {
    expect(redactUcxl(addr, ['customer'])).toEqual({ addr: 'ucxl://coder-7:dev@acme:t1/src/customer/[redacted]/main.ts', redacted: ['customer'] });
  });
  it('redacts the whole path', () => {
    expect(redactUcxl(addr, ['path', 'role'])).toEqual({ addr: 'ucxl://coder-7:[redacted]@acme:t1/[redacted]', redacted: ['path', 'role'] });
  });
});

describe('RateLimiter', () => {
  it('lets a burst through, then refuses with a wait, then refills', () => {
    const l = new RateLimiter(10, 20);
    l.take('t', 20, 0);
    expect(() => l.take('t', 5, 0)).toThrow(expect.objectContaining({ code: 'RATE_LIMITED', retryAfterS: 1 }));
    l.take('t', 5, 500);
    l.take('u', 1, 0);
  });
});

describe('token format', () => {
  it('parses kt_<id>_<secret>', () => {
    const p = parseIngestToken(`kt_0123456789abcdef0123456789abcdef_${'A'.repeat(43)}`);
    expect(p).toEqual({ tokenId: '01234567-89ab-cdef-0123-456789abcdef', secret: 'A'.repeat(43) });
    expect(parseIngestToken('kt_nope')).toBeNull();
  });
});
