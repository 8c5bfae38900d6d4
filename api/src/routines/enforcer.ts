import type pg from 'pg';
import { KachingError } from '@kaching/contracts';

// The enforcer package owns the limit merge and license verification. It is resolved at call time
// so the API keeps working (with the stored limits) in a build where those exports are absent.
type EnforcerModule = {
  effectiveLimits?: (pool: pg.Pool, deploymentId: string, now: Date) => Promise<unknown>;
  activateLicense?: (pool: pg.Pool, blob: string, vendorPublicKey: string) => Promise<unknown>;
};

async function enforcer(): Promise<EnforcerModule> {
  return (await import('@kaching/enforcer')) as unknown as EnforcerModule;
}

/** The enforcer's effective limits, or null when this build has no enforcer merge. */
export async function effectiveLimits(pool: pg.Pool, deploymentId: string, now: Date): Promise<unknown> {
  const m = await enforcer();
  return m.effectiveLimits ? m.effectiveLimits(pool, deploymentId, now) : null;
}

/**
 * Verifies and stores a vendor-signed license. `db` is the caller's RLS client wrapped as a pool, so a
 * license naming another org fails the row policy instead of landing in someone else's account.
 */
export async function activateLicense(db: pg.Pool, blob: string, vendorPublicKey: string): Promise<unknown> {
  const m = await enforcer();
  if (!m.activateLicense) throw new KachingError('INTERNAL', { message: 'License activation is not available in this build' });
  if (!vendorPublicKey) throw new KachingError('LICENSE_INVALID', { message: 'KACHING_LICENSE_PUBLIC_KEY is not configured on this server' });
  return m.activateLicense(db, blob, vendorPublicKey);
}
