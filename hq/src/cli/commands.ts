import { readFile } from 'node:fs/promises';
import { createLogger, createPool, installationIdentity, requireString, UsageError, withCommandPool as withPool, type Command, type CommandContext } from '@kaching/contracts';
import { loadConfig } from '../config.js';
import { start } from '../service.js';
import { startPusher } from '../sync/pusher.js';
import { outboxCounts } from '../sync/outbox.js';
import { listInstallations, registerInstallation, revokeInstallation } from '../receive/installations.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function untilAborted(ctx: CommandContext): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export const commands: Command[] = [
  {
    name: 'hq id',
    summary: "This installation's id (what HQ registers with its client certificate)",
    async run(ctx) {
      const id = await withPool(ctx, async (p) => (await installationIdentity(p)).installationId);
      return { data: { installation_id: id }, text: id };
    },
  },
  {
    name: 'hq sync',
    summary: 'Push redacted daily rollups to HQ (KACHING_HQ_URL) every KACHING_HQ_INTERVAL_MS until interrupted; --once pushes once',
    options: { once: { type: 'boolean', description: 'one push, then exit (non-zero when HQ did not take it)' } },
    details:
      'Needs KACHING_HQ_URL (https://…), KACHING_HQ_TLS_CERT and KACHING_HQ_TLS_KEY (the client certificate HQ registered),\n' +
      'optionally KACHING_HQ_TLS_CA. What leaves the installation is listed in hq/README.md (the redaction policy).',
    async run(ctx) {
      const config = { ...loadConfig(), ...ctx.config };
      if (!config.sync) throw new UsageError('KACHING_HQ_URL is not set');
      const log = createLogger('kaching-hq', config.logLevel);
      const pool = createPool({ databaseUrl: config.databaseUrl, namespace: config.namespace, max: 3, applicationName: 'kaching-hq-sync' });
      try {
        // --once: the first (immediate) cycle is the one we wait for; no second one is scheduled within the run
        const pusher = startPusher({ pool, config: ctx.args.once ? { ...config.sync, intervalMs: 2 ** 31 - 1 } : config.sync, namespace: config.namespace, log });
        try {
          if (ctx.args.once) {
            const r = await pusher.pushNow();
            return { data: r, text: r.skipped ? 'another pusher holds the lock; nothing done' : `staged ${r.staged}, pushed ${r.pushed} row(s), HQ applied ${r.applied}` };
          }
          ctx.progress(`pushing to ${config.sync.url} every ${config.sync.intervalMs} ms — Ctrl-C stops`);
          await untilAborted(ctx);
          return { data: { stopped: true }, text: 'hq sync stopped' };
        } finally {
          await pusher.close();
        }
      } finally {
        await pool.end();
      }
    },
  },
  {
    name: 'hq status',
    summary: 'HQ sync of this installation: outbox rows, pending rows, last push and last error',
    async run(ctx) {
      const s = await withPool(ctx, async (p) => {
        const counts = await outboxCounts(p);
        const state = (await p.query('select last_attempt_at, last_success_at, last_error, consecutive_failures, rows_pushed from hq_sync_state')).rows[0] ?? null;
        return { outbox: counts, state };
      });
      const st = s.state as { last_success_at: Date | null; last_error: string | null; consecutive_failures: number } | null;
      const text = `outbox ${s.outbox.rows} row(s), ${s.outbox.pending} pending; last success ${st?.last_success_at ? new Date(st.last_success_at).toISOString() : 'never'}${st?.last_error ? `; last error (${st.consecutive_failures} in a row): ${st.last_error}` : ''}`;
      return { data: s, text };
    },
  },
  {
    name: 'hq',
    summary: 'Run HQ sync as configured until interrupted: the pusher (KACHING_HQ_URL) and/or the receiver (KACHING_ROLE=hq)',
    details: 'For a unit of its own (kaching@hq). `kaching hq sync` runs only the pusher; see hq/README.md for the settings.',
    async run(ctx) {
      const h = await start({ ...loadConfig(), ...ctx.config });
      if (h.idle) throw new UsageError('nothing to run: set KACHING_HQ_URL (push to HQ) and/or KACHING_ROLE=hq (be HQ)');
      ctx.progress(`${h.receiver ? `hq receiver listening on ${h.url}` : ''}${h.receiver && h.pusher ? '; ' : ''}${h.pusher ? 'pushing to HQ' : ''} — Ctrl-C stops`);
      await untilAborted(ctx);
      await h.close();
      return { data: { url: h.url ?? null, stopped: true }, text: 'hq stopped' };
    },
  },
  {
    name: 'hq installation add',
    summary: 'HQ: allow an installation to push, identified by its client certificate (pinned by SHA-256 fingerprint)',
    options: {
      id: { type: 'string', description: 'the installation id (`kaching hq id` on that installation)', required: true },
      name: { type: 'string', description: 'a name for people', required: true },
      cert: { type: 'string', description: "PEM file of the installation's client certificate", required: true },
    },
    async run(ctx) {
      const id = requireString(ctx, 'id');
      if (!UUID.test(id)) throw new UsageError('--id must be a lowercase uuid');
      const pem = await readFile(requireString(ctx, 'cert'));
      const r = await withPool(ctx, (p) => registerInstallation(p, { installationId: id, name: requireString(ctx, 'name'), certPem: pem }));
      return { data: r, text: `${r.installation_id} (${r.name}) may push; certificate sha256 ${r.cert_sha256}` };
    },
  },
  {
    name: 'hq installation list',
    summary: 'HQ: registered installations',
    async run(ctx) {
      const items = await withPool(ctx, (p) => listInstallations(p));
      return { data: items, text: items.map((i) => `${i.installation_id}\t${i.name}\t${i.revoked_at ? 'revoked' : 'active'}\tlast push ${i.last_push_at ? new Date(i.last_push_at).toISOString() : 'never'}`).join('\n') || '(none)' };
    },
  },
  {
    name: 'hq installation revoke',
    summary: 'HQ: refuse further pushes from an installation (what it pushed stays)',
    options: { id: { type: 'string', description: 'installation id', required: true } },
    async run(ctx) {
      const r = await withPool(ctx, (p) => revokeInstallation(p, requireString(ctx, 'id')));
      return { data: r, text: `revoked ${r.installation_id}` };
    },
  },
];
