import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../errors/errors.js';

/** What a client certificate can be pinned by: its SHA-256 fingerprint, or one of its names (CN or a SAN value). */
export interface CertIdentity {
  /** SHA-256 of the DER certificate, 32 bytes. */
  fingerprint: Buffer;
  /** The subject CN and every subjectAltName value (DNS, IP, URI, email), without their `DNS:`-style prefixes. */
  names: string[];
}

export function certIdentity(cert: Buffer | string | X509Certificate): CertIdentity {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const names = new Set<string>();
  for (const line of x.subject.split('\n')) if (line.startsWith('CN=')) names.add(line.slice(3));
  // subjectAltName: `DNS:a, IP Address:127.0.0.1, URI:spiffe://x` (values containing ", " are quoted by node ≥ 20.x)
  for (const part of (x.subjectAltName ?? '').split(/, (?=[A-Za-z ]+:)/)) {
    const i = part.indexOf(':');
    if (i > 0) names.add(part.slice(i + 1).replace(/^"(.*)"$/, '$1'));
  }
  return { fingerprint: Buffer.from(x.fingerprint256.replace(/:/g, ''), 'hex'), names: [...names] };
}

/** A SHA-256 fingerprint as printed by openssl (`AB:CD:…`) or plain hex, to 32 bytes; InputError otherwise. */
export function parseFingerprint(text: string, field = 'fingerprint'): Buffer {
  const hex = text.trim().replace(/^sha256[:=]/i, '').replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new InputError('FIELD_FORMAT', { field, rule: 'format:sha256-hex', message: `${field} must be a SHA-256 fingerprint (64 hex digits, colons allowed)` });
  }
  return Buffer.from(hex, 'hex');
}

/** The fingerprint of a PEM certificate file, for `kaching token bind-cert --cert FILE`. */
export function fingerprintOfPemFile(file: string, field = 'cert'): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    throw new InputError('FIELD_FORMAT', { field, rule: 'format:file', message: `cannot read ${file}: ${(e as Error).message}` });
  }
  try {
    return certIdentity(pem).fingerprint;
  } catch (e) {
    throw new InputError('FIELD_FORMAT', { field, rule: 'format:x509-pem', message: `${file} is not a PEM certificate: ${(e as Error).message}` });
  }
}
