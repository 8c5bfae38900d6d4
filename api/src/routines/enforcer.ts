import type pg from 'pg';
import { activateLicense as enforcerActivate, effectiveLimits as enforcerEffective, InputError, KachingError, verifyLicense } from '@kaching/contracts';

/**
 * Effective limits as the enforcer sees them (license + quotas + budgets with their windows and usage; contracts/policy).
 * Runs on the operator pool, so callers must first have proven through RLS that the deployment is the caller's.
 */
export function effectiveLimits(pool: pg.Pool, deploymentId: string, now: Date): Promise<unknown> {
  return enforcerEffective(pool, deploymentId, now);
}

/**
 * Verifies a vendor-signed license and activates it for the caller's org. The org is checked on the
 * verified payload first (clear error), and the write itself runs on the caller's RLS client, so a
 * license naming another org could not land in someone else's account even without that check.
 */
export async function activateLicense(rls: pg.Pool, orgId: string, blob: string, vendorPublicKey: string, deploymentId?: string) {
  if (!vendorPublicKey) throw new KachingError('LICENSE_INVALID', { message: 'KACHING_LICENSE_PUBLIC_KEY is not configured on this server' });
  const v = await verifyLicense(blob, vendorPublicKey);
  if (v.payload.org_id !== orgId) {
    throw new InputError('LICENSE_INVALID', { field: 'license', message: 'The license was issued to another organisation' });
  }
  return enforcerActivate(rls, blob, vendorPublicKey, deploymentId ? { deploymentId } : {});
}
