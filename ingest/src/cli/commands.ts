import { readFile, writeFile } from 'node:fs/promises';
import {
  connectNats,
  fingerprintOfPemFile,
  parseFingerprint,
  UsageError,
  cryptoReady,
  generateSigningKeyPair,
  names,
  publishConfigChange,
  parseExpiry,
  requireString,
  withCommandPool as withPool,
  type Command,
  type CommandContext,
  issueIngestToken,
  registerAgentKey,
  revokeAgentKey,
  revokeIngestToken,
  DEFAULT_REVOKE_REASON,
  REVOKE_REASONS,
  type RevokeReason,
  bindCert,
  listCertBindings,
  unbindCert,
  type CertBindingRow,
} from '@kaching/contracts';
import { ArchiveHistory } from '@kaching/archiver';
import { auditSelection } from '../audit/scan.js';
import { auditVerify } from '../audit/verifyStored.js';
import { loadConfig } from '../config.js';
import { start } from '../service.js';
import { deadLetterCommands } from './deadLetters.js';

/** Tells a running enforcer/ingest about a change; best effort (the write itself already happened). */
async function announce(ctx: CommandContext, deploymentId: string, kind: 'token' | 'key' | 'cert', id: string): Promise<void> {
  const nc = await connectNats(ctx.config.natsUrl, { timeout: 2000, maxReconnectAttempts: 0 }).catch(() => null);
  if (!nc) return;
  try {
    publishConfigChange(nc, names(ctx.config.namespace), { deployment_id: deploymentId, kind, id });
    await nc.flush();
  } finally {
    await nc.close();
  }
}

function optTime(ctx: CommandContext, key: string): Date | undefined {
  const v = ctx.args[key];
  if (typeof v !== 'string' || v === '') return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--${key} "${v}" is not an RFC 3339 time`);
  return new Date(t);
}

function describeBinding(b: CertBindingRow): string {
  const pin = b.cert_sha256 ? `sha256 ${b.cert_sha256}` : `subject "${b.subject}"`;
  return `${pin} -> deployment ${b.deployment_id}${b.label ? ` [${b.label}]` : ''}`;
}

function b64(u: Uint8Array): string {
  return Buffer.from(u).toString('base64');
}

export const commands: Command[] = [
  {
    name: 'token issue',
    summary: 'Issue an ingest token for a deployment (printed once; only its hash is stored)',
    options: {
      deployment: { type: 'string', description: 'deployment id', required: true },
      scopes: { type: 'string', description: 'comma-separated scopes', default: 'ingest:usage,ingest:jobs' },
      expires: { type: 'string', description: 'lifetime (30d, 12h) or RFC 3339 time; default: never' },
      label: { type: 'string', description: 'free-form label' },
    },
    async run(ctx) {
      const deploymentId = requireString(ctx, 'deployment');
      const scopesArg = typeof ctx.args.scopes === 'string' ? ctx.args.scopes : 'ingest:usage,ingest:jobs';
      const scopes = scopesArg.split(',').map((s) => s.trim()).filter(Boolean);
      const expiresAt = typeof ctx.args.expires === 'string' && ctx.args.expires ? parseExpiry(ctx.args.expires) : null;
      const label = typeof ctx.args.label === 'string' ? ctx.args.label : null;
      const t = await withPool(ctx, (pool) => issueIngestToken(pool, { deploymentId, scopes, expiresAt, label }));
      return {
        data: { token_id: t.tokenId, token: t.token, deployment_id: t.deploymentId, scopes: t.scopes, expires_at: t.expiresAt?.toISOString() ?? null },
        text: `${t.token}\n(token id ${t.tokenId}; scopes ${t.scopes.join(',')}; ${t.expiresAt ? `expires ${t.expiresAt.toISOString()}` : 'no expiry'}. Store it now: it is not shown again.)`,
      };
    },
  },
  {
    name: 'token revoke',
    summary: 'Revoke an ingest token (ingest caches honour it within INGEST_AUTH_CACHE_TTL_MS)',
    options: { 'token-id': { type: 'string', description: 'token id (uuid)', required: true } },
    async run(ctx) {
      const tokenId = requireString(ctx, 'token-id');
      const r = await withPool(ctx, (pool) => revokeIngestToken(pool, { tokenId }));
      await announce(ctx, r.deploymentId, 'token', tokenId);
      return { data: { token_id: r.tokenId, revoked_at: r.revokedAt.toISOString() }, text: `token ${r.tokenId} revoked at ${r.revokedAt.toISOString()}` };
    },
  },
  {
    name: 'token bind-cert',
    summary: "Bind a client certificate to a deployment's ingest tokens (mTLS: INGEST_TLS_CLIENT_CA)",
    options: {
      deployment: { type: 'string', description: 'deployment id', required: true },
      fingerprint: { type: 'string', description: 'SHA-256 fingerprint of the certificate (hex, colons allowed)' },
      cert: { type: 'string', description: 'PEM certificate file whose fingerprint to pin (instead of --fingerprint)' },
      subject: { type: 'string', description: 'a name: matches the CN or any subjectAltName value (survives re-issuing)' },
      label: { type: 'string', description: 'free-form label' },
    },
    details:
      'With INGEST_TLS_CLIENT_CA set, ingest over HTTPS accepts a token only on a connection whose client\n' +
      'certificate is bound to the token\'s deployment: 403 CLIENT_CERT_NOT_BOUND otherwise (and, unless\n' +
      'INGEST_TLS_REQUIRE_BINDING=0, when the deployment has no binding at all). Give exactly one of\n' +
      '--fingerprint, --cert or --subject. A fingerprint pins one certificate; a subject pins a name that\n' +
      'your CA only issues to that deployment\'s agents.',
    async run(ctx) {
      const deploymentId = requireString(ctx, 'deployment');
      const str = (k: string) => (typeof ctx.args[k] === 'string' && ctx.args[k] !== '' ? (ctx.args[k] as string) : null);
      const given = ['fingerprint', 'cert', 'subject'].filter((k) => str(k) !== null);
      if (given.length !== 1) throw new UsageError('give exactly one of --fingerprint, --cert and --subject');
      const fingerprint = str('fingerprint') !== null ? parseFingerprint(str('fingerprint')!) : str('cert') !== null ? fingerprintOfPemFile(str('cert')!) : null;
      const { binding, created } = await withPool(ctx, (pool) => bindCert(pool, { deploymentId, fingerprint, subject: str('subject'), label: str('label') }));
      await announce(ctx, deploymentId, 'cert', binding.binding_id);
      return { data: { ...binding, created }, text: `${created ? 'bound' : 'already bound'}: ${describeBinding(binding)} (binding id ${binding.binding_id})` };
    },
  },
  {
    name: 'token unbind-cert',
    summary: 'Remove a client-certificate binding (its certificate no longer carries the deployment\'s tokens)',
    options: { 'binding-id': { type: 'string', description: 'binding id (from token bind-cert / token certs)', required: true } },
    async run(ctx) {
      const bindingId = requireString(ctx, 'binding-id');
      const b = await withPool(ctx, (pool) => unbindCert(pool, bindingId));
      await announce(ctx, b.deployment_id, 'cert', b.binding_id);
      return { data: b, text: `unbound ${describeBinding(b)} at ${new Date(b.revoked_at!).toISOString()}` };
    },
  },
  {
    name: 'token certs',
    summary: "List the client certificates bound to a deployment's ingest tokens",
    options: {
      deployment: { type: 'string', description: 'deployment id', required: true },
      all: { type: 'boolean', description: 'include removed bindings' },
    },
    async run(ctx) {
      const deploymentId = requireString(ctx, 'deployment');
      const rows = await withPool(ctx, (pool) => listCertBindings(pool, deploymentId, ctx.args.all === true));
      return {
        data: rows,
        text: rows.length ? rows.map((b) => `${b.binding_id}  ${describeBinding(b)}${b.revoked_at ? '  (removed)' : ''}`).join('\n') : 'no certificate bound',
      };
    },
  },
  {
    name: 'key gen',
    summary: 'Generate an Ed25519 agent signing keypair (public key: base64 of the raw 32 bytes)',
    options: { out: { type: 'string', description: 'write the secret key (base64) to this file, mode 0600' } },
    async run(ctx) {
      await cryptoReady();
      const kp = generateSigningKeyPair();
      const publicKey = b64(kp.publicKey);
      const secretKey = b64(kp.secretKey);
      const out = typeof ctx.args.out === 'string' && ctx.args.out ? ctx.args.out : null;
      if (out) {
        await writeFile(out, `${secretKey}\n`, { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'EEXIST') throw new UsageError(`${out} exists; not overwriting a secret key`);
          throw e;
        });
        return { data: { public_key: publicKey, secret_key_file: out }, text: `public key: ${publicKey}\nsecret key written to ${out}` };
      }
      return { data: { public_key: publicKey, secret_key: secretKey }, text: `public key: ${publicKey}\nsecret key: ${secretKey}` };
    },
  },
  {
    name: 'key register',
    summary: "Register an agent's public key for a deployment",
    options: {
      deployment: { type: 'string', description: 'deployment id', required: true },
      'key-id': { type: 'string', description: 'key id the agent puts in sig.key_id', required: true },
      'public-key': { type: 'string', description: 'raw 32-byte Ed25519 public key, base64', required: true },
      'valid-from': { type: 'string', description: 'RFC 3339; default now minus INGEST_MAX_AGE_MS (accepts every report ingest still takes)' },
      'valid-to': { type: 'string', description: 'RFC 3339; default open-ended' },
    },
    async run(ctx) {
      const deploymentId = requireString(ctx, 'deployment');
      const keyId = requireString(ctx, 'key-id');
      const publicKey = requireString(ctx, 'public-key');
      const k = await withPool(ctx, (pool) =>
        registerAgentKey(pool, {
          deploymentId,
          keyId,
          publicKey,
          validFrom: optTime(ctx, 'valid-from') ?? null,
          validTo: optTime(ctx, 'valid-to') ?? null,
          inFlightMs: loadConfig(process.env).maxAgeMs,
        }),
      );
      await announce(ctx, deploymentId, 'key', keyId);
      const data = { deployment_id: k.deploymentId, key_id: k.keyId, valid_from: k.validFrom.toISOString(), valid_to: k.validTo?.toISOString() ?? null };
      return { data, text: `key ${k.keyId} registered for ${k.deploymentId} (valid from ${data.valid_from}${data.valid_to ? ` to ${data.valid_to}` : ''})` };
    },
  },
  {
    name: 'key revoke',
    summary: 'Revoke an agent signing key (for compromise: refuse all it signed; superseded: keep reports made before now)',
    options: {
      deployment: { type: 'string', description: 'deployment id', required: true },
      'key-id': { type: 'string', description: 'key id', required: true },
      reason: { type: 'string', description: 'compromise | superseded', default: DEFAULT_REVOKE_REASON },
    },
    details:
      'compromise: every event signed by the key is refused (KEY_REVOKED), whenever it says it was made.\n' +
      'superseded: a planned rotation. Events whose report time (ended_at, else started_at; observed_at for job\n' +
      'status) lies before the revocation are still accepted, so what agents hold in their disk queues arrives.\n' +
      'The default is compromise: an honest event refused by mistake waits in the agent\'s dead-letter file and\n' +
      'can be replayed; a leaked key wrongly marked superseded would keep being accepted unnoticed.',
    async run(ctx) {
      const deploymentId = requireString(ctx, 'deployment');
      const keyId = requireString(ctx, 'key-id');
      const reasonArg = typeof ctx.args.reason === 'string' && ctx.args.reason ? ctx.args.reason : DEFAULT_REVOKE_REASON;
      if (!REVOKE_REASONS.includes(reasonArg as RevokeReason)) throw new UsageError(`--reason must be ${REVOKE_REASONS.join(' or ')}`);
      const reason = reasonArg as RevokeReason;
      const r = await withPool(ctx, (pool) => revokeAgentKey(pool, { deploymentId, keyId, reason }));
      await announce(ctx, deploymentId, 'key', keyId);
      const at = r.revokedAt.toISOString();
      return {
        data: { deployment_id: deploymentId, key_id: keyId, revoked_at: at, reason: r.reason },
        text: `key ${keyId} revoked at ${at} (${r.reason === 'compromise' ? 'compromise: nothing it signed is accepted' : `superseded: reports made before ${at} are still accepted`})`,
      };
    },
  },
  {
    name: 'audit verify',
    summary: "Re-verify stored events' signatures against the keys valid when they were signed: one by --seq, one correlation id's revisions, or a deployment's range",
    options: {
      seq: { type: 'string', description: 'stream sequence number of one event' },
      deployment: { type: 'string', description: 'deployment id (with --correlation-id, or --since/--until)' },
      'correlation-id': { type: 'string', description: "every stored revision of this job's report" },
      since: { type: 'string', description: 'start of a range (RFC 3339, append time, inclusive)' },
      until: { type: 'string', description: 'end of a range (RFC 3339, append time, exclusive; default now)' },
      original: { type: 'string', description: "with --seq: a file holding the agent's original event, to verify a redacted one" },
    },
    async run(ctx) {
      const seqArg = ctx.args['seq'];
      const deploymentId = typeof ctx.args['deployment'] === 'string' ? ctx.args['deployment'] : undefined;
      const correlationId = typeof ctx.args['correlation-id'] === 'string' ? ctx.args['correlation-id'] : undefined;
      const since = optTime(ctx, 'since');
      const until = optTime(ctx, 'until') ?? new Date();
      const nc = await connectNats(ctx.config.natsUrl, { timeout: 5000 });
      // events past the stream's hot window are read from the archive
      const history = ArchiveHistory.open(ctx.config.namespace);
      try {
        if (typeof seqArg === 'string') {
          const seq = Number(seqArg);
          if (!Number.isSafeInteger(seq) || seq < 1) throw new UsageError('--seq must be a positive integer');
          const file = typeof ctx.args['original'] === 'string' ? ctx.args['original'] : undefined;
          const original = file === undefined ? undefined : JSON.parse(await readFile(file, 'utf8'));
          const r = await withPool(ctx, (pool) => auditVerify(nc, pool, names(ctx.config.namespace), seq, { original }, history));
          return { data: r, text: `seq ${seq}: ${r.verdict} — ${r.detail}`, exitCode: r.failed ? 1 : 0 };
        }
        if (!deploymentId || (!correlationId && !since)) {
          throw new UsageError('give --seq N, or --deployment D with --correlation-id C, or --deployment D with --since T [--until T]');
        }
        const sel = correlationId ? { deploymentId, correlationId } : { deploymentId, since: since!, until };
        const s = await withPool(ctx, (pool) => auditSelection(nc, pool, names(ctx.config.namespace), sel, history));
        if (correlationId && s.scanned === 0) {
          return { data: s, text: `no stored event of ${deploymentId} has correlation id ${correlationId}`, exitCode: 1 };
        }
        const counts = Object.entries(s.verdicts).map(([v, c]) => `${v} ${c}`).join(', ') || 'none';
        const lines = [`${deploymentId}: ${s.scanned} events — verified ${s.verified}, failed ${s.failed}, unverifiable ${s.unverifiable} (${counts})`];
        for (const r of s.results) lines.push(`  seq ${r.seq} ${r.correlation_id ?? ''}: ${r.verdict} — ${r.detail}`);
        return { data: s, text: lines.join('\n'), exitCode: s.failed ? 1 : 0 };
      } finally {
        await history.close();
        await nc.close();
      }
    },
  },
  {
    name: 'ingest',
    summary: 'Run the ingest service alone (HTTP bridge + NATS ingest) until interrupted',
    async run(ctx) {
      const config = { ...loadConfig(process.env), ...ctx.config };
      const h = await start(config);
      ctx.progress(`ingest listening on ${h.url} (namespace ${config.namespace})`);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) return resolve();
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await h.close();
      return { data: { stopped: true, url: h.url }, text: 'ingest stopped' };
    },
  },
  ...deadLetterCommands,
];
