import { chmodSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError, type Command } from '../cli/command.js';
import { certIdentity } from './identity.js';
import { makePki } from './pki.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$/;

export interface DevCaResult {
  dir: string;
  ca: string;
  reusedCa: boolean;
  server: { cert: string; key: string; sans: string[] };
  clients: { name: string; cert: string; key: string; cn: string; sha256: string }[];
}

/**
 * A local CA and certificates to try TLS with: a server certificate (ingest, API and nats-server) and a
 * client certificate per agent (CN = the agent name) plus one for the KACHING services. Not for production:
 * the CA key sits next to the certificates.
 */
export function devCa(opts: { dir: string; agents: string[]; hosts?: string[]; days?: number; force?: boolean }): DevCaResult {
  for (const a of [...opts.agents, 'service']) if (!NAME.test(a)) throw new UsageError(`agent name "${a}" must match ${NAME}`);
  const reusedCa = !opts.force && existsSync(path.join(opts.dir, 'ca.pem')) && existsSync(path.join(opts.dir, 'ca.key'));
  const pki = makePki(opts.dir, { caName: 'ca', days: opts.days ?? 30, reuseCa: !opts.force });
  const sans = ['DNS:localhost', 'IP:127.0.0.1', ...(opts.hosts ?? []).map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`))];
  // With the CA reused, certificates already there are kept: a fingerprint bound with bind-cert stays valid.
  const kept = (file: string) => reusedCa && existsSync(path.join(opts.dir, `${file}.pem`)) && existsSync(path.join(opts.dir, `${file}.key`));
  const files = (file: string) => ({ certFile: path.join(opts.dir, `${file}.pem`), keyFile: path.join(opts.dir, `${file}.key`) });
  const server = kept('server') && !opts.hosts?.length ? files('server') : pki.server('server', sans);
  const clients = [...new Set([...opts.agents, 'service'])].map((name) => {
    const file = name === 'service' ? 'service' : `agent-${name}`;
    const c = kept(file) ? files(file) : pki.client(file, name);
    return { name, cert: c.certFile, key: c.keyFile, cn: name, sha256: certIdentity(readFileSync(c.certFile)).fingerprint.toString('hex') };
  });
  for (const f of [pki.ca.keyFile, server.keyFile, ...clients.map((c) => c.key)]) chmodSync(f, 0o600);
  return { dir: opts.dir, ca: pki.ca.certFile, reusedCa, server: { cert: server.certFile, key: server.keyFile, sans }, clients };
}

export const tlsCommands: Command[] = [
  {
    name: 'tls dev-ca',
    summary: 'Create a local CA, a server certificate (localhost/127.0.0.1) and client certificates per agent, to try TLS/mTLS',
    options: {
      dir: { type: 'string', description: 'output directory', default: '.kaching/tls' },
      agents: { type: 'string', description: 'comma-separated agent (or deployment) names: one client certificate each, CN = name', default: 'agent' },
      hosts: { type: 'string', description: 'extra server names/IPs for the server certificate, comma-separated' },
      days: { type: 'string', description: 'validity in days', default: '30' },
      force: { type: 'boolean', description: 'make a new CA even if DIR/ca.pem exists (default: reuse it and issue more certificates)' },
    },
    details:
      'Files (PEM): ca.pem/ca.key, server.pem/server.key, agent-<name>.pem/.key per agent, service.pem/.key.\n' +
      'Needs the openssl command. Then, for ingest with mTLS:\n' +
      '  INGEST_TLS_CERT=DIR/server.pem INGEST_TLS_KEY=DIR/server.key INGEST_TLS_CLIENT_CA=DIR/ca.pem kaching ingest\n' +
      '  kaching token bind-cert --deployment <id> --cert DIR/agent-<name>.pem\n' +
      '  agent: KACHING_INGEST_URL=https://127.0.0.1:7070 KACHING_TLS_CA=DIR/ca.pem KACHING_TLS_CERT=DIR/agent-<name>.pem KACHING_TLS_KEY=DIR/agent-<name>.key\n' +
      'and for NATS see deploy/nats/secure.conf (it reads the same file names from DIR). Not for production.',
    async run(ctx) {
      const str = (k: string, d: string) => (typeof ctx.args[k] === 'string' && ctx.args[k] !== '' ? (ctx.args[k] as string) : d);
      const days = Number(str('days', '30'));
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError('--days must be an integer from 1 to 3650');
      const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
      const r = devCa({ dir: path.resolve(str('dir', '.kaching/tls')), agents: list(str('agents', 'agent')), hosts: list(str('hosts', '')), days, force: ctx.args.force === true });
      const lines = [
        `${r.reusedCa ? 'reused' : 'created'} CA ${r.ca}`,
        `server certificate ${r.server.cert} (${r.server.sans.join(', ')})`,
        ...r.clients.map((c) => `client ${c.cn}: ${c.cert}  sha256 ${c.sha256}`),
        '',
        `ingest: INGEST_TLS_CERT=${r.server.cert} INGEST_TLS_KEY=${r.server.key} INGEST_TLS_CLIENT_CA=${r.ca}`,
        `bind:   kaching token bind-cert --deployment <id> --cert ${r.clients[0]!.cert}`,
      ];
      return { data: r, text: lines.join('\n') };
    },
  },
];
