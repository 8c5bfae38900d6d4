import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Throw-away certificates for tests, made with the openssl CLI (node:crypto cannot issue X.509):
 * a CA, server certificates for 127.0.0.1/localhost and client certificates, all EC P-256, valid
 * from now for two days. When `kaching tls dev-ca` lands, tests may use it instead; the file layout
 * (name.pem + name.key) is the usual one.
 */
export interface Pki {
  dir: string;
  ca: IssuedCert;
  server(name: string): IssuedCert;
  client(name: string, cn?: string): IssuedCert;
}

export interface IssuedCert {
  name: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function read(dir: string, name: string): IssuedCert {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  return { name, certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

function newKey(dir: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
}

export function makePki(dir: string, caName = 'ca'): Pki {
  mkdirSync(dir, { recursive: true });
  newKey(dir, caName);
  openssl(['req', '-x509', '-new', '-key', `${caName}.key`, '-out', `${caName}.pem`, '-days', '2', '-subj', `/CN=KACHING test CA ${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const issue = (name: string, cn: string, ext: string): IssuedCert => {
    newKey(dir, name);
    openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
    return read(dir, name);
  };
  return {
    dir,
    ca: read(dir, caName),
    server: (name) => issue(name, 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n'),
    client: (name, cn = name) => issue(name, cn, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n'),
  };
}
