import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { certIdentity, devCa, parseFingerprint } from '@kaching/contracts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kaching-devca-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kaching tls dev-ca', () => {
  it('issues a CA, a server certificate for localhost/127.0.0.1 and a client certificate per agent, all chained to the CA', () => {
    const r = devCa({ dir, agents: ['alpha', 'beta'], days: 1 });
    expect(r.reusedCa).toBe(false);
    const ca = new X509Certificate(readFileSync(r.ca));
    expect(ca.ca).toBe(true);
    const server = new X509Certificate(readFileSync(r.server.cert));
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(r.clients.map((c) => c.name)).toEqual(['alpha', 'beta', 'service']);
    for (const c of r.clients) {
      const x = new X509Certificate(readFileSync(c.cert));
      expect(x.verify(ca.publicKey)).toBe(true);
      expect(certIdentity(x).names).toEqual([c.name]);
      expect(certIdentity(x).fingerprint.toString('hex')).toBe(c.sha256);
      expect(statSync(c.key).mode & 0o077).toBe(0);
    }
    expect(statSync(path.join(dir, 'ca.key')).mode & 0o077).toBe(0);
  });

  it('run again, keeps the CA and existing certificates (bound fingerprints stay valid) and adds new agents', () => {
    const first = JSON.parse(JSON.stringify(devCa({ dir, agents: ['alpha'], days: 1 })));
    const again = devCa({ dir, agents: ['alpha', 'gamma'], days: 1 });
    expect(again.reusedCa).toBe(true);
    expect(again.clients.find((c) => c.name === 'alpha')!.sha256).toBe(first.clients[0].sha256);
    const ca = new X509Certificate(readFileSync(again.ca));
    expect(new X509Certificate(readFileSync(again.clients.find((c) => c.name === 'gamma')!.cert)).verify(ca.publicKey)).toBe(true);
  });

  it('refuses names that would smuggle subject attributes', () => {
    expect(() => devCa({ dir, agents: ['a/CN=evil'] })).toThrow(/must match/);
  });

  it('parses fingerprints as openssl prints them', () => {
    const hex = 'ab'.repeat(32);
    expect(parseFingerprint(`SHA256 Fingerprint=${hex.match(/../g)!.join(':').toUpperCase()}`.split('=')[1]!).toString('hex')).toBe(hex);
    expect(() => parseFingerprint('xyz')).toThrow(/SHA-256/);
  });
});
