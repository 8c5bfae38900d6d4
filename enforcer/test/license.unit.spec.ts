import { describe, expect, it } from 'vitest';
import { issueLicense, licenseKeygen, verifyLicense } from '@kaching/contracts';
import { loadConfig } from '@kaching/enforcer';

const ORG = '11111111-1111-4111-8111-111111111111';

describe('vendor-signed licenses', () => {
  it('verifies locally and reports validity', async () => {
    const k = await licenseKeygen();
    const blob = await issueLicense({ org_id: ORG, plan_id: 'team', seats_limit: 5, nodes_limit: 3, valid_from: '2026-01-01', valid_to: '2027-01-01', features: { sso: true } }, k.privateKey);
    const v = await verifyLicense(blob, k.publicKey, new Date('2026-06-01T00:00:00Z'));
    expect(v.status).toBe('valid');
    expect(v.payload).toMatchObject({ org_id: ORG, plan_id: 'team', seats_limit: 5, nodes_limit: 3, features: { sso: true } });
    expect((await verifyLicense(blob, k.publicKey, new Date('2027-01-02T00:00:00Z'))).status).toBe('expired');
  });

  it('refuses a tampered payload, a foreign key and garbage with LICENSE_INVALID', async () => {
    const k = await licenseKeygen();
    const other = await licenseKeygen();
    const blob = await issueLicense({ org_id: ORG, plan_id: 'team', seats_limit: 5, valid_from: '2026-01-01', valid_to: '2027-01-01' }, k.privateKey);
    const doc = JSON.parse(Buffer.from(blob, 'base64').toString());
    doc.payload.seats_limit = 500;
    const tampered = Buffer.from(JSON.stringify(doc)).toString('base64');
    await expect(verifyLicense(tampered, k.publicKey)).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
    await expect(verifyLicense(blob, other.publicKey)).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
    await expect(verifyLicense('not a license', k.publicKey)).rejects.toMatchObject({ code: 'LICENSE_INVALID' });
  });
});

describe('vendor public key configuration', () => {
  it('takes a base64 key that starts with "/" as the key itself, and anything else as a file holding it', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    // base64 of 32 bytes whose first 6 bits are all ones starts with '/'
    const slashKey = Buffer.alloc(32, 0xff).toString('base64');
    expect(slashKey.startsWith('/')).toBe(true);
    expect(loadConfig({ KACHING_LICENSE_PUBLIC_KEY: slashKey }).licensePublicKey).toBe(slashKey);
    const file = join(mkdtempSync(join(tmpdir(), 'kaching-key-')), 'vendor.pub');
    writeFileSync(file, `${slashKey}\n`);
    expect(loadConfig({ KACHING_LICENSE_PUBLIC_KEY: file }).licensePublicKey).toBe(slashKey);
    expect(loadConfig({ KACHING_LICENSE_PUBLIC_KEY_FILE: file }).licensePublicKey).toBe(slashKey);
  });
});
