import { RateLimitError } from '@kaching/contracts';

interface Bucket {
  tokens: number;
  at: number;
}

/** Per-token token bucket counted in events (a batch of n costs n, capped at the burst so it can ever pass). */
export class RateLimiter {
  private buckets = new Map<string, Bucket>();

  constructor(
    private readonly perSec: number,
    private readonly burst: number,
  ) {}

  /** Takes `cost` events from the bucket of `key` or throws RATE_LIMITED with the wait in seconds. */
  take(key: string, cost = 1, now = Date.now()): void {
    if (this.perSec <= 0) return;
    const c = Math.min(Math.max(cost, 1), this.burst);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 100_000) this.buckets.clear();
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSec);
    b.at = now;
    if (b.tokens >= c) {
      b.tokens -= c;
      return;
    }
    const waitS = Math.max(1, Math.ceil((c - b.tokens) / this.perSec));
    throw new RateLimitError('RATE_LIMITED', { retryAfterS: waitS });
  }
}
