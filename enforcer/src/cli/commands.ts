import { readFile, writeFile } from 'node:fs/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, createPool, names, publishConfigChange, republishFromCli, requireString, UsageError, type Command, type CommandContext } from '@kaching/contracts';
import { isPublicKey, loadConfig } from '../config.js';
import { activateLicense, issueLicense, licenseKeygen, verifyLicense } from '@kaching/contracts';
import { replayEnforcer } from '../replay.js';
import { openHistory } from '../history.js';
import { start } from '../service.js';

async function readKeyArg(v: string): Promise<string> {
  // the base64 key itself, or a file holding it
  return isPublicKey(v.trim()) ? v.trim() : (await readFile(v, 'utf8')).trim();
}

async function vendorKey(ctx: CommandContext): Promise<string> {
  const arg = ctx.args['public-key'];
  if (typeof arg === 'string' && arg) return readKeyArg(arg);
  const key = loadConfig(process.env).licensePublicKey;
  if (!key) throw new UsageError('set KACHING_LICENSE_PUBLIC_KEY (base64 or file path) or pass --public-key');
  return key;
}

function intArg(ctx: CommandContext, key: string): number | null {
  const v = ctx.args[key];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${key} must be a non-negative integer`);
  return n;
}

/** Tells running enforcers at once; a missing NATS only delays the effect until their next restart. */
async function announce(ctx: CommandContext, deploymentId: string, kind: 'license' | 'price'): Promise<boolean> {
  try {
    const nc = await connectNats(ctx.config.natsUrl, { timeout: 2000 });
    publishConfigChange(nc, names(ctx.config.namespace), { deployment_id: deploymentId, kind });
    await nc.drain();
    return true;
  } catch {
    return false;
  }
}

export const commands: Command[] = [
  {
    name: 'license keygen',
    summary: 'Generate a vendor Ed25519 key pair for signing licenses',
    options: { out: { type: 'string', description: 'Write PREFIX.key (private, mode 600) and PREFIX.pub instead of printing the private key' } },
    async run(ctx) {
      const k = await licenseKeygen();
      const out = ctx.args.out;
      if (typeof out === 'string' && out) {
        await writeFile(`${out}.key`, k.privateKey + '\n', { mode: 0o600 });
        await writeFile(`${out}.pub`, k.publicKey + '\n');
        return { data: { public_key: k.publicKey, private_key_file: `${out}.key`, public_key_file: `${out}.pub` }, text: `public key ${k.publicKey}\nprivate key written to ${out}.key` };
      }
      return { data: { public_key: k.publicKey, private_key: k.privateKey }, text: `public key  ${k.publicKey}\nprivate key ${k.privateKey}\n(keep the private key offline)` };
    },
  },
  {
    name: 'license issue',
    summary: 'Sign a license blob with the vendor private key',
    options: {
      org: { type: 'string', description: 'Organisation id (uuid)', required: true },
      plan: { type: 'string', description: 'Plan id (pricing_plan.plan_id)', required: true },
      seats: { type: 'string', description: 'Seat cap (omit: unlimited)' },
      nodes: { type: 'string', description: 'Node cap (omit: unlimited)' },
      'valid-from': { type: 'string', description: 'Start of validity (RFC 3339 or date)', required: true },
      'valid-to': { type: 'string', description: 'End of validity (RFC 3339 or date)', required: true },
      features: { type: 'string', description: 'Feature flags as a JSON object' },
      deployment: { type: 'string', description: 'Bind to one deployment (uuid)' },
      'private-key': { type: 'string', description: 'File holding the vendor private key (base64)', required: true },
      out: { type: 'string', description: 'Write the blob to this file' },
    },
    async run(ctx) {
      let features: Record<string, unknown> = {};
      if (typeof ctx.args.features === 'string') {
        try {
          features = JSON.parse(ctx.args.features);
        } catch {
          throw new UsageError('--features must be a JSON object');
        }
      }
      const from = requireString(ctx, 'valid-from');
      const to = requireString(ctx, 'valid-to');
      if (!Number.isFinite(Date.parse(from)) || !Number.isFinite(Date.parse(to))) throw new UsageError('--valid-from/--valid-to must be dates');
      const sk = (await readFile(requireString(ctx, 'private-key'), 'utf8')).trim();
      const dep = ctx.args.deployment;
      let blob: string;
      try {
        blob = await issueLicense(
          { org_id: requireString(ctx, 'org'), plan_id: requireString(ctx, 'plan'), seats_limit: intArg(ctx, 'seats'), nodes_limit: intArg(ctx, 'nodes'),
            valid_from: from, valid_to: to, features, ...(typeof dep === 'string' && dep ? { deployment_id: dep } : {}) },
          sk,
        );
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      if (typeof ctx.args.out === 'string' && ctx.args.out) await writeFile(ctx.args.out, blob + '\n');
      return { data: { blob }, text: blob };
    },
  },
  {
    name: 'license verify',
    summary: 'Verify a license blob against the vendor public key (offline)',
    options: {
      blob: { type: 'string', description: 'File holding the blob', required: true },
      'public-key': { type: 'string', description: 'Vendor public key (base64 or file); default KACHING_LICENSE_PUBLIC_KEY' },
    },
    async run(ctx) {
      const blob = (await readFile(requireString(ctx, 'blob'), 'utf8')).trim();
      const v = await verifyLicense(blob, await vendorKey(ctx));
      return { data: v, text: `license ${v.payload.license_id}: signature OK, ${v.status}; plan ${v.payload.plan_id}, valid ${v.payload.valid_from} .. ${v.payload.valid_to}`, exitCode: v.status === 'valid' ? 0 : 1 };
    },
  },
  {
    name: 'license activate',
    summary: 'Verify and store a license for a deployment',
    options: {
      blob: { type: 'string', description: 'File holding the blob', required: true },
      deployment: { type: 'string', description: 'Deployment id (default: the one the license names)' },
      'public-key': { type: 'string', description: 'Vendor public key (base64 or file); default KACHING_LICENSE_PUBLIC_KEY' },
    },
    async run(ctx) {
      const blob = (await readFile(requireString(ctx, 'blob'), 'utf8')).trim();
      const pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 2 });
      try {
        const dep = typeof ctx.args.deployment === 'string' && ctx.args.deployment ? ctx.args.deployment : undefined;
        const r = await activateLicense(pool, blob, await vendorKey(ctx), { ...(dep ? { deploymentId: dep } : {}) });
        if (r.deployment_id) await announce(ctx, r.deployment_id, 'license');
        // the license's features reach orchestrators through the features KV bucket
        const targets = r.deployment_id ? [r.deployment_id] : (await pool.query<{ deployment_id: string }>('select deployment_id from deployment where org_id = $1', [r.org_id])).rows.map((x) => x.deployment_id);
        await republishFromCli(ctx, pool, targets, 'license');
        return { data: r, text: `license ${r.license_id} (plan ${r.plan_id}) active for ${r.deployment_id ?? `every deployment of org ${r.org_id}`} until ${r.valid_to}` };
      } finally {
        await pool.end();
      }
    },
  },
  {
    name: 'replay enforcer',
    summary: "Rebuild the enforcer's counters from the archive and the stream while it runs, without alerting, notifying or publishing again",
    options: {
      'accept-history-loss': { type: 'boolean', description: 'reset even though neither the archive nor the stream holds messages the counters include (that usage is then gone from them)' },
    },
    async run(ctx) {
      const pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 1 });
      const accept = ctx.args['accept-history-loss'] === true;
      // the archive the running enforcers read a lane's history from
      const history = accept ? null : openHistory(ctx.config.namespace, loadConfig(process.env).archiveDir);
      let nc: NatsConnection | null = null;
      try {
        const r = await replayEnforcer(pool, {
          history,
          acceptHistoryLoss: accept,
          streamFirstSeq: async () => {
            nc = await connectNats(ctx.config.natsUrl, { name: 'kaching-replay' });
            return (await (await jetstreamManager(nc)).streams.info(names(ctx.config.namespace).eventsStream)).state.first_seq;
          },
        });
        return {
          data: r,
          text: `enforcer state reset over ${r.lanes} lanes: running enforcer instances re-read ${r.fromArchive ? 'the archive, then the stream' : 'the archive and the stream'} from the start`,
        };
      } finally {
        await history?.close().catch(() => undefined);
        await (nc as NatsConnection | null)?.close().catch(() => undefined);
        await pool.end();
      }
    },
  },
  {
    name: 'enforcer',
    summary: 'Run the enforcer alone (until SIGINT/SIGTERM)',
    async run(ctx) {
      const h = await start({ ...loadConfig(process.env), ...ctx.config });
      ctx.progress(`enforcer running; metrics at ${h.url}/metrics`);
      await new Promise<void>((r) => (ctx.signal.aborted ? r() : ctx.signal.addEventListener('abort', () => r(), { once: true })));
      await h.close();
      return { data: { stopped: true }, text: 'enforcer stopped' };
    },
  },
];
