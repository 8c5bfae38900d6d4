import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Small certificate authorities made with the openssl CLI (node:crypto verifies X.509 but cannot issue it):
 * a CA, server certificates and client certificates, all EC P-256. Used by `kaching tls dev-ca` and by the
 * tests. Files are `<name>.pem` (certificate) and `<name>.key` (private key, mode 0600).
 */
export interface Pki {
  dir: string;
  ca: IssuedCert;
  /** A server certificate; SANs default to localhost and 127.0.0.1. */
  server(name: string, sans?: string[]): IssuedCert;
  /** A client certificate with CN `cn` (default: name) and optional SANs such as `DNS:agent-1.prod`, `URI:spiffe://…`. */
  client(name: string, cn?: string, sans?: string[]): IssuedCert;
}

export interface IssuedCert {
  name: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export interface PkiOptions {
  caName?: string;
  /** Validity of every certificate issued, in days. */
  days?: number;
  /** Reuse `<caName>.pem`/`.key` when they exist (issue more certificates from an existing dev CA). */
  reuseCa?: boolean;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed (apt-get install -y openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message}`);
  }
}

function read(dir: string, name: string): IssuedCert {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  return { name, certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

function newKey(dir: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
// Subject values go into `-subj /CN=…`, where `/` and `=` would start new attributes.
const SAFE_CN = /^[^/=\\\n]{1,64}$/;
const SAN = /^(DNS|IP|URI|email):[^,\n]{1,200}$/;

export function makePki(dir: string, opts: PkiOptions | string = {}): Pki {
  const o: PkiOptions = typeof opts === 'string' ? { caName: opts } : opts;
  const caName = o.caName ?? 'ca';
  const days = String(o.days ?? 2);
  mkdirSync(dir, { recursive: true });
  if (!(o.reuseCa && existsSync(path.join(dir, `${caName}.pem`)) && existsSync(path.join(dir, `${caName}.key`)))) {
    newKey(dir, caName);
    openssl(['req', '-x509', '-new', '-key', `${caName}.key`, '-out', `${caName}.pem`, '-days', days, '-subj', `/CN=KACHING CA ${caName}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  }
  const issue = (name: string, cn: string, ext: string): IssuedCert => {
    if (!SAFE_NAME.test(name)) throw new Error(`certificate name "${name}" must match ${SAFE_NAME}`);
    if (!SAFE_CN.test(cn)) throw new Error(`common name "${cn}" may not contain / = \\ or newlines (1-64 characters)`);
    newKey(dir, name);
    openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', days, '-extfile', `${name}.ext`], dir);
    rmSync(path.join(dir, `${name}.csr`), { force: true });
    rmSync(path.join(dir, `${name}.ext`), { force: true });
    return read(dir, name);
  };
  const sanLine = (sans: string[]) => {
    for (const s of sans) if (!SAN.test(s)) throw new Error(`SAN "${s}" must look like DNS:name, IP:addr, URI:uri or email:addr`);
    return sans.length ? `subjectAltName=${sans.join(',')}\n` : '';
  };
  return {
    dir,
    ca: read(dir, caName),
    server: (name, sans = ['DNS:localhost', 'IP:127.0.0.1']) =>
      issue(name, sans.find((s) => s.startsWith('DNS:'))?.slice(4) ?? name, `${sanLine(sans)}extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`),
    client: (name, cn = name, sans = []) => issue(name, cn, `${sanLine(sans)}extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n`),
  };
}
