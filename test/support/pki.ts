// The test PKI is the one `kaching tls dev-ca` uses (contracts/src/tls/pki.ts), valid for two days.
export { makePki, type Pki, type IssuedCert } from '@kaching/contracts';
